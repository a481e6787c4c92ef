"""Events in plain language: one sentence per event, for the terminal and (later) the page."""

import json
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from vectorbea.engine import (
    ERROR_CLASS_POLICY,
    ApprovalDenied,
    ApprovalEscalated,
    ApprovalGranted,
    ApprovalRequested,
    ApprovalTimedOut,
    ErrorClass,
    OutputCorrected,
    Recorded,
    RetryScheduled,
    RunCancelled,
    RunCompleted,
    RunFailed,
    RunPaused,
    RunResumed,
    RunStarted,
    StepCompleted,
    StepFailed,
    StepSkipped,
    StepStarted,
    StepWaiting,
    event_to_payload,
)
from vectorbea.engine.graph import Definition


def _error_label(error_class: str) -> str:
    try:
        return ERROR_CLASS_POLICY[ErrorClass(error_class)].label
    except (ValueError, KeyError):
        return error_class


def describe(recorded: Recorded, names: dict[str, str] | None = None) -> str:
    names = names or {}
    event = recorded.event
    step = getattr(event, "step_id", None)
    label = f"Step '{names.get(step, step)}'" if step else ""
    match event:
        case RunStarted():
            who = f" by {event.started_by}" if event.started_by else ""
            return f"Run started{who}"
        case StepStarted(attempt=1):
            return f"{label} started"
        case StepStarted():
            return f"{label} started, attempt {event.attempt}"
        case StepCompleted():
            return f"{label} completed (attempt {event.attempt})"
        case StepFailed():
            return f"{label} failed: {_error_label(event.error_class)} — {event.message}"
        case RetryScheduled():
            who = f" (asked by {event.actor})" if event.actor else ""
            return (
                f"{label} will retry in {event.backoff_seconds:.1f} s — "
                f"attempt {event.next_attempt}{who}"
            )
        case StepSkipped():
            return f"{label} skipped: {event.reason}"
        case RunCompleted():
            return "Run completed"
        case RunFailed():
            return f"Run failed: {event.reason}"
        case RunCancelled():
            return f"Run cancelled by {event.actor or 'the system'}: {event.reason}"
        case OutputCorrected():
            return f"{label} output corrected by {event.actor}: {event.reason}"
        case RunPaused():
            return (
                f"Run paused by {event.actor}{_because(event.reason)}. "
                "Running steps finish; no new step starts"
            )
        case RunResumed():
            return f"Run resumed by {event.actor}"
        case StepWaiting(until=None):
            return f"{label} is waiting ({event.reason})"
        case StepWaiting():
            return f"{label} is waiting until {_when(event.until)} ({event.reason})"
        case ApprovalRequested():
            return f"{label} waits for approval: “{event.title}”{_deadline(event.timeout_at)}"
        case ApprovalGranted():
            return f"{label} approved by {event.actor}{_because(event.reason)}"
        case ApprovalDenied():
            return f"{label} denied by {event.actor}{_because(event.reason)}"
        case ApprovalTimedOut():
            return f"{label}: nobody decided in time, so it was {event.outcome}"
        case ApprovalEscalated():
            return (
                f"{label}: nobody decided in time, so it was escalated to "
                f"{_approvers(event.approvers)}{_deadline(event.timeout_at)}"
            )
    return type(event).__name__


def _approvers(approvers: dict) -> str:
    """{"roles": ["admin"], "users": ["carol"]} as "admins and carol"."""
    names = [f"{role}s" for role in approvers.get("roles", [])] + list(approvers.get("users", []))
    if len(names) <= 1:
        return names[0] if names else "nobody"
    return ", ".join(names[:-1]) + " and " + names[-1]


def _because(reason: str) -> str:
    return f": {reason}" if reason else ""


def _deadline(timeout_at: str | None) -> str:
    return f"; decide by {_when(timeout_at)}" if timeout_at else ""


def _when(iso: str | None) -> str:
    if not iso:
        return ""
    try:
        return datetime.fromisoformat(iso).strftime("%Y-%m-%d %H:%M:%S UTC")
    except ValueError:
        return iso


def format_line(recorded: Recorded, names: dict[str, str] | None = None) -> str:
    at: datetime = recorded.at
    return f"{recorded.seq:>5}  {at:%Y-%m-%d %H:%M:%S}  {describe(recorded, names)}"


KIND_OF = {
    "RunStarted": "run",
    "StepStarted": "started",
    "StepCompleted": "completed",
    "StepFailed": "failed",
    "RetryScheduled": "retry",
    "StepSkipped": "skipped",
    "RunCompleted": "run-completed",
    "RunFailed": "run-failed",
    "RunCancelled": "cancelled",
    "OutputCorrected": "corrected",
    "RunPaused": "retry",
    "RunResumed": "run",
    "StepWaiting": "waiting",
    "ApprovalRequested": "waiting",
    "ApprovalGranted": "completed",
    "ApprovalDenied": "failed",
    "ApprovalTimedOut": "retry",
    "ApprovalEscalated": "waiting",
}


