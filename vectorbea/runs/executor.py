"""Moving runs forward: what a worker does with a message, and what the scheduler does with
an expired lease. Holds no run state between calls: every entry point reads the log.

Every outcome goes through `record()`: the facts (a step completed, failed, or was lost),
plus what `decide()` says follows from them, in ONE append. A handler failure, a lost
worker and a person's retry therefore take the same road to the next attempt.

Hot path: when a step's completion starts the next step, this worker claims that step's
lease in the same commit and runs it inline; other started steps (parallel branches) are
dispatched through the broker for other workers.
"""

import logging
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any
from uuid import UUID

from django.db import DatabaseError, connection, transaction

from vectorbea.approvals import projection as gates
from vectorbea.budgets import guard
from vectorbea.engine import (
    APPROVAL_KIND,
    BudgetWarning,
    ConcurrencyConflict,
    Deferred,
    Definition,
    ErrorClass,
    Event,
    LeaseLost,
    Recorded,
    RunState,
    StepCompleted,
    StepDeferred,
    StepError,
    StepFailed,
    decide,
    fold,
    json_problem,
    next_wake_at,
)
from vectorbea.eventlog import store
from vectorbea.logcontext import step_scope
from vectorbea.runs import scheduling, shutdown
from vectorbea.runs.heartbeat import HEARTBEATS, worker_id
from vectorbea.steps.registry import StepContext, StepResult, get_kind
from vectorbea.steps.templating import (
    effective_config,
    render_config,
    render_step_config,
    template_context,
)

log = logging.getLogger(__name__)

MAX_CONFLICT_RETRIES = 50
ADVANCE_QUEUE = "runs"  # wake-ups: housekeeping, runs ordinary steps inline
MAX_OUTPUT_BYTES = 1_000_000


def then_decide(definition: Definition, facts: Sequence[Event]) -> store.Build:
    """A build callback for store.append: the facts, then decide()'s consequences."""

    def build(state: RunState, now: datetime) -> list[Event]:
        tentative = fold(
            [Recorded(state.last_seq + i, now, e) for i, e in enumerate(facts, 1)], state
        )
        return [*facts, *decide(tentative, definition, now, render=render_step_config)]

    return build


@dataclass(frozen=True)
class RunRef:
    """What an entry point knows of a run for its whole call: who it is and its pinned
    definition. Its state is carried separately, as it changes with every append."""

    id: UUID
    workspace_id: UUID
    definition: Definition

    @cached_property
    def has_gates(self) -> bool:
        return any(step.kind == APPROVAL_KIND for step in self.definition.steps.values())

    @classmethod
    def of(cls, loaded: store.Loaded) -> "RunRef":
        return cls(loaded.run_id, loaded.workspace_id, loaded.definition)


def advance(run_id: UUID) -> None:
    """Wake-up: decide what is due (a retry, a ready step, the run's end) and do it."""
    try:
        loaded = store.load(run_id)
        run = RunRef.of(loaded)
        appended = _append(run, loaded.state, loaded.clock, [], claim=True)
        if appended is None or not appended.events:
            _settle_wake_at(run, loaded.state, loaded.clock.now())
            return
        current = _dispatch_others(run, appended)
        _drive(run, appended.state, appended.clock, current, ADVANCE_QUEUE)
    except LookupError:
        log.warning("Asked to advance run %s, which does not exist", run_id)
    except DatabaseError:
        log.warning("Database unavailable while advancing run %s; the scheduler will retry", run_id)
        connection.close()


def execute_step(run_id: UUID, step_id: str, attempt: int) -> None:
    """A dispatched step: claim its lease (exactly one delivery wins), run it, continue."""
    try:
        loaded = store.claim_and_load(run_id, step_id, attempt, worker_id())
        if loaded is None:  # another delivery won it, or the attempt is over
            return
        run = RunRef.of(loaded)
        queue = scheduling.queue_of(run.definition, step_id)
        _drive(run, loaded.state, loaded.clock, (step_id, attempt), queue)
    except DatabaseError as exc:
        log.warning(
            "Database error while running %s/%s (%s); its lease will expire and be recovered",
            run_id,
            step_id,
            str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__,
        )
        connection.close()


