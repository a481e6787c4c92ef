"""Events in plain language: one sentence per event, for the terminal and (later) the page."""

from datetime import datetime

from vectorbea.engine import (
    ERROR_CLASS_POLICY,
    ErrorClass,
    OutputCorrected,
    Recorded,
    RetryScheduled,
    RunCancelled,
    RunCompleted,
    RunFailed,
    RunStarted,
    StepCompleted,
    StepFailed,
    StepSkipped,
    StepStarted,
)


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
    return type(event).__name__


def format_line(recorded: Recorded, names: dict[str, str] | None = None) -> str:
    at: datetime = recorded.at
    return f"{recorded.seq:>5}  {at:%Y-%m-%d %H:%M:%S}  {describe(recorded, names)}"
