"""Moving runs forward: what a worker does with a message, and what the sweeper does with
an expired lease. Holds no run state between calls: every entry point reads the log.

Every outcome goes through record(): the facts (a step completed, failed, or was lost),
plus what decide() says follows from them, in ONE append. A handler failure, a lost
worker and a person's retry therefore take the same road to the next attempt.

Hot path: when a step's completion starts the next step, this worker claims that step's
lease in the same commit and runs it inline; other started steps (parallel branches) are
dispatched through the broker, by the event log's after-commit hook, for other workers.
A step whose slow part waits on the outside world hands it to the process's event loop
(workers.calls) and frees the thread; a recorder thread goes on once the call is over.
"""

import logging
import time
from collections.abc import Sequence
from uuid import UUID

from django.db import DatabaseError, connection

from vectorbea import queues
from vectorbea.engine import (
    AgentTurnCompleted,
    ApprovalRequested,
    ErrorClass,
    Event,
    LeaseLost,
    StepCompleted,
    StepDeferred,
    StepFailed,
    ToolCallCompleted,
    ToolCallFailed,
    ToolCallStarted,
    next_wake_at,
)
from vectorbea.eventlog import leases, store
from vectorbea.eventlog.record import advanced, record
from vectorbea.steps.registry import Progress
from workers import dispatch, shutdown
from workers.attempt import Started, finish_attempt, run_attempt
from workers.calls import CALLS
from workers.heartbeat import worker_id

log = logging.getLogger(__name__)


# A wake-up that hits a database error (a connection killed, a failover) tries again here
# after these pauses, in seconds, before it leaves the run to the sweeper's next look.
WAKE_RETRY_SECONDS = (0.05, 0.2, 0.5, 1.0)


def advance(run_id: UUID) -> None:
    """Wake-up: decide what is due (a retry, a ready step, the run's end) and do it."""
    for pause in (*WAKE_RETRY_SECONDS, None):
        try:
            _advance(run_id)
            return
        except LookupError:
            log.warning("Asked to advance run %s, which does not exist", run_id)
            return
        except DatabaseError as exc:
            connection.close()  # the next try opens a fresh one
            if pause is None:
                log.warning(
                    "Database unavailable while advancing run %s (%s); the sweeper will ring again",
                    run_id,
                    _first_line(exc),
                )
                return
            time.sleep(pause)


def _advance(run_id: UUID) -> None:
    loaded = store.load(run_id)
    appended = record_outcome(loaded, [], claim=True)
    if appended is None or not appended.events:
        when = next_wake_at(loaded.state, loaded.definition, loaded.clock.now())
        leases.wake_at(run_id, loaded.state.last_seq, when)
        return
    _drive(advanced(loaded, appended), _claimed(appended), queues.ADVANCE)


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def execute_step(run_id: UUID, step_id: str, attempt: int) -> None:
    """A dispatched step: claim its lease (exactly one delivery wins), run it, continue."""
    try:
        loaded = store.claim_and_load(run_id, step_id, attempt, worker_id())
        if loaded is None:  # another delivery won it, or the attempt is over
            return
        queue = dispatch.queue_of(loaded.definition, step_id)
        _drive(loaded, (step_id, attempt), queue)
    except DatabaseError as exc:
        log.warning(
            "Database error while running %s/%s (%s); its lease will expire and be recovered",
            run_id,
            step_id,
            _first_line(exc),
        )
        connection.close()


def mark_lost(run_id: UUID, step_id: str, attempt: int) -> None:
    """The holder of this attempt's lease stopped heartbeating: record it as worker_lost."""
    lost = StepFailed(
        step_id=step_id,
        attempt=attempt,
        error_class=ErrorClass.WORKER_LOST,
        message="The worker running this attempt stopped responding (its lease expired).",
    )
    if record_outcome(store.load(run_id), [lost], claim=False) is None:
        leases.forget((run_id, step_id, attempt))  # the log has it over: an orphaned lease


# What only the running attempt may record: its outcome, and an agent's progress.
ATTEMPT_FACTS = (
    StepCompleted,
    StepFailed,
    StepDeferred,
    ApprovalRequested,
    AgentTurnCompleted,
    ToolCallStarted,
    ToolCallCompleted,
    ToolCallFailed,
)


