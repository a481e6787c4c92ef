"""Events in plain language: one sentence per event, for the terminal and the run page."""

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

from django.core.exceptions import ValidationError

from vectorbea.engine import (
    ERROR_CLASS_POLICY,
    AgentTurnCompleted,
    ApprovalDenied,
    ApprovalEscalated,
    ApprovalGranted,
    ApprovalRequested,
    ApprovalTimedOut,
    AttentionResolved,
    BudgetWarning,
    CallCharged,
    CorrectionAttempted,
    ErrorClass,
    LoopRestarted,
    OutputCorrected,
    Recorded,
    RetryScheduled,
    RunAdmitted,
    RunCancelled,
    RunCompleted,
    RunFailed,
    RunNeedsAttention,
    RunPaused,
    RunQueued,
    RunResumed,
    RunStarted,
    StepCompleted,
    StepDeferred,
    StepFailed,
    StepInterrupted,
    StepSkipped,
    StepStarted,
    StepWaiting,
    ToolCallCompleted,
    ToolCallFailed,
    ToolCallStarted,
    event_to_payload,
)
from vectorbea.engine.graph import Definition


def _error_label(error_class: str) -> str:
    try:
        return ERROR_CLASS_POLICY[ErrorClass(error_class)].label
    except (ValueError, KeyError):
        return error_class


def _via(via: str | None) -> str:
    """The program a run was started through, as the timeline says it."""
    kind, _, name = (via or "").partition(":")
    match kind:
        case "api":
            return f" via the API token “{name}”"
        case "webhook":
            return " via a webhook"
        case "schedule":
            return " via a schedule"
    return f" via {via}" if via else ""


def describe(recorded: Recorded, names: dict[str, str] | None = None) -> str:
    names = names or {}
    event = recorded.event
    step = getattr(event, "step_id", None)
    label = f"Step '{names.get(step, step)}'" if step else ""
    match event:
        case RunStarted():
            who = f" by {event.started_by}" if event.started_by else ""
            return f"Run started{who}{_via(event.via)}"
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
            when = f"in {event.backoff_seconds:.1f} s" if event.backoff_seconds >= 0.05 else "now"
            return f"{label} will retry {when} — attempt {event.next_attempt}{who}"
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
        case RunPaused(stopped=True):
            return f"Stopped by the kill switch ({event.actor}){_because(event.reason)}"
        case RunPaused():
            return (
                f"Run paused by {event.actor}{_because(event.reason)}. "
                "Running steps finish; no new step starts"
            )
        case RunResumed():
            return f"Run resumed by {event.actor}"
        case RunQueued():
            return f"Run queued. {_sentence(event.message)} It starts as soon as one ends"
        case RunAdmitted():
            return "Run admitted: a place is free, it starts now"
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
        case CorrectionAttempted():
            return (
                f"{label} gave an answer that did not fit: {_sentence(event.problem)} "
                f"Asked the model again with the errors (correction {event.correction} "
                f"of {event.of})."
            )
        case StepDeferred():
            why = event.message or DEFERRAL_REASONS.get(event.reason, event.reason)
            return f"{label} waits until {_clock(event.until, recorded.at)}{_because(why)}"
        case StepInterrupted():
            return f"{label} was interrupted by {event.actor}{_because(event.reason)}"
        case RunNeedsAttention():
            return f"Needs attention: {event.summary}"
        case AttentionResolved():
            return _resolved(event, names.get(event.step_id, event.step_id))
        case LoopRestarted():
            count = len(event.steps)
            return (
                f"Step '{names.get(event.source, event.source)}' looped back to step "
                f"'{names.get(event.target, event.target)}': round {event.iteration}, "
                f"{count} step{'s' if count != 1 else ''} start over"
            )
        case BudgetWarning():
            return event.message
        case CallCharged():
            return _charged(event, label)
        case AgentTurnCompleted():
            return _turn(event, label)
        case ToolCallStarted():
            return f"{label} calls the tool {event.name}"
        case ToolCallCompleted():
            return f"{label}: the tool {event.name} answered"
        case ToolCallFailed():
            what = TOOL_ERRORS.get(event.error_class, f"failed ({event.error_class})")
            return f"{label}: the call of {event.name} {what}; the model is told: {event.message}"
    return type(event).__name__


