"""Running one attempt of a step: check the workspace's limits, render the step's config,
run its kind's handler under the attempt's lease, and say what happened, as events."""

import logging
import time
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
from vectorbea.steps.registry import StepContext, StepResult, get_kind
from vectorbea.steps.templating import effective_config, render_config, template_context
from workers.heartbeat import HEARTBEATS

log = logging.getLogger(__name__)

MAX_OUTPUT_BYTES = 1_000_000


def run_attempt(loaded: store.Loaded, step_id: str, attempt: int) -> list[Event]:
    """Run one attempt and say what happened, as events: its outcome, then any notices it
    gave (budget warnings)."""
    ctx, outcome = _attempt(loaded, step_id, attempt)
    return [
        outcome,
        *(BudgetWarning(n["scope"], int(n["percent"]), str(n["message"])) for n in ctx.notices),
    ]


def _attempt(loaded: store.Loaded, step_id: str, attempt: int) -> tuple[StepContext, Event]:
    """Check the workspace's limits, render the step's config, run the handler."""
    run_id, state = loaded.run_id, loaded.state
    step = loaded.definition.steps[step_id]
    step_state = state.step(step_id)
    outputs = {key: s.output for key, s in state.steps.items() if s.status == "completed"}
    ctx = StepContext(
        run_id=run_id,
        workspace_id=loaded.workspace_id,
        step_id=step_id,
        attempt=attempt,
        idempotency_key=f"vb-{run_id}-{step_id}",
        run_input=state.input or {},
        outputs=outputs,
        workflow_id=state.workflow_id,
        correction=step_state.correction,
        deadline=time.monotonic() + step.timeout_seconds,
        timeout_seconds=step.timeout_seconds,
    )
    raw_config = effective_config(step, state)  # a person's retry may have given new ones
    try:
        kind = get_kind(step.kind)
        config = raw_config
        if kind.render_config:
            config = render_config(raw_config, template_context(state.input, outputs))
        with HEARTBEATS.holding(ctx), step_scope(run_id, step_id, attempt):
            result = kind.handler(config, ctx)
    except Deferred as exc:
        until = loaded.clock.now() + timedelta(seconds=exc.wait_seconds)
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