def record_outcome(
    loaded: store.Loaded, facts: Sequence[Event], *, claim: bool
) -> store.Appended | None:
    """Record what a worker found (an attempt's outcome, or nothing on a wake-up) with its
    consequences; with `claim`, this worker claims the first step they start. None when the
    facts are no longer ours to record (the attempt was taken over or the run ended)."""

    def still_current(current: store.Loaded) -> Sequence[Event]:
        for fact in facts:
            if isinstance(fact, ATTEMPT_FACTS):
                step = current.state.step(fact.step_id)
                if step.status != "running" or step.attempt != fact.attempt:
                    raise LeaseLost(
                        f"Step {fact.step_id!r} attempt {fact.attempt} is no longer running"
                    )
        return facts

    try:
        return record(
            loaded.run_id, still_current, loaded=loaded, claim=worker_id() if claim else ""
        )
    except LeaseLost as exc:
        log.info("Discarding a late result: %s", exc)
        return None


def _drive(
    loaded: store.Loaded,
    current: tuple[str, int] | None,
    queue: str,
    deadline: float | None = None,
) -> None:
    """Run `current`, record its outcome with its consequences, and go on inline with the
    next step it started, until the run waits, ends, or is no longer ours. An attempt
    that makes progress (an agent's turn or tool call) has it recorded and runs again,
    under the same lease and deadline, until it has an outcome."""
    while current is not None:
        step_id, attempt = current
        if shutdown.STOPPING.is_set() or not _runs_here(loaded, step_id, queue):
            _hand_back(loaded, step_id, attempt)  # another worker (or pool) runs it
            return
        if deadline is None:  # the attempt's, kept across its legs
            deadline = time.monotonic() + loaded.definition.steps[step_id].timeout_seconds
        outcome = run_attempt(loaded, step_id, attempt, deadline)
        if isinstance(outcome, Started):
            # Its slow part goes to the event loop; a recorder thread goes on from there.
            CALLS.submit(outcome, lambda started, answered: _go_on(started, answered, queue))
            return
        facts = list(outcome.events) if isinstance(outcome, Progress) else outcome
        appended = record_outcome(loaded, facts, claim=True)
        if appended is None:
            return
        loaded = advanced(loaded, appended)
        current, deadline = _next(loaded, appended, step_id, attempt, outcome, deadline)


def _go_on(started: Started, answered: object, queue: str) -> None:
    """On a recorder thread, once a started attempt's call is over: record its outcome (or
    its progress) and go on with the run as `_drive` does."""
    outcome = finish_attempt(started, answered)
    facts = list(outcome.events) if isinstance(outcome, Progress) else outcome
    appended = record_outcome(started.loaded, facts, claim=True)
    if appended is None:
        return
    loaded = advanced(started.loaded, appended)
    deadline = started.ctx.deadline
    current, deadline = _next(loaded, appended, started.step_id, started.attempt, outcome, deadline)
    _drive(loaded, current, queue, deadline)


def _next(
    loaded: store.Loaded,
    appended: store.Appended,
    step_id: str,
    attempt: int,
    outcome: object,
    deadline: float | None,
) -> tuple[tuple[str, int] | None, float | None]:
    """After recording: the same attempt again when it made progress and still runs (with
    its deadline), else the step this worker claimed in the append, if any."""
    step = loaded.state.step(step_id)
    if isinstance(outcome, Progress) and step.status == "running" and step.attempt == attempt:
        return (step_id, attempt), deadline
    return _claimed(appended), None


def _claimed(appended: store.Appended) -> tuple[str, int] | None:
    """The attempt this worker claimed in the append: the first one it started."""
    return appended.started[0] if appended.started else None


def _runs_here(loaded: store.Loaded, step_id: str, queue: str) -> bool:
    """Inline continuation stays within a pool: a step of its own queue (an LLM call's
    "llm") runs only on the workers that consume that queue; ordinary steps run anywhere."""
    return dispatch.queue_of(loaded.definition, step_id) in (queue, queues.STEPS)


def _hand_back(loaded: store.Loaded, step_id: str, attempt: int) -> None:
    """Release a claimed lease we will not run, and dispatch the step to another worker."""
    if leases.hand_back((loaded.run_id, step_id, attempt), worker_id()):
        queue = dispatch.queue_of(loaded.definition, step_id)
        dispatch.dispatch(loaded.run_id, step_id, attempt, queue)
