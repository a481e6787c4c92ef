"""Decide: the only place that chooses what happens next in a run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Literal

from vectorbea.engine.errors import class_policy
from vectorbea.engine.events import (
    Event,
    Recorded,
    RetryScheduled,
    RunCompleted,
    RunFailed,
    StepSkipped,
    StepStarted,
)
from vectorbea.engine.graph import Definition, Edge
from vectorbea.engine.replay import apply
from vectorbea.engine.retry import retry_delay_seconds
from vectorbea.engine.state import (
    RUN_RUNNING,
    STEP_COMPLETED,
    STEP_FAILED,
    STEP_PENDING,
    STEP_RETRY_SCHEDULED,
    STEP_SKIPPED,
    RunState,
)

EdgeStatus = Literal["taken", "dead", "unresolved"]
SKIP_REASON_BRANCH_NOT_TAKEN = "branch not taken"


def decide(state: RunState, definition: Definition, now: datetime) -> list[Event]:
    """The events that should be appended next, in topological order of the steps."""
    if state.status != RUN_RUNNING:
        return []
    now = _utc(now)
    decided = _Decided(state)
    for step_id in definition.topo_order:
        if decided.state.step(step_id).status == STEP_FAILED:
            event = _after_failure(decided.state, definition, step_id, now)
            if isinstance(event, RunFailed):
                return [event]
            decided.add(event, now)
    for step_id in definition.topo_order:
        decided.add_all(_next_for_step(decided.state, definition, step_id, now), now)
    if _all_steps_done(decided.state, definition):
        decided.add(RunCompleted(output=_run_output(decided.state, definition)), now)
    return decided.events


def next_wake_at(state: RunState, definition: Definition, now: datetime) -> datetime | None:
    """When a worker next needs to look at the run; None when only a running step can move it."""
    if decide(state, definition, now):
        return now
    if state.status != RUN_RUNNING:
        return None
    retry_times = [
        datetime.fromisoformat(step.retry_at)
        for step in state.steps.values()
        if step.status == STEP_RETRY_SCHEDULED and step.retry_at is not None
    ]
    return min(retry_times, default=None)


def edge_status(edge: Edge, state: RunState) -> EdgeStatus:
    """Taken when its source completed through it; dead when it never will be."""
    source = state.step(edge.source)
    if source.status == STEP_SKIPPED:
        return "dead"
    if source.status != STEP_COMPLETED:
        return "unresolved"
    if source.ports is None or edge.port in source.ports:
        return "taken"
    return "dead"


class _Decided:
    """Events decided so far, and the state they lead to (folded with the same rules)."""

    def __init__(self, state: RunState) -> None:
        self.state = state
        self.events: list[Event] = []

    def add(self, event: Event, now: datetime) -> None:
        self.events.append(event)
        self.state = apply(self.state, Recorded(self.state.last_seq + 1, now, event))

    def add_all(self, events: list[Event], now: datetime) -> None:
        for event in events:
            self.add(event, now)


def _after_failure(
    state: RunState, definition: Definition, step_id: str, now: datetime
) -> RetryScheduled | RunFailed:
    step = state.step(step_id)
    step_def = definition.steps[step_id]
    error_class = step.error_class or "transient"
    if class_policy(error_class).retryable and step.attempt < step_def.retry.maximum_attempts:
        delay = retry_delay_seconds(
            step_def.retry, step.attempt, _jitter_seed(state, step_id), step.retry_after_seconds
        )
        return RetryScheduled(
            step_id=step_id,
            next_attempt=step.attempt + 1,
            retry_at=(now + timedelta(seconds=delay)).isoformat(),
            backoff_seconds=delay,
            reason=error_class,
        )
    return RunFailed(reason=_failure_reason(state, definition, step_id), step_id=step_id)


def _failure_reason(state: RunState, definition: Definition, step_id: str) -> str:
    step = state.step(step_id)
    name = definition.steps[step_id].name
    error_class = step.error_class or "transient"
    label = class_policy(error_class).label
    attempts = "1 attempt" if step.attempt == 1 else f"{step.attempt} attempts"
    if class_policy(error_class).retryable:
        summary = f"Step '{name}' gave up after {attempts} ({label})"
    else:
        summary = f"Step '{name}' failed after {attempts} and will not be retried ({label})"
    return f"{summary}: {step.error_message}" if step.error_message else f"{summary}."


def _jitter_seed(state: RunState, step_id: str) -> str:
    started = state.started_at.isoformat() if state.started_at else ""
    return (
        f"{state.workflow_id}|{state.version_id}|{started}|{step_id}|{state.step(step_id).attempt}"
    )


def _next_for_step(
    state: RunState, definition: Definition, step_id: str, now: datetime
) -> list[Event]:
    step = state.step(step_id)
    if step.status == STEP_RETRY_SCHEDULED:
        due = step.retry_at is None or datetime.fromisoformat(step.retry_at) <= now
        return [StepStarted(step_id, step.attempt + 1)] if due else []
    if step.status != STEP_PENDING:
        return []
    statuses = [edge_status(edge, state) for edge in definition.incoming[step_id]]
    if "unresolved" in statuses:
        return []
    if not statuses or "taken" in statuses:
        return [StepStarted(step_id, 1)]
    return [StepSkipped(step_id, reason=SKIP_REASON_BRANCH_NOT_TAKEN)]


def _all_steps_done(state: RunState, definition: Definition) -> bool:
    done = (STEP_COMPLETED, STEP_SKIPPED)
    return all(state.step(step_id).status in done for step_id in definition.steps)


def _run_output(state: RunState, definition: Definition) -> dict[str, object]:
    return {
        sink: state.step(sink).output
        for sink in definition.sinks
        if state.step(sink).status == STEP_COMPLETED
    }


def _utc(now: datetime) -> datetime:
    if now.tzinfo is None:
        raise ValueError("decide needs an aware datetime for now (UTC)")
    return now.astimezone(UTC)
