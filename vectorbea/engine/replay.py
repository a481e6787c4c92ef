"""Fold: a run's state is a function of its log alone."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from functools import singledispatch

from vectorbea.engine import transcript
from vectorbea.engine.errors import OutOfOrderEvent, UnknownEvent
from vectorbea.engine.events import (
    AgentTurnCompleted,
    ApprovalDenied,
    ApprovalEscalated,
    ApprovalGranted,
    ApprovalReassigned,
    ApprovalRequested,
    ApprovalTimedOut,
    AttentionResolved,
    BudgetWarning,
    CallCharged,
    CorrectionAttempted,
    Event,
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
)
from vectorbea.engine.state import (
    RUN_CANCELLED,
    RUN_COMPLETED,
    RUN_DENIED,
    RUN_FAILED,
    RUN_RUNNING,
    STEP_COMPLETED,
    STEP_FAILED,
    STEP_GAVE_UP,
    STEP_PENDING,
    STEP_RETRY_SCHEDULED,
    STEP_RUNNING,
    STEP_SKIPPED,
    STEP_WAITING,
    RunState,
    StepState,
    add_usage,
    evolve,
)
from vectorbea.engine.waits import DENIED_PORT


def fold(recorded_events: Iterable[Recorded], state: RunState | None = None) -> RunState:
    """The state after the given events, starting from a checkpoint ``state`` when given."""
    state = RunState.initial() if state is None else state
    for recorded in recorded_events:
        state = apply(state, recorded)
    return state


def apply(state: RunState, recorded: Recorded) -> RunState:
    """The state after one recorded event."""
    if recorded.seq <= state.last_seq:
        raise OutOfOrderEvent(f"seq {recorded.seq} is not after last_seq {state.last_seq}")
    state = _apply(recorded.event, state, recorded.at)
    return evolve(state, last_seq=recorded.seq)


@singledispatch
def _apply(event: Event, state: RunState, at: datetime) -> RunState:
    raise UnknownEvent(f"fold does not know the event {type(event).__name__}")


def _with_step(state: RunState, step_id: str, step: StepState) -> RunState:
    return evolve(state, steps={**state.steps, step_id: step})


@_apply.register
def _(event: RunStarted, state: RunState, at: datetime) -> RunState:
    return evolve(
        state,
        status=RUN_RUNNING,
        workflow_id=event.workflow_id,
        version_id=event.version_id,
        input=event.input,
        started_by=event.started_by,
        started_at=at,
        limits=event.limits,
        rerun_of=event.rerun_of,
    )


@_apply.register
def _(event: StepStarted, state: RunState, at: datetime) -> RunState:
    step = evolve(
        state.step(event.step_id),
        status=STEP_RUNNING,
        attempt=event.attempt,
        retry_at=None,
        started_at=at,
        finished_at=None,
        resolution=None,
    )
    state = evolve(state, steps_started=state.steps_started + 1)
    return _with_step(state, event.step_id, step)


@_apply.register
def _(event: StepCompleted, state: RunState, at: datetime) -> RunState:
    previous = state.step(event.step_id)
    step = evolve(
        previous,
        status=STEP_COMPLETED,
        attempt=max(previous.attempt, event.attempt),
        output=event.output,
        ports=event.ports,
        error_class=None,
        error_message=None,
        retry_after_seconds=None,
        finished_at=at,
        wait_until=None,
        usage=add_usage(previous.usage, event.usage),
        failure_detail=None,
        correction=None,
    )
    return _with_step(state, event.step_id, step)


@_apply.register
def _(event: StepFailed, state: RunState, at: datetime) -> RunState:
    previous = state.step(event.step_id)
    step = evolve(
        previous,
        status=STEP_FAILED,
        attempt=max(previous.attempt, event.attempt),
        error_class=event.error_class,
        error_message=event.message,
        retry_after_seconds=event.retry_after_seconds,
        finished_at=at,
        usage=add_usage(previous.usage, event.usage),
        failures=previous.failures + 1,
        failures_total=previous.failures_total + 1,
        failure_detail=event.detail,
    )
    return _with_step(state, event.step_id, step)


@_apply.register
def _(event: RetryScheduled, state: RunState, at: datetime) -> RunState:
    step = evolve(
        state.step(event.step_id),
        status=STEP_RETRY_SCHEDULED,
        attempt=event.next_attempt - 1,
        retry_at=event.retry_at,
    )
    if event.actor is not None:  # a person's retry: a new round of attempts
        step = evolve(step, failures=0, corrections=0, correction=None)
        state = _without_attention(state, event.step_id)
    state = _with_step(state, event.step_id, step)
    if state.status not in (RUN_FAILED, RUN_DENIED):
        return state
    # "Retry from failed step" (or, at a denied gate, "ask again"): a person's retry
    # reopens the run it had ended.
    return evolve(state, status=RUN_RUNNING, error=None, failed_step_id=None, finished_at=None)


@_apply.register
def _(event: StepSkipped, state: RunState, at: datetime) -> RunState:
    step = evolve(state.step(event.step_id), status=STEP_SKIPPED, finished_at=at)
    return _with_step(state, event.step_id, step)


@_apply.register
def _(event: RunCompleted, state: RunState, at: datetime) -> RunState:
    return evolve(state, status=RUN_COMPLETED, output=event.output, finished_at=at)


@_apply.register
def _(event: RunFailed, state: RunState, at: datetime) -> RunState:
    state = evolve(
        state,
        status=RUN_DENIED if _denied_gate(state, event.step_id) else RUN_FAILED,
        error=event.reason,
        failed_step_id=event.step_id,
        finished_at=at,
        attention={},
    )
    step = state.step(event.step_id) if event.step_id is not None else None
    if event.step_id is None or step is None or step.status != STEP_FAILED:
        return state
    return _with_step(state, event.step_id, evolve(step, status=STEP_GAVE_UP))


def _denied_gate(state: RunState, step_id: str | None) -> bool:
    """Whether the run ends at an approval gate that was denied (and took its "denied"
    port, which leads nowhere): decide records that as RunFailed after the gate's
    StepCompleted; the fold tells it apart, for logs old and new alike."""
    if step_id is None:
        return False
    step = state.step(step_id)
    decision = step.decision
    return (
        step.status == STEP_COMPLETED
        and decision is not None
        and not decision.get("approved")
        and step.ports == (DENIED_PORT,)
    )


@_apply.register
def _(event: RunCancelled, state: RunState, at: datetime) -> RunState:
    return evolve(state, status=RUN_CANCELLED, error=event.reason, finished_at=at)


@_apply.register
def _(event: RunPaused, state: RunState, at: datetime) -> RunState:
    return evolve(state, paused=True, stopped=event.stopped)


@_apply.register
def _(event: RunResumed, state: RunState, at: datetime) -> RunState:
    return evolve(state, paused=False, stopped=False)


@_apply.register
def _(event: CorrectionAttempted, state: RunState, at: datetime) -> RunState:
    previous = state.step(event.step_id)
    step = evolve(
        previous,
        status=STEP_RETRY_SCHEDULED,
        attempt=event.next_attempt - 1,
        retry_at=None,  # at once
        corrections=previous.corrections + 1,
        correction={"answer": event.answer, "errors": list(event.errors), "problem": event.problem},
    )
    if previous.agent is not None:  # an agent answers again, in the same conversation
        agent = transcript.corrected(
            previous.agent, event.answer, list(event.errors), event.problem
        )
        step = evolve(step, agent=agent)
    return _with_step(state, event.step_id, step)


@_apply.register
def _(event: StepDeferred, state: RunState, at: datetime) -> RunState:
    # The attempt did not happen: the step waits, and then makes it again.
    previous = state.step(event.step_id)
    step = evolve(
        previous,
        status=STEP_WAITING,
        attempt=max(previous.attempt, event.attempt) - 1,
        retry_at=None,
        wait_until=event.until,
        wait_reason=event.reason,
        finished_at=at,
    )
    state = evolve(state, steps_started=max(0, state.steps_started - 1))
    return _with_step(state, event.step_id, step)


@_apply.register
def _(event: RunQueued, state: RunState, at: datetime) -> RunState:
    return evolve(state, queued=event.message)


@_apply.register
def _(event: RunAdmitted, state: RunState, at: datetime) -> RunState:
    return evolve(state, queued=None)


@_apply.register
def _(event: StepInterrupted, state: RunState, at: datetime) -> RunState:
    step = evolve(
        state.step(event.step_id),
        status=STEP_RETRY_SCHEDULED,
        attempt=max(state.step(event.step_id).attempt, event.attempt),
        retry_at=at.isoformat(),  # due when the run resumes
        finished_at=at,
    )
    return _with_step(state, event.step_id, step)


@_apply.register
def _(event: RunNeedsAttention, state: RunState, at: datetime) -> RunState:
    attention = {
        **state.attention,
        event.step_id: {
            "error_class": event.error_class,
            "summary": event.summary,
            "at": at.isoformat(),
        },
    }
    step = evolve(state.step(event.step_id), status=STEP_GAVE_UP, finished_at=at)
    return _with_step(evolve(state, attention=attention), event.step_id, step)


@_apply.register
def _(event: AttentionResolved, state: RunState, at: datetime) -> RunState:
    state = _without_attention(state, event.step_id)
    step = state.step(event.step_id)
    if event.action == "retry":
        if event.config is not None:
            step = evolve(step, config=dict(event.config))
        if event.version_id is not None:
            state = evolve(state, version_id=event.version_id)
    elif event.action == "supply_output":
        step = evolve(
            step,
            status=STEP_COMPLETED,
            output=event.output,
            ports=None,
            error_class=None,
            error_message=None,
            finished_at=at,
            resolution="supplied",
            correction=None,
        )
    elif event.action == "skip":
        step = evolve(step, status=STEP_SKIPPED, finished_at=at, resolution="skipped")
    return _with_step(state, event.step_id, step)


def _without_attention(state: RunState, step_id: str) -> RunState:
    if step_id not in state.attention:
        return state
    return evolve(
        state, attention={key: value for key, value in state.attention.items() if key != step_id}
    )


@_apply.register
def _(event: LoopRestarted, state: RunState, at: datetime) -> RunState:
    steps = dict(state.steps)
    for step_id in event.steps:
        old = state.step(step_id)
        # A fresh start that keeps what the step has cost and how often it has failed.
        steps[step_id] = StepState(
            status=STEP_PENDING,
            attempt=old.attempt,
            usage=old.usage,
            failures_total=old.failures_total,
        )
    loops = {**state.loops, f"{event.source}>{event.target}": event.iteration}
    return evolve(state, steps=steps, loops=loops)


@_apply.register
def _(event: BudgetWarning, state: RunState, at: datetime) -> RunState:
    return state


@_apply.register
def _(event: CallCharged, state: RunState, at: datetime) -> RunState:
    # Only what the step has cost changes: the charge may come after the attempt ended,
    # or the run did (a cancelled call is charged once its worker notices).
    previous = state.step(event.step_id)
    step = evolve(previous, usage=add_usage(previous.usage, event.usage))
    return _with_step(state, event.step_id, step)


@_apply.register
def _(event: OutputCorrected, state: RunState, at: datetime) -> RunState:
    state = _with_step(state, event.step_id, evolve(state.step(event.step_id), output=event.output))
    if isinstance(state.output, dict) and event.step_id in state.output:
        # A completed run's output holds its sinks' outputs; keep it in step with the fix.
        state = evolve(state, output={**state.output, event.step_id: event.output})
    return state


@_apply.register
def _(event: StepWaiting, state: RunState, at: datetime) -> RunState:
    return _waiting(state, event.step_id, event.attempt, event.until, event.reason, at)


@_apply.register
def _(event: ApprovalRequested, state: RunState, at: datetime) -> RunState:
    state = _waiting(state, event.step_id, event.attempt, event.timeout_at, "approval", at)
    gate = {
        "key": event.gate,
        "attempt": event.attempt,
        "title": event.title,
        "instructions": event.instructions,
        "payload": event.payload,
        "approvers": dict(event.approvers),
        "required": event.required,
        "allow_self_approval": event.allow_self_approval,
        "form": [dict(spec) for spec in event.form],
        "on_timeout": event.on_timeout,
        "escalate": event.escalate,
        "level": 0,
        "grants": [],
    }
    step = evolve(state.step(event.step_id), gate=gate)
    call_id = event.payload.get("call_id") if isinstance(event.payload, dict) else None
    if step.agent is not None and isinstance(call_id, str):  # an agent's tool call's gate
        step = evolve(step, agent=transcript.gate_opened(step.agent, call_id, event.gate))
    return _with_step(state, event.step_id, step)


@_apply.register
def _(event: ApprovalEscalated, state: RunState, at: datetime) -> RunState:
    step = state.step(event.step_id)
    gate = {
        **(step.gate or {}),
        "approvers": dict(event.approvers),
        "on_timeout": event.on_timeout,
        "escalate": None,
        "level": event.level,
    }
    return _with_step(state, event.step_id, evolve(step, gate=gate, wait_until=event.timeout_at))


@_apply.register
def _(event: ApprovalReassigned, state: RunState, at: datetime) -> RunState:
    step = state.step(event.step_id)
    gate = {**(step.gate or {}), "approvers": dict(event.approvers)}
    return _with_step(state, event.step_id, evolve(step, gate=gate))


def _waiting(
    state: RunState, step_id: str, attempt: int, until: str | None, reason: str, at: datetime
) -> RunState:
    previous = state.step(step_id)
    # A running attempt that parks itself (an agent waiting for a person) started already.
    pausing = previous.status == STEP_RUNNING and previous.attempt == attempt
    step = evolve(
        previous,
        status=STEP_WAITING,
        attempt=attempt,
        retry_at=None,
        started_at=at,
        finished_at=None,
        wait_until=until,
        wait_reason=reason,
        decision=None,
    )
    if not pausing:
        state = evolve(state, steps_started=state.steps_started + 1)
    return _with_step(state, step_id, step)


@_apply.register
def _(event: ApprovalGranted, state: RunState, at: datetime) -> RunState:
    """One approval; the gate is decided once its required number of people approved."""
    step = state.step(event.step_id)
    gate = dict(step.gate or {})
    grants = list(gate.get("grants", []))
    if all(grant["by"] != event.actor for grant in grants):
        grant = {"by": event.actor, "reason": event.reason, "fields": dict(event.fields)}
        grants.append({**grant, "at": at.isoformat()})
    gate["grants"] = grants
    state = _with_step(state, event.step_id, evolve(step, gate=gate))
    if len(grants) < gate.get("required", 1):
        return state
    fields: dict[str, object] = {}
    for grant in grants:  # everyone's fields; a later approver's value wins
        fields.update(grant["fields"])
    return _decided(state, event.step_id, True, event.actor, event.reason, fields, False, at)


@_apply.register
def _(event: ApprovalDenied, state: RunState, at: datetime) -> RunState:
    return _decided(state, event.step_id, False, event.actor, event.reason, event.fields, False, at)


@_apply.register
def _(event: ApprovalTimedOut, state: RunState, at: datetime) -> RunState:
    approved = event.outcome == "approved"
    verdict = "approved" if approved else "denied"
    reason = f"Nobody decided before the timeout, so the gate was {verdict} automatically."
    return _decided(state, event.step_id, approved, None, reason, {}, True, at)


def _decided(
    state: RunState,
    step_id: str,
    approved: bool,
    actor: str | None,
    reason: str,
    fields: dict[str, object],
    timed_out: bool,
    at: datetime,
) -> RunState:
    decision = {
        "approved": approved,
        "by": actor,
        "reason": reason,
        "fields": dict(fields),
        "timed_out": timed_out,
        "at": at.isoformat(),
    }
    step = evolve(state.step(step_id), decision=decision, wait_until=None)
    if step.agent is not None and step.gate:
        step = evolve(step, agent=transcript.gate_decided(step.agent, step.gate["key"], decision))
    return _with_step(state, step_id, step)


@_apply.register
def _(event: AgentTurnCompleted, state: RunState, at: datetime) -> RunState:
    previous = state.step(event.step_id)
    agent = transcript.turn_completed(
        previous.agent, event.attempt, event.turn, event.message, event.usage
    )
    step = evolve(previous, agent=agent, usage=add_usage(previous.usage, event.usage))
    return _with_step(state, event.step_id, step)


@_apply.register
def _(event: ToolCallStarted, state: RunState, at: datetime) -> RunState:
    previous = state.step(event.step_id)
    agent = transcript.call_started(
        previous.agent, event.call_id, event.name, event.arguments, event.idempotency_key
    )
    return _with_step(state, event.step_id, evolve(previous, agent=agent))


@_apply.register
def _(event: ToolCallCompleted, state: RunState, at: datetime) -> RunState:
    previous = state.step(event.step_id)
    agent = transcript.call_completed(previous.agent, event.call_id, event.name, event.result)
    return _with_step(state, event.step_id, evolve(previous, agent=agent))


@_apply.register
def _(event: ToolCallFailed, state: RunState, at: datetime) -> RunState:
    previous = state.step(event.step_id)
    agent = transcript.call_failed(
        previous.agent, event.call_id, event.name, event.error_class, event.message
    )
    return _with_step(state, event.step_id, evolve(previous, agent=agent))