@dataclass(frozen=True)
class TimelineRow:
    """One event as the timeline shows it: the same for the page and the websocket."""

    seq: int
    at: datetime
    type: str
    kind: str
    text: str
    step_id: str | None
    raw: str
    retry_at: str | None  # when a scheduled retry or a timer is due: the page counts down

    @property
    def is_failure(self) -> bool:
        return self.type in FAILURE_TYPES

    @classmethod
    def of(cls, recorded: Recorded, names: dict[str, str]) -> "TimelineRow":
        event = recorded.event
        type_name = type(event).__name__
        return cls(
            seq=recorded.seq,
            at=recorded.at,
            type=type_name,
            kind=KIND_OF.get(type_name, "other"),
            text=describe(recorded, names),
            step_id=getattr(event, "step_id", None),
            raw=json.dumps(event_to_payload(event), indent=2, sort_keys=True, default=str),
            retry_at=(
                getattr(event, "retry_at", None)
                or getattr(event, "until", None)
                or getattr(event, "timeout_at", None)
            ),
        )


def step_names(definition: Definition) -> dict[str, str]:
    return {step_id: step.name or step_id for step_id, step in definition.steps.items()}


def step_rows(definition: Definition, summary) -> list[dict]:
    """The run's steps in graph order with their status from the summary projection."""
    names = step_names(definition)
    return [
        {
            "id": step_id,
            "name": names[step_id],
            "kind": definition.steps[step_id].kind,
            **summary.steps.get(step_id, {"status": "pending", "attempt": 0}),
        }
        for step_id in definition.topo_order
    ]


def timeline_rows(
    run_id: UUID,
    after: int = 0,
    limit: int | None = None,
    *,
    upto: int | None = None,
    failures_only: bool = False,
    version_id: UUID | None = None,
) -> list[TimelineRow]:
    """A page of the timeline by seq: the events after `after` (up to `upto`), optionally
    only the failures. Reads one run's rows by primary key, never more than `limit`."""
    from vectorbea.eventlog import store

    names = step_names(store.definition_for(version_id or _version_of(run_id)))
    if not failures_only:
        events = store.read_events(run_id, after, upto_seq=upto, limit=limit)
    else:
        events = read_events_of_types(run_id, FAILURE_TYPES, after, upto, limit)
    return [TimelineRow.of(r, names) for r in events]


FAILURE_TYPES = ("StepFailed", "RetryScheduled", "RunFailed", "RunCancelled", "ApprovalDenied")


def read_events_of_types(
    run_id: UUID,
    types: tuple[str, ...],
    after: int = 0,
    upto: int | None = None,
    limit: int | None = None,
    step_id: str | None = None,
) -> list[Recorded]:
    from vectorbea.eventlog import store

    return store.read_events(run_id, after, upto, limit, types=types, step_id=step_id)


def _version_of(run_id: UUID) -> UUID:
    from vectorbea.eventlog.models import Run

    return Run.objects.values_list("version_id", flat=True).get(pk=run_id)


def render_live_update(
    run_id: UUID, after: int, limit: int, *, can_operate: bool = False, workspace_slug: str = ""
) -> tuple[str, int | None]:
    """The websocket fragment with the events after `after` (and the run's status, steps,
    graph and actions), or ("", None) when there are none. Rendered by the run page's own
    partials."""
    from django.template.loader import render_to_string

    from vectorbea.eventlog.models import Run

    run = Run.objects.select_related("summary").get(pk=run_id)
    rows = timeline_rows(run_id, after, limit, version_id=run.version_id)
    if not rows:
        return "", None
    context = {
        **run_context(run, run.summary, workspace_slug),
        "rows": rows,
        "can_operate": can_operate,
    }
    return render_to_string("runs/detail.html#live_update", context), rows[-1].seq


def run_context(run, summary, ws_slug: str) -> dict:
    """What the run page's live partials (status, steps, graph, actions, rows) need."""
    from django.urls import reverse

    from vectorbea.eventlog import store
    from vectorbea.runs.graph import layout_for, with_status

    definition = store.definition_for(run.version_id)
    graph = layout_for(run.version_id)
    kwargs = {"ws": ws_slug, "run_id": run.id}
    return {
        "ws_slug": ws_slug,
        "step_url": reverse("run-step", kwargs=kwargs),  # once, not once per row
        "as_of_url": reverse("run-as-of", kwargs=kwargs),
        "run": run,
        "summary": summary,
        "steps": step_rows(definition, summary),
        "graph": graph,
        "graph_nodes": with_status(graph, summary.steps),
    }


def steps_of_state(state) -> dict[str, dict]:
    """A state's steps in the summary projection's form (for time travel)."""
    return {
        step_id: {"status": step.status, "attempt": step.attempt}
        for step_id, step in state.steps.items()
    }
