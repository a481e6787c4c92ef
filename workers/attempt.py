"""Running one attempt of a step: render the step's config, run its kind's handler under the
attempt's lease, and say what happened, as events. A step whose slow part (a model or an
HTTP call) is handed back as a PendingCall has it made on the process's event loop
(workers.calls); its outcome is said by `finish_attempt` when the call is over."""

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from vectorbea.engine import (
    BudgetWarning,
    Deferred,
    ErrorClass,
    Event,
    StepCompleted,
    StepDeferred,
    StepError,
    StepFailed,
    json_problem,
)
from vectorbea.eventlog import store
from vectorbea.logcontext import step_scope
from vectorbea.steps.registry import PendingCall, Progress, StepContext, StepResult, get_kind
from vectorbea.steps.templating import effective_config, render_config, template_context
from workers.heartbeat import HEARTBEATS

log = logging.getLogger(__name__)

MAX_OUTPUT_BYTES = 1_000_000


@dataclass
class Started:
    """An attempt whose step handed back its slow part (a PendingCall): the call is made
    on this process's event loop (workers.calls), then `finish_attempt` says how it went.
    Its lease stays held, and heartbeaten, until then."""

    loaded: store.Loaded
    step_id: str
    attempt: int
    ctx: StepContext
    pending: PendingCall


def run_attempt(
    loaded: store.Loaded, step_id: str, attempt: int, deadline: float | None = None
) -> list[Event] | Started | Progress:
    """Run one attempt and say what happened, as events (its outcome, then any notices it
    gave: budget warnings); or, when the step hands back a slow call, the Started attempt
    whose call is yet to be made (its lease stays held); or the Progress of an attempt
    that goes on (its lease stays held: the caller records it and runs the attempt again,
    passing on its `deadline`)."""
    ctx = _context(loaded, step_id, attempt, deadline)
    step = loaded.definition.steps[step_id]

    def handle() -> Any:
        kind = get_kind(step.kind)
        config = effective_config(step, loaded.state)  # a person's retry may have given new ones
        if kind.render_config:
            config = render_config(config, template_context(ctx.run_input, ctx.outputs))
        return kind.handler(config, ctx)

    HEARTBEATS.hold(ctx)
    outcome = _outcome(loaded, ctx, handle)
    if isinstance(outcome, PendingCall):
        return Started(loaded, step_id, attempt, ctx, outcome)
    HEARTBEATS.release(ctx)
    if isinstance(outcome, Progress):
        return _progress(ctx, outcome)
    return _events(ctx, outcome)


def finish_attempt(started: Started, answered: Any) -> list[Event] | Progress:
    """The outcome of a started attempt once its call is over: `answered` is what the call
    returned, or the exception it raised (CancelledError when it was cancelled)."""
    try:
        outcome = _outcome(started.loaded, started.ctx, lambda: started.pending.finish(answered))
    finally:
        HEARTBEATS.release(started.ctx)
    if isinstance(outcome, PendingCall):  # a finish may not start another call
        outcome = StepFailed(
            started.step_id, started.attempt, ErrorClass.TRANSIENT, "A call's finish made a call"
        )
    if isinstance(outcome, Progress):
        return _progress(started.ctx, outcome)
    return _events(started.ctx, outcome)


def _progress(ctx: StepContext, progress: Progress) -> Progress:
    """The progress with the notices the leg gave (budget warnings)."""
    return Progress((*progress.events, *_events(ctx, None)))


def _context(
    loaded: store.Loaded, step_id: str, attempt: int, deadline: float | None = None
) -> StepContext:
    run_id, state = loaded.run_id, loaded.state
    step = loaded.definition.steps[step_id]
    outputs = {key: s.output for key, s in state.steps.items() if s.status == "completed"}
    return StepContext(
        run_id=run_id,
        workspace_id=loaded.workspace_id,
        step_id=step_id,
        attempt=attempt,
        idempotency_key=f"vb-{run_id}-{step_id}",
        run_input=state.input or {},
        outputs=outputs,
        workflow_id=state.workflow_id,
        correction=state.step(step_id).correction,
        deadline=time.monotonic() + step.timeout_seconds if deadline is None else deadline,
        timeout_seconds=step.timeout_seconds,
        step_state=state.step(step_id),
    )


def _events(ctx: StepContext, outcome: Event | None) -> list[Event]:
    return [
        *([] if outcome is None else [outcome]),
        *(BudgetWarning(n["scope"], int(n["percent"]), str(n["message"])) for n in ctx.notices),
    ]


def _outcome(
    loaded: store.Loaded, ctx: StepContext, call: Callable[[], Any]
) -> Event | PendingCall | Progress:
    """What `call()` (a step's handler, or its finish after a slow call) means for the
    attempt, as its outcome event: completed, failed (with its class), or deferred; or the
    PendingCall the handler handed back (no outcome yet)."""
    step_id, attempt = ctx.step_id, ctx.attempt
    try:
        with step_scope(ctx.run_id, step_id, attempt):
            result = call()
    except Deferred as exc:
        until = loaded.clock.now() + timedelta(seconds=exc.wait_seconds)
        return StepDeferred(step_id, attempt, until.isoformat(), exc.reason, exc.message)
    except StepError as exc:
        return StepFailed(
            step_id,
            attempt,
            str(exc.error_class),
            exc.message,
            exc.retry_after_seconds,
            usage=None if _usage_problem(exc.usage) else exc.usage,
            detail=None if _detail_problem(exc.detail) else exc.detail,
        )
    except Exception as exc:  # a bug in a handler or a tool: retried as transient
        log.exception("Step %s of run %s raised", step_id, ctx.run_id)
        return StepFailed(step_id, attempt, ErrorClass.TRANSIENT, _describe(exc))
    if isinstance(result, PendingCall | Progress):
        return result
    if not isinstance(result, StepResult):
        result = StepResult(result)
    usage_problem = _usage_problem(result.usage)
    usage = None if usage_problem else result.usage
    problem = _output_problem(result.output) or usage_problem
    if problem:
        return StepFailed(step_id, attempt, ErrorClass.PERMANENT, problem, usage=usage)
    return StepCompleted(step_id, attempt, result.output, result.ports, usage=usage)


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