def mark_lost(run_id: UUID, step_id: str, attempt: int) -> None:
    """The holder of this attempt's lease stopped heartbeating: record it as worker_lost."""
    loaded = store.load(run_id)
    run = RunRef.of(loaded)
    lost = StepFailed(
        step_id=step_id,
        attempt=attempt,
        error_class=ErrorClass.WORKER_LOST,
        message="The worker running this attempt stopped responding (its lease expired).",
    )
    appended = _append(run, loaded.state, loaded.clock, [lost], claim=False)
    if appended is None:  # the log no longer has this attempt running: an orphaned lease
        with connection.cursor() as cursor:
            cursor.execute(
                "DELETE FROM eventlog_steplease WHERE run_id = %s AND step_id = %s "
                "AND attempt = %s",
                [run_id, step_id, attempt],
            )
        return
    for started_step, started_attempt in appended.started:
        queue = scheduling.queue_of(run.definition, started_step)
        scheduling.dispatch(run_id, started_step, started_attempt, queue)


def _drive(
    run: RunRef,
    state: RunState,
    clock: store.DbClock,
    current: tuple[str, int] | None,
    queue: str,
) -> None:
    """Run `current`, record its outcome with its consequences, and go on inline with the
    next step it started, until the run waits, ends, or is no longer ours."""
    while current is not None:
        step_id, attempt = current
        if shutdown.STOPPING.is_set() or not _runs_here(run, step_id, queue):
            _hand_back(run, step_id, attempt)  # another worker (or pool) runs it
            return
        facts = _run_attempt(run, state, clock, step_id, attempt)
        appended = _append(run, state, clock, facts, claim=True)
        if appended is None:
            return
        state, clock = appended.state, appended.clock
        current = _dispatch_others(run, appended)


def _runs_here(run: RunRef, step_id: str, queue: str) -> bool:
    """Inline continuation stays within a pool: a step of its own queue (an LLM call's
    "llm") runs only on the workers that consume that queue; ordinary steps run anywhere."""
    step_queue = scheduling.queue_of(run.definition, step_id)
    return step_queue in (queue, scheduling.STEPS_QUEUE)


def _hand_back(run: RunRef, step_id: str, attempt: int) -> None:
    """Release a claimed lease we will not run, and dispatch the step to another worker."""
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE eventlog_steplease SET worker = '' WHERE run_id = %s AND step_id = %s "
            "AND attempt = %s AND worker = %s",
            [run.id, step_id, attempt, worker_id()],
        )
        if cursor.rowcount == 1:
            queue = scheduling.queue_of(run.definition, step_id)
            scheduling.dispatch(run.id, step_id, attempt, queue)


def _dispatch_others(run: RunRef, appended: store.Appended) -> tuple[str, int] | None:
    """The first started step is ours (claimed in the append); the rest go to the broker."""
    if not appended.started:
        return None
    for step_id, attempt in appended.started[1:]:
        scheduling.dispatch(run.id, step_id, attempt, scheduling.queue_of(run.definition, step_id))
    return appended.started[0]


def _append(
    run: RunRef,
    state: RunState,
    clock: store.DbClock,
    facts: Sequence[Event],
    *,
    claim: bool,
) -> store.Appended | None:
    """Record facts + consequences; on a conflict re-read and try again. None when the
    facts are no longer ours to record (the attempt was taken over or the run ended)."""
    build = then_decide(run.definition, facts)
    for _ in range(MAX_CONFLICT_RETRIES):
        try:
            _check_still_current(state, facts)
            with _gate_scope(run):
                appended = store.append(
                    run.id,
                    state,
                    build,
                    run.definition,
                    now=clock.now(),
                    claim_first_started=worker_id() if claim else "",
                    # With gates, the scope's own transaction (or savepoint) is the boundary.
                    savepoint=not run.has_gates,
                    workspace_id=run.workspace_id,
                )
                # The inbox's gate rows commit with the events that change them.
                gates.project_appended(run.id, appended, run.definition)
            return appended
        except ConcurrencyConflict:
            loaded = store.load(run.id)
            state, clock = loaded.state, loaded.clock
        except LeaseLost as exc:
            log.info("Discarding a late result: %s", exc)
            return None
    raise ConcurrencyConflict(run.id, state.last_seq)


def _gate_scope(run: RunRef) -> Any:
    """One transaction for the append and the gate rows when the workflow has approval
    gates; other runs keep the single-statement append (one round trip per step)."""
    if run.has_gates:
        return transaction.atomic()
    return nullcontext()


