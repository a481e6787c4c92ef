"""Requests and tokens per minute, per workspace and provider, across every worker process.

Each (workspace, provider) has a sliding window in Redis: a sorted set of the requests
admitted in the last `window_seconds`, scored by when, each member carrying its tokens,
and a small hash with the window's token total. One Lua script drops what left the window,
decides and records, atomically, on Redis's clock (`TIME`): one clock for every worker.

    wait = acquire(workspace.id, "openai", requests_per_minute=500,
                   tokens_per_minute=200_000, tokens=estimate)
    if wait:
        ...  # try again in `wait` seconds; nothing was recorded

Keys: f"{REDIS_PREFIX}:rl:{workspace_id}:{provider}" and the same with ":tally". They
expire a little after the window once the workspace stops calling the provider.
"""

from functools import cache
from uuid import UUID

import redis
from django.conf import settings
from redis.commands.core import Script

# KEYS[1]: sorted set of "<seq>:<tokens>" scored by admission time in microseconds.
# KEYS[2]: hash with "tokens" (the window's total) and "seq" (unique member numbers).
# ARGV: requests limit (-1: none), tokens limit (-1: none), tokens, window (µs).
# Returns 0 when admitted, else microseconds until the window will have room.
ACQUIRE = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local max_requests = tonumber(ARGV[1])
local max_tokens = tonumber(ARGV[2])
local tokens = tonumber(ARGV[3])
local window = tonumber(ARGV[4])

local function tokens_of(member)
  return tonumber(string.match(member, ':(%d+)$'))
end
-- Lua would write a number of 16 digits (microseconds) in 14: keep them all.
local function exact(number)
  return string.format('%.0f', number)
end

local gone = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', exact(now - window))
if #gone > 0 then
  local freed = 0
  for _, member in ipairs(gone) do freed = freed + tokens_of(member) end
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', exact(now - window))
  redis.call('HINCRBY', KEYS[2], 'tokens', exact(-freed))
end
local count = redis.call('ZCARD', KEYS[1])
if count == 0 then
  redis.call('HSET', KEYS[2], 'tokens', 0)
end
local used = tonumber(redis.call('HGET', KEYS[2], 'tokens') or '0')

local wait = 0
if max_requests >= 0 and count >= max_requests then
  -- Room once the oldest (count - max_requests + 1) requests have left the window.
  local oldest = redis.call('ZRANGE', KEYS[1], count - max_requests, count - max_requests,
    'WITHSCORES')
  wait = math.max(wait, tonumber(oldest[2]) + window - now)
end
if max_tokens >= 0 and count > 0 and used + tokens > max_tokens then
  -- Room once enough of the oldest requests have left, or all of them: a request larger
  -- than the limit gets the empty window.
  local entries = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
  local left = used
  for i = 1, #entries, 2 do
    left = left - tokens_of(entries[i])
    if left + tokens <= max_tokens or i + 1 == #entries then
      wait = math.max(wait, tonumber(entries[i + 1]) + window - now)
      break
    end
  end
end
if wait > 0 then
  return math.ceil(wait)
end

local seq = redis.call('HINCRBY', KEYS[2], 'seq', 1)
redis.call('ZADD', KEYS[1], exact(now), seq .. ':' .. ARGV[3])
redis.call('HINCRBY', KEYS[2], 'tokens', ARGV[3])
local ttl = math.ceil(window / 1000) + 1000
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('PEXPIRE', KEYS[2], ttl)
return 0
"""


def acquire(
    workspace_id: UUID | str,
    provider: str,
    *,
    requests_per_minute: int | None,
    tokens_per_minute: int | None,
    tokens: int,
    window_seconds: float = 60,
) -> float:
    """Admit one request of `tokens` tokens to `provider` for the workspace, or say how
    long to wait.

    Returns 0.0 when admitted (the request and its tokens are recorded), otherwise the
    seconds until the window will have room (nothing is recorded). A request larger than
    `tokens_per_minute` is admitted when the window is empty, so it never waits forever.
    With both limits None it is admitted without asking Redis. The limits hold per
    `window_seconds` (60 in production; tests shorten it)."""
    if requests_per_minute is None and tokens_per_minute is None:
        return 0.0
    if requests_per_minute is not None and requests_per_minute < 1:
        raise ValueError(f"requests_per_minute must be at least 1, not {requests_per_minute}")
    if tokens < 0:
        raise ValueError(f"A request cannot use {tokens} tokens")
    key = f"{settings.REDIS_PREFIX}:rl:{workspace_id}:{provider}"
    wait_us = _script(settings.REDIS_URL)(
        keys=[key, f"{key}:tally"],
        args=[
            -1 if requests_per_minute is None else requests_per_minute,
            -1 if tokens_per_minute is None else tokens_per_minute,
            int(tokens),
            int(window_seconds * 1_000_000),
        ],
    )
    return int(wait_us) / 1_000_000


@cache
def _script(url: str) -> Script:
    """The registered script on a client for `url`; redis-py's pool reconnects after a
    fork, and the script is loaded again if Redis lost it."""
    return redis.Redis.from_url(url).register_script(ACQUIRE)
