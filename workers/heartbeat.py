"""Keeping step leases alive while their attempts run.

One daemon thread per worker process extends, in one UPDATE, the leases of every attempt
this process is running (its calls in flight included). An attempt whose lease is gone
(taken over after the process stalled, or the run was cancelled) has its StepContext
cancelled: its call in flight is cancelled, and its late result is refused anyway by the
lease check of the append.

The beat comes every third of a lease, and at once when a hint says leases were taken away:
an append that interrupts attempts or ends a run with attempts running publishes their keys
on Redis (`revoked`, an after-commit hook), and each worker process that holds one of
them beats now. A lost hint only waits for the next beat: Postgres says what is gone.
"""

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from uuid import UUID

import redis
from django.conf import settings
from django.db import connection

from vectorbea.engine import StepCompleted, StepDeferred, StepFailed, StepInterrupted
from vectorbea.eventlog import leases
from vectorbea.eventlog.hooks import Change
from vectorbea.eventlog.leases import Key
from vectorbea.steps.registry import StepContext

log = logging.getLogger(__name__)


_WORKER_ID = (0, "")


def worker_id() -> str:
    """This process, as named in the leases it holds (host:pid; computed again in a forked
    child, whose pid differs)."""
    global _WORKER_ID
    pid = os.getpid()
    if _WORKER_ID[0] != pid:
        _WORKER_ID = (pid, f"{socket.gethostname()}:{pid}")
    return _WORKER_ID[1]


class Heartbeats:
    def __init__(self) -> None:
        self._held: dict[Key, StepContext] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._soon = threading.Event()

    def hold(self, ctx: StepContext) -> None:
        """Keep this attempt's lease alive until `release`."""
        with self._lock:
            self._held[(ctx.run_id, ctx.step_id, ctx.attempt)] = ctx
            self._ensure_thread()

    def release(self, ctx: StepContext) -> None:
        with self._lock:
            self._held.pop((ctx.run_id, ctx.step_id, ctx.attempt), None)

    @contextmanager
    def holding(self, ctx: StepContext) -> Iterator[None]:
        self.hold(ctx)
        try:
            yield
        finally:
            self.release(ctx)

    def held(self) -> dict[Key, StepContext]:
        """The attempts this process is running now."""
        with self._lock:
            return dict(self._held)

    def _ensure_thread(self) -> None:
        if self._thread is None or self._pid != os.getpid() or not self._thread.is_alive():
            self._pid = os.getpid()
            self._thread = threading.Thread(target=self._loop, name="lease-heartbeat", daemon=True)
            self._thread.start()
            threading.Thread(target=self._listen, name="lease-revocations", daemon=True).start()

    def _listen(self) -> None:
        """Beat at once when a hint names an attempt this process holds."""
        while True:
            try:
                pubsub = _redis().pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(_channel())
                for message in pubsub.listen():
                    keys = {tuple(key) for key in json.loads(message["data"])}
                    with self._lock:
                        mine = any((UUID(k[0]), k[1], k[2]) in self._held for k in keys)
                    if mine:
                        self.beat_soon()
            except Exception:  # Redis away: the beat goes on every third of a lease
                log.warning("Listening for revoked leases failed; retrying", exc_info=True)
                time.sleep(1)

    def beat_soon(self) -> None:
        """Beat now rather than at the next interval (a hint that leases were taken away:
        the attempts that lost theirs are cancelled at once)."""
        self._soon.set()

    def _loop(self) -> None:
        interval = settings.VECTORBEA_LEASE_SECONDS / 3
        while True:
            self._soon.wait(interval)
            self._soon.clear()
            try:
                self.beat()
            except Exception:
                log.exception("Lease heartbeat failed; retrying")
                connection.close()

    def beat(self) -> None:
        with self._lock:
            held = dict(self._held)
        if not held:
            return
        alive = leases.extend(worker_id(), held)
        for key, ctx in held.items():
            if key not in alive:
                log.warning("Lease lost for run %s step %s attempt %s", *key)
                ctx.cancel()


HEARTBEATS = Heartbeats()


_CLIENT: list[redis.Redis] = []


def _redis() -> redis.Redis:
    """This process's client (its pool is shared by the threads that publish)."""
    if not _CLIENT:
        _CLIENT.append(redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2))
    return _CLIENT[0]


def _channel() -> str:
    return f"{settings.REDIS_PREFIX}:leases-revoked"


def revoked(change: Change) -> None:
    """After-commit hook: publish the attempts an append took the leases of (interrupted,
    or running when the run ended), so the processes running them stop at once."""
    keys = [
        (str(change.run_id), r.event.step_id, r.event.attempt)
        for r in change.events
        if isinstance(r.event, StepInterrupted)
    ]
    if change.state.is_terminal and not change.before.is_terminal:
        ended = {
            (r.event.step_id, r.event.attempt)
            for r in change.events
            if isinstance(r.event, StepCompleted | StepFailed | StepDeferred)
        }
        for step_id in change.before.running_steps():
            attempt = change.before.step(step_id).attempt
            if (step_id, attempt) not in ended:  # still running when the run ended
                keys.append((str(change.run_id), step_id, attempt))
    if keys:
        try:
            _redis().publish(_channel(), json.dumps(keys))
        except redis.RedisError:
            log.warning("Could not publish revoked leases; the next heartbeat finds them")
