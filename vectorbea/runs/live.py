"""Live pushes: "run X has events up to seq N", sent to Channels groups after commit.

A push carries no event data, only the doorbell: the websocket consumer reads the events
after the last seq its browser has from Postgres, so a lost or duplicated push can delay
the timeline but never leave a gap or a duplicate in it.

Appends happen on the hot path of workers, so they only drop a note in this process's
outbox; one background thread coalesces notes per run, asks Redis which of their groups
somebody is in (one synchronous script call: nearly every run a worker moves has no page
open) and does the (async) group sends for those.
"""

import asyncio
import logging
import os
import threading
import time
from uuid import UUID

import redis
from channels.layers import get_channel_layer

from vectorbea.eventlog.hooks import Change

log = logging.getLogger(__name__)

# How long the pusher gathers notes before sending: far below what a person notices,
# long enough to turn a run's many quick steps into one push.
COALESCE_SECONDS = 0.02


def run_group(run_id: UUID | str) -> str:
    return f"run.{run_id}"


def workspace_group(workspace_id: UUID | str) -> str:
    return f"workspace.{workspace_id}"


class Outbox:
    """Notes gathered per run under a lock; the pusher thread is woken once per batch (when
    the first note arrives), not once per append, so the hot path never hands it the GIL."""

    def __init__(self) -> None:
        self._pending: dict[UUID, tuple[UUID, int]] = {}
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._lock = threading.Lock()

    def notify(self, run_id: UUID, workspace_id: UUID, seq: int) -> None:
        self._ensure_thread()
        with self._lock:
            if not self._pending:
                self._wake.set()
            known = self._pending.get(run_id)
            self._pending[run_id] = (workspace_id, seq if known is None else max(seq, known[1]))

    def _ensure_thread(self) -> None:
        if self._thread is not None and self._pid == os.getpid() and self._thread.is_alive():
            return
        with self._lock:
            if self._thread is None or self._pid != os.getpid() or not self._thread.is_alive():
                self._pid = os.getpid()
                self._pending = {}
                self._wake = threading.Event()
                self._thread = threading.Thread(target=self._run, name="live-push", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        while True:
            self._wake.wait()
            # Gather what else arrives within a short window: a busy run pushes once per
            # window rather than once per step.
            time.sleep(COALESCE_SECONDS)
            with self._lock:
                pending, self._pending = self._pending, {}
                self._wake.clear()
            batch = {str(run): (str(workspace), seq) for run, (workspace, seq) in pending.items()}
            try:
                layer = get_channel_layer()
                pushes = _pushes(batch)
                watched = _watched_now(layer, [group for group, _ in pushes])
                if watched is None or watched:
                    loop.run_until_complete(_push(layer, pushes, watched))
            except Exception:  # Redis down: the next push (or a reconnect) catches up
                log.warning("Live push failed for %d run(s)", len(batch), exc_info=True)


def _pushes(batch: dict[str, tuple[str, int]]) -> list[tuple[str, dict]]:
    return [
        (group, {"type": "run.changed", "run_id": run_id, "seq": seq})
        for run_id, (workspace_id, seq) in batch.items()
        for group in (run_group(run_id), workspace_group(workspace_id))
    ]


async def _push(layer, pushes: list[tuple[str, dict]], watched: set[str] | None) -> None:
    """Send each push whose group is `watched` (asked of Redis here when None)."""
    if watched is None:
        watched = await _watched(layer, [group for group, _ in pushes])
    for group, message in pushes:
        if group in watched:
            await layer.group_send(group, message)


# Which of KEYS exist, as a list of 0/1: one command however many groups a batch names.
EXISTING = (
    "local found = {} "
    "for i, key in ipairs(KEYS) do found[i] = redis.call('EXISTS', key) end "
    "return found"
)


def _by_host(layer, groups: list[str]) -> dict[int, list[str]]:
    by_host: dict[int, list[str]] = {}
    for group in groups:
        by_host.setdefault(layer.consistent_hash(group), []).append(group)
    return by_host


async def _watched(layer, groups: list[str]) -> set[str]:
    """The groups somebody is in, asked of Redis in one script call per Redis host,
    instead of the two round trips an empty group_send costs. Workers push for every run
    they move, and nearly all of those runs have no page open."""
    group_key = getattr(layer, "_group_key", None)
    if group_key is None:  # not channels_redis' layer: send to every group
        return set(groups)
    watched: set[str] = set()
    for index, members in _by_host(layer, groups).items():
        found = await layer.connection(index).eval(
            EXISTING, len(members), *(group_key(group) for group in members)
        )
        watched.update(group for group, exists in zip(members, found, strict=True) if exists)
    return watched


_SYNC_CLIENTS: dict[tuple[int, int], redis.Redis] = {}


def _watched_now(layer, groups: list[str]) -> set[str] | None:
    """`_watched`, asked over a synchronous connection to the same Redis hosts: the
    pusher thread then runs its event loop only when some group has a member (an asyncio
    round trip costs several times a plain one). None when the layer's hosts are not
    plain addresses (e.g. Sentinel): ask with `_watched`."""
    group_key = getattr(layer, "_group_key", None)
    if group_key is None:
        return set(groups)
    watched: set[str] = set()
    for index, members in _by_host(layer, groups).items():
        client = _sync_client(layer, index)
        if client is None:
            return None
        found = client.eval(EXISTING, len(members), *(group_key(group) for group in members))
        watched.update(group for group, exists in zip(members, found, strict=True) if exists)
    return watched


def _sync_client(layer, index: int) -> redis.Redis | None:
    key = (os.getpid(), index)
    client = _SYNC_CLIENTS.get(key)
    if client is None:
        host = dict(layer.hosts[index])
        address = host.pop("address", None)
        if address is None or "master_name" in host:
            return None
        client = _SYNC_CLIENTS[key] = redis.Redis.from_url(address, **host)
    return client


OUTBOX = Outbox()


def push_change(change: Change) -> None:
    """After-commit hook: tell the run's and the workspace's pages the run moved on."""
    OUTBOX.notify(change.run_id, change.workspace_id, change.state.last_seq)