def _check_still_current(state: RunState, facts: Sequence[Event]) -> None:
    for fact in facts:
        if isinstance(fact, StepCompleted | StepFailed | StepDeferred):
            step = state.step(fact.step_id)
            if step.status != "running" or step.attempt != fact.attempt:
                raise LeaseLost(
                    f"Step {fact.step_id!r} attempt {fact.attempt} is no longer running"
                )


def _run_attempt(
    run: RunRef, state: RunState, clock: store.DbClock, step_id: str, attempt: int
) -> list[Event]:
    """Run one attempt and say what happened, as events: its outcome, then any notices it
    gave (budget warnings)."""
    ctx, outcome = _attempt(run, state, clock, step_id, attempt)
    return [
        outcome,
        *(BudgetWarning(n["scope"], int(n["percent"]), str(n["message"])) for n in ctx.notices),
    ]


def _attempt(
    run: RunRef, state: RunState, clock: store.DbClock, step_id: str, attempt: int
) -> tuple[StepContext, Event]:
    """Check the workspace's limits, render the step's config, run the handler."""
    run_id = run.id
    step = run.definition.steps[step_id]
    step_state = state.step(step_id)
    outputs = {key: s.output for key, s in state.steps.items() if s.status == "completed"}
    ctx = StepContext(
        run_id=run_id,
        workspace_id=run.workspace_id,
        step_id=step_id,
        attempt=attempt,
        idempotency_key=f"vb-{run_id}-{step_id}",
        run_input=state.input or {},
        outputs=outputs,
        workflow_id=state.workflow_id,
        correction=step_state.correction,
    )
    raw_config = effective_config(step, state)  # a person's retry may have given new ones
    try:
        kind = get_kind(step.kind)
        config = raw_config
        if kind.render_config:
            config = render_config(raw_config, template_context(state.input, outputs))
        with HEARTBEATS.holding(ctx), step_scope(run_id, step_id, attempt):
            guard.admit_step(ctx)
            result = kind.handler(config, ctx)
    except Deferred as exc:
        until = clock.now() + timedelta(seconds=exc.wait_seconds)
        return ctx, StepDeferred(step_id, attempt, until.isoformat(), exc.reason, exc.message)
    except StepError as exc:
        return ctx, StepFailed(
            step_id,
            attempt,
            str(exc.error_class),
            exc.message,
            exc.retry_after_seconds,
            usage=None if _usage_problem(exc.usage) else exc.usage,
            detail=None if _detail_problem(exc.detail) else exc.detail,
        )
    except Exception as exc:  # a bug in a handler or a tool: retried as transient
        log.exception("Step %s of run %s raised", step_id, run_id)
        return ctx, StepFailed(step_id, attempt, ErrorClass.TRANSIENT, _describe(exc))
    if not isinstance(result, StepResult):
        result = StepResult(result)
    usage_problem = _usage_problem(result.usage)
    usage = None if usage_problem else result.usage
    problem = _output_problem(result.output) or usage_problem
    if problem:
        return ctx, StepFailed(step_id, attempt, ErrorClass.PERMANENT, problem, usage=usage)
    return ctx, StepCompleted(step_id, attempt, result.output, result.ports, usage=usage)


def _describe(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}"[:500] if text else type(exc).__name__


def _output_problem(output: Any) -> str | None:
    """Why an output may not be recorded (too big, too deeply nested, not JSON), or None."""
    if output is None:
        return None
    return json_problem(output, "The step's output", max_bytes=MAX_OUTPUT_BYTES)


def _usage_problem(usage: Any) -> str | None:
    if usage is None:
        return None
    if not isinstance(usage, dict):
        return "The step reported its usage as something other than an object."
    return json_problem(usage, "The step's usage report", max_bytes=10_000, max_depth=4)


def _detail_problem(detail: Any) -> str | None:
    if detail is None:
        return None
    if not isinstance(detail, dict):
        return "The step reported its failure detail as something other than an object."
    return json_problem(detail, "The step's failure detail", max_bytes=64_000, max_depth=8)


def _settle_wake_at(run: RunRef, state: RunState, now: datetime) -> None:
    """Nothing was due: put the scheduler's next look back where the log says it belongs."""
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE eventlog_runsummary SET wake_at = %s WHERE run_id = %s AND last_seq = %s",
            [next_wake_at(state, run.definition, now), run.id, state.last_seq],
        )
