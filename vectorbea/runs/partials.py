"""Live partial text: a model's words as they arrive, for whoever watches the run.

A step that streams (the LLM step; an agent, once per turn) makes its call inside

    async with text_stream(ctx) as on_text:
        answer = await complete(provider, prompt, call, on_text)

on the worker's event loop. The words are not events: nothing is appended to the log for
them (the call's final text is, in its outcome). The text so far is kept in Redis under
`<REDIS_PREFIX>:partial:<run>:<step>` with the attempt it belongs to, for a page opened or
reconnected mid-call (it expires after KEPT_SECONDS and is deleted when the call is over):
when the first words come and then once every WATCH_CHECK_SECONDS, in the same round trip
that asks whether anybody has the run page open. While somebody has, it is kept and pushed
to the run's group at most every PUSH_SECONDS. Each push carries the whole text so far
(its last SHOWN_CHARS), so a lost push is repaired by the next one.

The run page shows the text in the running step's row (`runs/detail.html#step_partial`,
by an element id naming the attempt, so a late push of an earlier attempt lands nowhere);
the recorded outcome renders the row anew, without it. Nothing here may fail a call:
when Redis is unreachable the words are simply not shown.
"""

import asyncio
import json
import logging
import time
from typing import Any
from uuid import UUID

from channels.layers import get_channel_layer
from django.conf import settings
from django.template.loader import render_to_string

from vectorbea.runs import live

log = logging.getLogger(__name__)

PUSH_SECONDS = 0.05
WATCH_CHECK_SECONDS = 1.0
KEPT_SECONDS = 600
SHOWN_CHARS = 4000


# Keep the text (KEYS[1]) for ARGV[2] seconds; whether the run's group (KEYS[2]) has anybody.
KEEP_AND_LOOK = (
    "redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2]) return redis.call('EXISTS', KEYS[2])"
)


def partial_key(run_id: UUID | str, step_id: str) -> str:
    return f"{settings.REDIS_PREFIX}:partial:{run_id}:{step_id}"


def _redis_layer() -> Any:
    """The channel layer, when it is channels_redis' (the text is kept on the Redis host
    of the run's group); None otherwise."""
    layer = get_channel_layer()
    return layer if getattr(layer, "_group_key", None) is not None else None


class TextStream:
    """One call's text so far. The stream itself is the provider client's `on_text`:
    called with each piece of text on the event loop, it only appends and schedules."""

    def __init__(self, run_id: UUID, step_id: str, attempt: int) -> None:
        self.run_id, self.step_id, self.attempt = run_id, step_id, attempt
        self.group = live.run_group(run_id)
        self.key = partial_key(run_id, step_id)
        self.text = ""
        self._layer = _redis_layer()
        self._received = 0  # characters received so far
        self._sent = 0  # characters received when the last push went out
        self._pushed_at = float("-inf")
        self._watched = False
        self._watched_until = float("-inf")
        self._stored = False
        self._closed = False
        self._timer: asyncio.TimerHandle | None = None
        self._pushing: asyncio.Task[None] | None = None

    def __call__(self, piece: str) -> None:
        if not piece or self._layer is None:
            return
        self.text = (self.text + piece)[-SHOWN_CHARS:]
        self._received += len(piece)
        self._schedule()

    async def __aenter__(self) -> "TextStream":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def _schedule(self) -> None:
        if self._closed or self._timer is not None or self._pushing is not None:
            return  # the push in hand (or due) takes the new words, or schedules again
        loop = asyncio.get_running_loop()
        wait = self._pushed_at + PUSH_SECONDS - time.monotonic()
        if wait <= 0:
            self._start_push()
        else:
            self._timer = loop.call_later(wait, self._start_push)

    def _start_push(self) -> None:
        self._timer = None
        self._pushing = asyncio.get_running_loop().create_task(self._push())

    async def _push(self) -> None:
        self._pushed_at = time.monotonic()
        received = self._received
        try:
            await self._send()
            self._sent = received
        except Exception:  # Redis unreachable: the words are not shown, the call goes on
            log.warning("Could not push the partial text of %s/%s", self.run_id, self.step_id)
        finally:
            self._pushing = None
        if self._received > self._sent:
            self._schedule()

    async def _send(self) -> None:
        text = self.text if self._received <= SHOWN_CHARS else "…" + self.text
        kept = json.dumps({"attempt": self.attempt, "text": text})
        connection = self._layer.connection(self._layer.consistent_hash(self.group))
        now = time.monotonic()
        if now >= self._watched_until:
            # Once a second, watched or not: keep the text and look for watchers, in one
            # round trip (the key lives on the Redis host of the run's group).
            group_key = self._layer._group_key(self.group)
            found = await connection.eval(KEEP_AND_LOOK, 2, self.key, group_key, kept, KEPT_SECONDS)
            self._stored = True
            self._watched, self._watched_until = bool(found), now + WATCH_CHECK_SECONDS
        elif self._watched:
            await connection.set(self.key, kept, ex=KEPT_SECONDS)
        if not self._watched:
            return
        message = {
            "type": "step.partial",
            "step_id": self.step_id,
            "attempt": self.attempt,
            "text": text,
        }
        await self._layer.group_send(self.group, message)

    async def aclose(self) -> None:
        """The call is over: push what is not yet pushed, then forget the text in Redis
        (the step's outcome, recorded next, shows what became of it). An answer that came
        whole before its first push began had no text so far to show anybody: nothing is
        sent for it (the outcome, recorded next, shows it), which saves a short call its
        two round trips to Redis."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._pushing is not None and self._pushed_at == float("-inf"):
            self._pushing.cancel()  # created, not yet begun: nothing was sent or kept
            self._pushing = None
            return
        try:
            if self._pushing is not None:
                await self._pushing
            if self._received > self._sent:
                await self._send()
            if self._stored:
                index = self._layer.consistent_hash(self.group)
                await self._layer.connection(index).delete(self.key)
        except Exception:
            log.warning("Could not end the partial text of %s/%s", self.run_id, self.step_id)


def text_stream(ctx: Any) -> TextStream:
    """The stream for the attempt of `ctx` (a StepContext): `async with` it around a call,
    handing it to the provider client as `on_text`."""
    return TextStream(ctx.run_id, ctx.step_id, ctx.attempt)


def texts_so_far(run_id: UUID, running: dict[str, int]) -> dict[str, str]:
    """The text so far of the run's running steps (step id -> attempt), each only when it
    belongs to that attempt. Read synchronously, for a page or a socket being rendered."""
    layer = _redis_layer()
    if not running or layer is None:
        return {}
    try:
        client = live._sync_client(layer, layer.consistent_hash(live.run_group(run_id)))
        if client is None:
            return {}
        steps = list(running)
        values = client.mget([partial_key(run_id, step_id) for step_id in steps])
    except Exception:
        log.warning("Could not read the partial texts of run %s", run_id)
        return {}
    texts: dict[str, str] = {}
    for step_id, value in zip(steps, values, strict=True):
        if value is None:
            continue
        try:
            kept = json.loads(value)
        except ValueError:
            continue
        if isinstance(kept, dict) and kept.get("attempt") == running[step_id]:
            texts[step_id] = str(kept.get("text", ""))
    return texts


def render_partial(step_id: str, attempt: int, text: str) -> str:
    """The fragment that replaces the step's partial text on the run page."""
    step = {"id": step_id, "attempt": attempt, "partial": text}
    return render_to_string("runs/detail.html#step_partial", {"step": step})
