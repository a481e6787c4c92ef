"""Keeping step leases alive while their attempts run.

One daemon thread per worker process extends, in one UPDATE, the leases of every attempt
this process is running. An attempt whose lease is gone (taken over after the process
stalled, or the run was cancelled) has its StepContext cancelled: the handler should stop,
and its late result is refused anyway by the lease check of the append.
"""

import logging
import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from django.db import connection

from vectorbea.eventlog import leases
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
        alive = leases.extend(worker_id(), held)
        for key, ctx in held.items():
            if key not in alive:
                log.warning("Lease lost for run %s step %s attempt %s", *key)
                ctx.cancelled.set()


HEARTBEATS = Heartbeats()
