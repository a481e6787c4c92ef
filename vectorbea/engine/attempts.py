"""A step's attempts, one by one: what the step detail shows, read from the same fold that
decides the run (an attempt is running while the folded step says so, and ends with the
event that moved the step on)."""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from vectorbea.engine.events import (
    CallCharged,
    RetryScheduled,
    StepCompleted,
    StepDeferred,
    StepFailed,
    StepInterrupted,
)
from vectorbea.engine.replay import Recorded, apply
from vectorbea.engine.state import STEP_RUNNING, RunState

# How the event that ended a running attempt says it ended.
OUTCOMES = {
    StepCompleted: "completed",
    StepFailed: "failed",
    StepInterrupted: "interrupted",
    StepDeferred: "deferred",
}


@dataclass
class Attempt:
    number: int
    started_at: datetime | None = None
    finished_at: datetime | None = None
    # running, completed, failed, interrupted (a person or a worker's shutdown stopped it;
    # it runs again) or deferred (a limit said not yet).
    outcome: str = "running"
    error_class: str = ""
    message: str = ""
    usage: Mapping[str, Any] = field(default_factory=dict)
    retry_at: str | None = None

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None


def attempts(events: Iterable[Recorded], step_id: str) -> list[Attempt]:
    """The attempts of `step_id`, oldest first, from the run's events (its own suffice): an
    attempt starts when the fold has the step running a new attempt, and ends with the
    event that records its outcome (the engine's own steps, delays and approvals, have
    only that)."""
    state = RunState.initial()
    found: dict[int, Attempt] = {}
    charges: dict[int, list[Mapping[str, Any]]] = {}
    for recorded in events:
        event = recorded.event
        if getattr(event, "step_id", None) != step_id:
            continue
        before = state.step(step_id)
        state = apply(state, recorded)
        step = state.step(step_id)
        if step.status == STEP_RUNNING and (
            before.status != STEP_RUNNING or before.attempt != step.attempt
        ):
            found[step.attempt] = Attempt(step.attempt, started_at=step.started_at)
        outcome = OUTCOMES.get(type(event))
        if outcome is not None:
            attempt = found.setdefault(event.attempt, Attempt(event.attempt))
            attempt.finished_at = recorded.at
            attempt.outcome = outcome
            attempt.usage = dict(getattr(event, "usage", None) or {})
            if isinstance(event, StepFailed):
                attempt.error_class, attempt.message = event.error_class, event.message
            elif isinstance(event, StepDeferred):
                attempt.message = event.message
            elif isinstance(event, StepInterrupted):
                attempt.message = event.reason
        elif isinstance(event, RetryScheduled) and event.next_attempt - 1 in found:
            found[event.next_attempt - 1].retry_at = event.retry_at
        elif isinstance(event, CallCharged):
            charges.setdefault(event.attempt, []).append(event.usage)
    for number, charged in charges.items():
        attempt = found.setdefault(number, Attempt(number))
        attempt.usage = _with_charges(attempt.usage, charged)
    return sorted(found.values(), key=lambda attempt: attempt.number)


def _with_charges(usage: Mapping[str, Any], charges: list[Mapping[str, Any]]) -> dict[str, Any]:
    """An attempt's usage with the calls charged to it apart from its outcome (a call whose
    answer was never read costs an estimate, and says so)."""
    usage = dict(usage)
    for charge in charges:
        usage["cost_usd"] = float(usage.get("cost_usd") or 0) + float(charge.get("cost_usd") or 0)
        usage["cost_estimated"] = bool(usage.get("cost_estimated") or charge.get("cost_estimated"))
    return usage
