"""Keeping step leases alive while their attempts run.

One daemon thread per worker process extends, in one UPDATE, the leases of every attempt
this process is running. An attempt whose lease is gone (taken over after the process
stalled, or the run was cancelled) has its StepContext cancelled: the handler should stop,
and its late result is refused anyway by the lease check in store.append.
"""

import logging
import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from uuid import UUID

from django.conf import settings
from django.db import connection

from vectorbea.steps.registry import StepContext

log = logging.getLogger(__name__)
Key = tuple[UUID, str, int]


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

    @contextmanager
    def holding(self, ctx: StepContext) -> Iterator[None]:
        key = (ctx.run_id, ctx.step_id, ctx.attempt)
        with self._lock:
            self._held[key] = ctx
            self._ensure_thread()
        try:
            yield
        finally:
            with self._lock:
                self._held.pop(key, None)

    def held(self) -> dict[Key, StepContext]:
        """The attempts this process is running now."""
        with self._lock:
            return dict(self._held)

    def _ensure_thread(self) -> None:
        if self._thread is None or self._pid != os.getpid() or not self._thread.is_alive():
            self._pid = os.getpid()
            self._thread = threading.Thread(target=self._loop, name="lease-heartbeat", daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        interval = settings.VECTORBEA_LEASE_SECONDS / 3
        stop = threading.Event()
        while not stop.wait(interval):
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
        ttl = timedelta(seconds=settings.VECTORBEA_LEASE_SECONDS)
        rows = ", ".join(["(%s::uuid, %s, %s::integer)"] * len(held))
        keys: list = [value for key in held for value in key]
        with connection.cursor() as cursor:
            # SKIP LOCKED: never wait on a lease another transaction has locked (an append
            # ending that attempt, which may itself wait on a sibling's event insert):
            # waiting while holding the other leases' locks can close a deadlock cycle.
            cursor.execute(
                "WITH mine AS (SELECT run_id, step_id, attempt FROM eventlog_steplease "
                "  WHERE worker = %s AND (run_id, step_id, attempt) IN (" + rows + ") "
                "  FOR UPDATE SKIP LOCKED) "
                "UPDATE eventlog_steplease AS lease SET expires_at = now() + %s FROM mine "
                "WHERE lease.run_id = mine.run_id AND lease.step_id = mine.step_id "
                "AND lease.attempt = mine.attempt "
                "RETURNING lease.run_id, lease.step_id, lease.attempt",
                [worker_id(), *keys, ttl],
            )
            alive = {(r[0], r[1], r[2]) for r in cursor.fetchall()}
            missing = [key for key in held if key not in alive]
            if missing:  # skipped because locked, or gone: only the gone are lost
                cursor.execute(
                    "SELECT run_id, step_id, attempt FROM eventlog_steplease WHERE worker = %s "
                    "AND (run_id, step_id, attempt) IN ("
                    + ", ".join(["(%s::uuid, %s, %s::integer)"] * len(missing))
                    + ")",
                    [worker_id(), *(value for key in missing for value in key)],
                )
                alive |= {(r[0], r[1], r[2]) for r in cursor.fetchall()}
        for key, ctx in held.items():
            if key not in alive:
                log.warning("Lease lost for run %s step %s attempt %s", *key)
                ctx.cancelled.set()


HEARTBEATS = Heartbeats()
