"""Trying one step from the builder: its handler, with sample input and sample outputs of
earlier steps, run here and now, without a run.

Nothing is written to the event log. The step runs exactly as a worker would run it (its
config rendered, then its kind's handler, a slow call made through registry.run_now), so
what guards a run guards a trial too: the SSRF guard, the workspace's secrets (never
shown), its provider keys, and its budgets and rate limits (a paid call is charged to the
ledger like any other, against a run id of its own)."""

import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from vectorbea.engine import Deferred, ErrorClass, StepError, json_problem
from vectorbea.engine.graph import DEFAULT_TIMEOUT_SECONDS
from vectorbea.steps.flow import run_by_the_engine
from vectorbea.steps.registry import KINDS, StepContext, StepResult, load_kinds, run_now
from vectorbea.steps.templating import render_config, template_context
from vectorbea.workflows.checks import draft_issues, issues_json

log = logging.getLogger(__name__)

# A trial holds a web request open: it gives up sooner than a worker would.
TRIAL_TIMEOUT_SECONDS = 30.0
MAX_OUTPUT_BYTES = 1_000_000


class TrialRefused(Exception):
    """The step cannot be tried as it is; `problems` say why, in the builder's words."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.problems = problems or []


@dataclass(frozen=True)
class Trial:
    ok: bool
    output: Any = None
    ports: tuple[str, ...] | None = None
    error_class: str = ""
    message: str = ""
    usage: dict[str, Any] | None = None
    notices: list[str] = field(default_factory=list)
    seconds: float = 0.0


def _step(definition: Mapping[str, Any], step_id: str) -> tuple[int, Mapping[str, Any]]:
    steps = definition.get("steps")
    for index, raw in enumerate(steps if isinstance(steps, list) else ()):
        if isinstance(raw, Mapping) and raw.get("id") == step_id:
            return index, raw
    raise TrialRefused("This step is not in the draft any more.")


def _timeout(raw: Mapping[str, Any]) -> float:
    value = raw.get("timeout_seconds", DEFAULT_TIMEOUT_SECONDS)
    ok = isinstance(value, int | float) and not isinstance(value, bool) and value > 0
    return min(float(value) if ok else DEFAULT_TIMEOUT_SECONDS, TRIAL_TIMEOUT_SECONDS)


def try_step(
    workspace_id: UUID,
    workflow_id: UUID,
    definition: Mapping[str, Any],
    step_id: str,
    run_input: Mapping[str, Any],
    outputs: Mapping[str, Any],
) -> Trial:
    """Run step `step_id` of `definition` once with `run_input` and `outputs` (earlier
    steps' outputs by step id). Raises TrialRefused when its settings must be fixed first
    or its kind is not run by a worker."""
    load_kinds()
    index, raw = _step(definition, step_id)
    kind = KINDS.get(str(raw.get("kind")))
    if kind is None:
        raise TrialRefused(f"This step's kind “{raw.get('kind')}” is not installed here.")
    if kind.handler is run_by_the_engine:
        raise TrialRefused(
            f"A {kind.label.lower()} step is moved by the engine itself (it waits, or asks a "
            "person): there is nothing to try. Start a run to see it work."
        )
    prefix = f"steps[{index}].config"
    blocking = [i for i in draft_issues(definition, workspace_id) if i.path.startswith(prefix)]
    if blocking:
        problems = [item["message"] for item in issues_json(blocking, definition)]
        raise TrialRefused("Fix this step's settings first:", problems)
    timeout = _timeout(raw)
    ctx = StepContext(
        run_id=uuid.uuid4(),
        workspace_id=workspace_id,
        step_id=step_id,
        attempt=1,
        idempotency_key=f"vb-trial-{uuid.uuid4()}-{step_id}",
        run_input=dict(run_input),
        outputs=dict(outputs),
        workflow_id=str(workflow_id),
        deadline=time.monotonic() + timeout,
        timeout_seconds=timeout,
    )
    config = raw.get("config") if isinstance(raw.get("config"), Mapping) else {}
    started = time.monotonic()
    trial = _run(kind, dict(config), ctx)
    notices = [str(notice.get("message", "")) for notice in ctx.notices]
    return Trial(
        trial.ok,
        trial.output,
        trial.ports,
        trial.error_class,
        trial.message,
        trial.usage,
        notices,
        round(time.monotonic() - started, 3),
    )


def _run(kind: Any, config: dict[str, Any], ctx: StepContext) -> Trial:
    try:
        if kind.render_config:
            config = render_config(config, template_context(ctx.run_input, ctx.outputs))
        result = run_now(kind.handler(config, ctx), deadline=ctx.deadline)
    except Deferred as exc:
        return Trial(False, error_class="deferred", message=f"It would wait first: {exc.message}")
    except StepError as exc:
        return Trial(False, error_class=str(exc.error_class), message=exc.message, usage=exc.usage)
    except Exception as exc:  # a bug in a tool: said, as a worker would record it
        log.exception("Trying step %s raised", ctx.step_id)
        text = str(exc).strip().splitlines()[0][:500] if str(exc).strip() else ""
        message = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
        return Trial(False, error_class=str(ErrorClass.TRANSIENT), message=message)
    if not isinstance(result, StepResult):
        result = StepResult(result)
    problem = json_problem(result.output, "The step's output", max_bytes=MAX_OUTPUT_BYTES)
    if result.output is not None and problem:
        return Trial(False, error_class=str(ErrorClass.PERMANENT), message=problem)
    return Trial(True, output=result.output, ports=result.ports, usage=result.usage)