# How the timeline says why an agent's tool call gave no result (ToolCallFailed).
TOOL_ERRORS = {
    "tool_error": "raised an error",
    "invalid_arguments": "had arguments the tool cannot take",
    "unknown_tool": "named a tool the agent does not have",
    "denied": "was denied by a person",
}


def _turn(event: AgentTurnCompleted, label: str) -> str:
    """An agent's model turn: the tools it asks for, or its answer."""
    asked = [str(call.get("name")) for call in event.message.get("tool_calls") or ()]
    cost = (event.usage or {}).get("cost_usd")
    spent = f" (${cost:.4f})" if isinstance(cost, int | float) else ""
    if asked:
        return f"{label}, turn {event.turn}: the model asks for {', '.join(asked)}{spent}"
    return f"{label}, turn {event.turn}: the model answered{spent}"


# Why a call was charged apart from its attempt's outcome (CallCharged.reason).
UNANSWERED = {
    "cancelled": "the attempt was stopped while it waited",
    "timed_out": "the provider did not answer in time",
    "no_answer": "the answer was lost or unreadable",
    "worker_lost": "its worker stopped responding",
}


def _charged(event: CallCharged, label: str) -> str:
    cost = event.usage.get("cost_usd") or 0
    amount = f"${cost:.4f}" if cost < 1 else f"${cost:,.2f}"
    call = f"the model call of attempt {event.attempt}"
    if event.reason == "outcome_refused":
        return f"{label} was charged {amount} for {call}, answered after the attempt had ended"
    why = UNANSWERED.get(event.reason, event.reason)
    return (
        f"{label} was charged {amount} for {call}, the most it may have cost: "
        f"its answer was never read ({why})"
    )


DEFERRAL_REASONS = {
    "rate_limited": "the provider's rate limit",
    "concurrency": "too many steps of this kind are running",
    "budget": "a budget others hold",
}


def _resolved(event: AttentionResolved, name: str) -> str:
    """A person's answer to a step that needed attention, with their note."""
    match event.action:
        case "retry":
            text = f"{event.actor} retried step '{name}'"
            if event.config is not None:
                text += " with new settings"
            if event.version_id:
                text += f" on {_version_label(event.version_id)}"
        case "supply_output":
            text = f"{event.actor} supplied the output of step '{name}'"
        case "skip":
            text = f"{event.actor} skipped step '{name}'"
        case "fail":
            text = f"{event.actor} failed the run at step '{name}'"
        case _:
            text = f"{event.actor} resolved step '{name}' ({event.action})"
    return text + _because(event.note)


def _version_label(version_id: str) -> str:
    from vectorbea.workflows.models import WorkflowVersion

    try:
        number = (
            WorkflowVersion.objects.filter(pk=version_id).values_list("number", flat=True).first()
        )
    except (ValueError, ValidationError):  # hand-made logs name versions "v2"
        number = None
    return f"version {number}" if number is not None else "another version"


def _sentence(text: str) -> str:
    """`text` ending with one full stop."""
    text = text.strip()
    return text if text.endswith((".", "!", "?")) else f"{text}."


def _clock(iso: str, recorded_at: datetime) -> str:
    """14:03:10 UTC, with the date when it is not the day the event was recorded."""
    try:
        at = datetime.fromisoformat(iso).astimezone(UTC)
    except ValueError:
        return iso
    if at.date() == recorded_at.astimezone(UTC).date():
        return at.strftime("%H:%M:%S UTC")
    return at.strftime("%Y-%m-%d %H:%M:%S UTC")


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
    "CorrectionAttempted": "retry",
    "StepDeferred": "waiting",
    "StepInterrupted": "retry",
    "RunNeedsAttention": "attention",
    "AttentionResolved": "resolved",
    "LoopRestarted": "run",
    "BudgetWarning": "retry",
    "CallCharged": "retry",
    "RunQueued": "waiting",
    "RunAdmitted": "run",
    "AgentTurnCompleted": "run",
    "ToolCallStarted": "run",
    "ToolCallCompleted": "completed",
    "ToolCallFailed": "retry",
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
            **with_shown_status(summary.steps.get(step_id), summary.status),
        }
        for step_id in definition.topo_order
    ]


