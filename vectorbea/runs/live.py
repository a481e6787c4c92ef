"""Live pushes: "run X has events up to seq N", sent to Channels groups after commit.

A push carries no event data, only the doorbell: the websocket consumer reads the events
after the last seq its browser has from Postgres, so a lost or duplicated push can delay
the timeline but never leave a gap or a duplicate in it.

Appends happen on the hot path of workers, so they only drop a note in this process's
outbox; one background thread coalesces notes per run and does the (async) group sends.
"""

import asyncio
import logging
import os
import threading
import time
from uuid import UUID

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
                loop.run_until_complete(_send(batch))
            except Exception:  # Redis down: the next push (or a reconnect) catches up
                log.warning("Live push failed for %d run(s)", len(batch), exc_info=True)


async def _send(batch: dict[str, tuple[str, int]]) -> None:
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    pushes = [
        (group, {"type": "run.changed", "run_id": run_id, "seq": seq})
        for run_id, (workspace_id, seq) in batch.items()
        for group in (run_group(run_id), workspace_group(workspace_id))
    ]
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


async def _watched(layer, groups: list[str]) -> set[str]:
    """The groups somebody is in, asked of Redis in one script call per Redis host,
    instead of the two round trips an empty group_send costs. Workers push for every run
    they move, and nearly all of those runs have no page open."""
    group_key = getattr(layer, "_group_key", None)
    if group_key is None:  # not channels_redis' layer: send to every group
        return set(groups)
    by_host: dict[int, list[str]] = {}
    for group in groups:
        by_host.setdefault(layer.consistent_hash(group), []).append(group)
    watched: set[str] = set()
    for index, members in by_host.items():
        found = await layer.connection(index).eval(
            EXISTING, len(members), *(group_key(group) for group in members)
        )
        watched.update(group for group, exists in zip(members, found, strict=True) if exists)
    return watched


OUTBOX = Outbox()
