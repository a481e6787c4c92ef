"""Slow calls in flight: thousands per worker process, without a thread or a database
connection each.

An attempt is split in three. Claim and prepare (render the settings, check the limits,
reserve the budget) run on the Dramatiq thread that took the message: short, with the
database. The call itself (a model's answer, an HTTP response, an async tool) is awaited on
this process's one event loop, holding no thread and no connection, for as long as it
takes; at most VECTORBEA_CALLS_IN_FLIGHT at once (a thread that would start one more waits
for a place: Dramatiq then stops taking messages). Recording (finish the step: settle the
budget, check the answer; record the outcome; go on with the run's next steps) runs on one
of VECTORBEA_RECORDER_THREADS recorder threads: short again, with the database. So a
process holds at most its Dramatiq threads, its recorders and its heartbeat thread's
connections, whatever is in flight.

What holds for a step holds for a call in flight: its lease stays held and is extended by
the process's heartbeat (one statement for all of them); when the lease is taken away (a
cancel, the kill switch, a newer attempt) the call is cancelled at once, its connection
closed, and its late outcome refused; at the step's deadline it is cancelled and the
attempt fails as transient; on SIGTERM calls get the grace period, then are handed back.
"""

import asyncio
import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django.conf import settings
from django.db import close_old_connections

from vectorbea.logcontext import step_scope
from vectorbea.steps.registry import DeadlinePassed
from workers.attempt import Started

log = logging.getLogger(__name__)

Recorder = Callable[[Started, Any], None]


class Calls:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pid = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._recorders: ThreadPoolExecutor | None = None
        self._places: threading.BoundedSemaphore | None = None
        self._in_flight = 0
        self._recording = 0
        self._idle = threading.Condition(self._lock)

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def _ensure_started(self) -> None:
        """The loop thread and the recorders of this process (started again in a forked
        child, whose pid differs)."""
        if self._pid == os.getpid():
            return
        with self._lock:
            if self._pid == os.getpid():
                return
            self._loop = asyncio.new_event_loop()
            threading.Thread(target=self._loop.run_forever, name="calls-loop", daemon=True).start()
            self._recorders = ThreadPoolExecutor(
                settings.VECTORBEA_RECORDER_THREADS, thread_name_prefix="recorder"
            )
            self._places = threading.BoundedSemaphore(settings.VECTORBEA_CALLS_IN_FLIGHT)
            self._in_flight = self._recording = 0
            self._pid = os.getpid()

    def submit(self, started: Started, record: Recorder) -> None:
        """Make `started`'s call on the loop, then `record(started, outcome)` on a recorder
        thread (`outcome`: what the call returned, or the exception it raised). Waits for a
        place when VECTORBEA_CALLS_IN_FLIGHT calls are in flight."""
        self._ensure_started()
        assert self._loop is not None and self._places is not None
        self._places.acquire()
        with self._lock:
            self._in_flight += 1
        future = asyncio.run_coroutine_threadsafe(self._make(started, record), self._loop)
        future.add_done_callback(_log_unexpected)

    async def _make(self, started: Started, record: Recorder) -> None:
        ctx = started.ctx
        task = asyncio.current_task()
        assert task is not None and self._loop is not None
        loop = self._loop
        ctx.on_cancel(lambda: loop.call_soon_threadsafe(task.cancel))
        try:
            left = None if ctx.deadline is None else max(0.0, ctx.deadline - time.monotonic())
            with step_scope(ctx.run_id, ctx.step_id, ctx.attempt):  # its log lines name it
                outcome: Any = await asyncio.wait_for(started.pending.call(), timeout=left)
        except TimeoutError as exc:  # wait_for's, at the deadline (or the call's own)
            past = ctx.deadline is not None and time.monotonic() >= ctx.deadline
            outcome = DeadlinePassed() if past else exc
        except asyncio.CancelledError as exc:
            outcome = exc
        except Exception as exc:  # the call's own failure: its finish says what it means
            outcome = exc
        finally:
            with self._lock:
                self._in_flight -= 1
                self._recording += 1
            assert self._places is not None
            self._places.release()
        assert self._recorders is not None
        self._recorders.submit(self._record, started, outcome, record)

    def _record(self, started: Started, outcome: Any, record: Recorder) -> None:
        close_old_connections()  # as Django does per request: a broken one is replaced
        try:
            record(started, outcome)
        except Exception:
            log.exception(
                "Recording run %s step %s attempt %s failed; its lease will expire and be "
                "recovered",
                started.loaded.run_id,
                started.step_id,
                started.attempt,
            )
        finally:
            with self._lock:
                self._recording -= 1
                self._idle.notify_all()

    def on_recorders(self, work: Callable[[Any], Any], items: list[Any]) -> list[Any]:
        """`work(item)` for each item on the recorder threads (with their database
        connections), several at once; the results, in order."""
        self._ensure_started()
        assert self._recorders is not None
        return list(self._recorders.map(work, items))

    def drain(self, timeout: float) -> bool:
        """Wait until nothing is in flight or being recorded; False if `timeout` passed."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._in_flight or self._recording:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(min(left, 0.1))
        return True


def _log_unexpected(future: Any) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.error("A call in flight failed unexpectedly", exc_info=future.exception())


CALLS = Calls()