def with_texts_so_far(run_id: UUID, rows: list[dict]) -> list[dict]:
    """Step rows with the text so far of those running (a model's words, runs.partials)."""
    from vectorbea.runs import partials

    running = {row["id"]: row["attempt"] for row in rows if row["status"] == "running"}
    texts = partials.texts_so_far(run_id, running)
    return [{**row, "partial": texts.get(row["id"], "")} for row in rows]


def with_shown_status(step: dict | None, run_status: str) -> dict:
    """A summary's step with the status its badge shows: a step that gave up while the
    run waits for a person "needs attention" (its data-status stays the engine's)."""
    step = step or {"status": "pending", "attempt": 0}
    shown = step["status"]
    if shown == "gave_up" and run_status == "needs_attention":
        shown = "needs_attention"
    return {**step, "shown": shown}


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
    from vectorbea.eventlog.models import Run

    names = step_names(store.definition_for(version_id or Run.current_version_of(run_id)))
    if not failures_only:
        events = store.read_events(run_id, after, upto_seq=upto, limit=limit)
    else:
        events = read_events_of_types(run_id, FAILURE_TYPES, after, upto, limit)
    return [TimelineRow.of(r, names) for r in events]


FAILURE_TYPES = (
    "StepFailed",
    "RetryScheduled",
    "CorrectionAttempted",
    "StepInterrupted",
    "RunNeedsAttention",
    "AttentionResolved",
    "RunFailed",
    "RunCancelled",
    "ApprovalDenied",
)


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


def render_live_update(
    run_id: UUID, after: int, limit: int, *, can_operate: bool = False, workspace_slug: str = ""
) -> tuple[str, int | None]:
    """The websocket fragment with the events after `after` (and the run's status, steps,
    graph and actions), or ("", None) when there are none. Rendered by the run page's own
    partials."""
    from django.template.loader import render_to_string

    from vectorbea.eventlog.models import Run

    run = Run.objects.select_related("summary").get(pk=run_id)
    rows = timeline_rows(run_id, after, limit, version_id=run.current_version_id)
    if not rows:
        return "", None
    context = {
        **run_context(run, run.summary, workspace_slug),
        "rows": rows,
        "can_operate": can_operate,
        "live": True,  # a stop's forms already on the page keep what is typed in them
    }
    return render_to_string("runs/detail.html#live_update", context), rows[-1].seq


def run_context(run, summary, ws_slug: str) -> dict:
    """What the run page's live partials (status, steps, graph, actions, rows) need."""
    from django.urls import reverse

    from vectorbea.eventlog import store
    from vectorbea.runs.attention import attention_items
    from vectorbea.runs.graph import layout_for, with_status

    definition = store.definition_for(run.current_version_id)
    graph = layout_for(run.current_version_id)
    kwargs = {"ws": ws_slug, "run_id": run.id}
    nodes = with_status(graph, summary.steps)
    return {
        "ws_slug": ws_slug,
        "step_url": reverse("run-step", kwargs=kwargs),  # once, not once per row
        "as_of_url": reverse("run-as-of", kwargs=kwargs),
        "run": run,
        "summary": summary,
        "steps": with_texts_so_far(run.id, step_rows(definition, summary)),
        "graph": graph,
        "graph_nodes": [{**node, **with_shown_status(node, summary.status)} for node in nodes],
        # Loaded only for a run that waits for a person (its state says which steps).
        "attention": attention_items(run.id) if summary.status == "needs_attention" else [],
    }


def steps_of_state(state) -> dict[str, dict]:
    """A state's steps in the summary projection's form (for time travel)."""
    return {
        step_id: {"status": step.status, "attempt": step.attempt}
        for step_id, step in state.steps.items()
    }
