"""One step of one run, in detail: its attempts, what each consumed, its output and error,
and the settings it ran with (the config rendered against the run, as the executor does)."""

import json
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from vectorbea.engine.attempts import Attempt, attempts
from vectorbea.engine.graph import Definition
from vectorbea.engine.state import RunState
from vectorbea.runs.timeline import read_events_of_types

MAX_ATTEMPTS_SHOWN = 200
MAX_JSON_CHARS = 20_000
STEP_EVENT_TYPES = (
    "StepStarted",
    "StepCompleted",
    "StepFailed",
    "StepDeferred",
    "StepInterrupted",
    "RetryScheduled",
    "CorrectionAttempted",
    "AttentionResolved",
    "CallCharged",
)


@dataclass(frozen=True)
class StepDetail:
    id: str
    name: str
    kind: str
    status: str
    attempt: int
    attempts: list[Attempt]
    usage: dict[str, Any]
    output: str
    error_class: str
    error_message: str
    settings: str
    settings_rendered: bool
    settings_problem: str  # why the settings are shown as written, when a render failed
    retry_at: str | None
    wait_until: str | None
    duration_seconds: float | None


def pretty(value: Any) -> str:
    text = json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)
    if len(text) > MAX_JSON_CHARS:
        return text[:MAX_JSON_CHARS] + f"\n… ({len(text) - MAX_JSON_CHARS} more characters)"
    return text


def attempts_of(run_id: UUID, step_id: str) -> list[Attempt]:
    events = read_events_of_types(run_id, STEP_EVENT_TYPES, step_id=step_id)
    return attempts(events, step_id)[-MAX_ATTEMPTS_SHOWN:]


def _with_charges(usage: dict[str, Any], charges: list[dict[str, Any]]) -> dict[str, Any]:
    """An attempt's usage with the calls charged to it apart from its outcome (a call
    whose answer was never read costs an estimate, and says so)."""
    usage = dict(usage)
    for charge in charges:
        usage["cost_usd"] = float(usage.get("cost_usd") or 0) + float(charge.get("cost_usd") or 0)
        usage["cost_estimated"] = bool(usage.get("cost_estimated") or charge.get("cost_estimated"))
    return usage


def step_detail(
    run_id: UUID, state: RunState, definition: Definition, step_id: str
) -> StepDetail | None:
    from vectorbea.steps.templating import TemplateProblem, effective_config, preview_step_config

    step_def = definition.steps.get(step_id)
    if step_def is None:
        return None
    step = state.step(step_id)
    settings: Any = effective_config(step_def, state)
    rendered = False
    problem = ""
    if step.status != "pending":
        # A preview: rendered within the preview's smaller limits, as this runs in the web
        # process for whoever opens the page.
        try:
            settings = preview_step_config(step_def, state)
            rendered = True
        except TemplateProblem as exc:
            problem = exc.message
        except (ValueError, TypeError):
            problem = "The settings could not be rendered."
    duration = None
    if step.started_at and step.finished_at:
        duration = (step.finished_at - step.started_at).total_seconds()
    return StepDetail(
        id=step_id,
        name=step_def.name or step_id,
        kind=step_def.kind,
        status=step.status,
        attempt=step.attempt,
        attempts=attempts_of(run_id, step_id) if step.status != "pending" else [],
        usage=dict(step.usage or {}),
        output="" if step.output is None else pretty(step.output),
        error_class=step.error_class or "",
        error_message=step.error_message or "",
        settings=pretty(settings),
        settings_rendered=rendered,
        settings_problem=problem,
        retry_at=step.retry_at,
        wait_until=step.wait_until,
        duration_seconds=duration,
    )
