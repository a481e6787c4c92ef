"""Graceful shutdown of a worker process (SIGTERM, e.g. a deploy): nothing lost, nothing
done twice, and the process gone within a bounded time.

When Dramatiq begins to stop the worker:
1. No new step is started here: a step this worker would have continued inline is handed
   back (its lease released and dispatched, so another worker claims it at once).
2. Attempts in flight get VECTORBEA_SHUTDOWN_GRACE_SECONDS to finish. Those still running
   after that are interrupted: a StepInterrupted event ends their lease and the run goes
   on, on another worker, with the next attempt, without counting a failure. Their
   handlers are cancelled (LLM and HTTP calls are abandoned) and any late result is
   refused by the lease check.
"""

import logging
import threading
from typing import Any
from uuid import UUID

from django.conf import settings
from django.db import connection

from vectorbea.engine import Event, LeaseLost, StepInterrupted
from vectorbea.eventlog import store
from vectorbea.eventlog.record import record
from workers.heartbeat import HEARTBEATS

log = logging.getLogger(__name__)

STOPPING = threading.Event()
ACTOR = "worker shutdown"
REASON = "The worker running it was stopped (a deploy or restart); it runs again elsewhere."


def begin() -> None:
    """The process is stopping: start no new steps; interrupt what is left after grace."""
    if STOPPING.is_set():
        return
    STOPPING.set()
    grace = settings.VECTORBEA_SHUTDOWN_GRACE_SECONDS
    log.info("Worker stopping: in-flight steps have %.0f s to finish", grace)
    timer = threading.Timer(grace, hand_back_all)
    timer.daemon = True
    timer.start()


def hand_back_all() -> int:
    """Interrupt every attempt this process still holds (on the recorder threads, several
    at once: a process may hold a thousand calls in flight); returns how many."""
    from workers.calls import CALLS

    held = HEARTBEATS.held()
    handed = sum(CALLS.on_recorders(_hand_back, list(held.items())))
    log.info("Handed back %d step attempt(s)", handed)
    return handed


def _hand_back(item: tuple[tuple[UUID, str, int], Any]) -> bool:
    (run_id, step_id, attempt), ctx = item
    try:
        return interrupt(run_id, step_id, attempt)
    except Exception:
        log.exception("Could not hand back %s/%s#%s", run_id, step_id, attempt)
        connection.close()
        return False
    finally:
        ctx.cancel()  # after the interruption: its late outcome is refused, not a failure


def interrupt(run_id: UUID, step_id: str, attempt: int) -> bool:
    """Record that this attempt was stopped here; False when it is no longer running."""

    def facts(loaded: store.Loaded) -> list[Event]:
        step = loaded.state.step(step_id)
        if loaded.state.is_terminal or step.status != "running" or step.attempt != attempt:
            raise LeaseLost("no longer running")
        return [StepInterrupted(step_id, attempt, ACTOR, REASON)]

    try:
        record(run_id, facts)
    except LeaseLost:
        return False
    return True
