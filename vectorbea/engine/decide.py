"""Decide: the only place that chooses what happens next in a run."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from vectorbea.engine.agent import AGENT_KIND
from vectorbea.engine.errors import (
    CORRECT,
    FAIL,
    NEEDS_ATTENTION,
    RETRY,
    StepError,
    class_policy,
)
from vectorbea.engine.events import (
    ApprovalEscalated,
    ApprovalRequested,
    ApprovalTimedOut,
    CorrectionAttempted,
    Event,
    LoopRestarted,
    Recorded,
    RetryScheduled,
    RunCompleted,
    RunFailed,
    RunNeedsAttention,
    StepCompleted,
    StepFailed,
    StepSkipped,
    StepStarted,
    StepWaiting,
)
from vectorbea.engine.graph import Definition, Edge, StepDef
from vectorbea.engine.replay import apply
from vectorbea.engine.retry import retry_delay_seconds
from vectorbea.engine.state import (
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
)
from vectorbea.engine.waits import (
    APPROVED_PORT,
    DELAY_KIND,
    DENIED_PORT,
    ENGINE_KINDS,
    LIMIT_WAIT_REASONS,
    WAIT_REASON_APPROVAL,
    WAIT_REASON_DELAY,
    approval_allows_self,
    approval_approvers,
    approval_escalation,
    approval_form,
    approval_on_timeout,
    approval_required,
    approval_text,
    approval_timeout_at,
    delay_until,
)

EdgeStatus = Literal["taken", "dead", "unresolved"]
SKIP_REASON_BRANCH_NOT_TAKEN = "branch not taken"

# Renders a step's config against the run so far (its input, earlier outputs); raises
# StepError when it cannot. decide uses it for the steps it moves itself (delays,
# approvals); without one, their configs are used as written.
ConfigRenderer = Callable[[StepDef, RunState], Mapping[str, Any]]


def decide(
    state: RunState, definition: Definition, now: datetime, render: ConfigRenderer | None = None
) -> list[Event]:
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
    if state.paused or state.queued or decided.state.attention:
        # A failure is still answered; nothing new starts until resumed, admitted or
        # resolved.
        return decided.events
    for edge in definition.loop_edges:
        decided.add_all(_loop_restart(decided.state, definition, edge), now)
    for step_id in definition.topo_order:
        events = _next_for_step(decided.state, definition, step_id, now, render)
        if events and isinstance(events[-1], RunFailed):
            return events  # as above: a run failure is the only consequence decided
        decided.add_all(events, now)
    if _all_steps_done(decided.state, definition):
        decided.add(RunCompleted(output=_run_output(decided.state, definition)), now)
    return decided.events


def next_wake_at(
    state: RunState, definition: Definition, now: datetime, *, decided: bool = False
) -> datetime | None:
    """When a worker next needs to look at the run; None when only a running step can move it.

    `decided`: `state` already holds what decide() said follows at `now` (what record()
    appends), so deciding again would find nothing: decide() reaches its fixpoint in one
    call (tests/engine/test_properties.py). Skipping it saves a second walk of the graph
    on every append."""
    if not decided and decide(state, definition, now):
        return now
    if state.status != RUN_RUNNING or state.paused or state.queued or state.attention:
        # Held by a person (paused, or a step needs attention) or waiting for a slot: no
        # timer moves the run, however late; what frees it appends, and the next look is
        # decided again then.
        return None
    times = [
        datetime.fromisoformat(step.retry_at)
        for step in state.steps.values()
        if step.status == STEP_RETRY_SCHEDULED and step.retry_at is not None
    ]
    times += [
        datetime.fromisoformat(step.wait_until)
        for step in state.steps.values()
        if step.status == STEP_WAITING and step.wait_until is not None and step.decision is None
    ]
    return min(times, default=None)


def edge_status(edge: Edge, state: RunState) -> EdgeStatus:
    """Taken when its source completed through it; dead when it never will be."""
    source = state.step(edge.source)
    if source.status == STEP_SKIPPED:
        # A step a person skipped passes the run on; a branch not taken does not. A skipped
        # step chose no path, so none of its ports' edges is taken.
        return "taken" if source.resolution == "skipped" and edge.port is None else "dead"
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
) -> RetryScheduled | CorrectionAttempted | RunNeedsAttention | RunFailed:
    """What a failed attempt leads to: the step's policy for its error class (a retry, a
    correction), and once those are used up (or the class never retries) a person's
    attention or the run's failure."""
    step = state.step(step_id)
    step_def = definition.steps[step_id]
    error_class = step.error_class or "transient"
    detail = step.failure_detail or {}
    action = detail.get("then") or step_def.on_error.get(error_class)
    action = action or class_policy(error_class).action
    guard = (state.limits or {}).get("max_attempts")
    within_guard = guard is None or step.failures_total < guard
    if action == CORRECT and within_guard and step.corrections < step_def.max_corrections:
        answer = detail.get("answer")
        if isinstance(answer, str):
            return CorrectionAttempted(
                step_id=step_id,
                next_attempt=step.attempt + 1,
                correction=step.corrections + 1,
                of=step_def.max_corrections,
                problem=step.error_message or "",
                answer=answer,
                errors=tuple(str(e) for e in detail.get("errors") or ()),
            )
    retries_used = step.failures - step.corrections
    if action == RETRY and within_guard and retries_used < step_def.retry.maximum_attempts:
        delay = retry_delay_seconds(
            step_def.retry, retries_used, _jitter_seed(state, step_id), step.retry_after_seconds
        )
        return RetryScheduled(
            step_id=step_id,
            next_attempt=step.attempt + 1,
            retry_at=(now + timedelta(seconds=delay)).isoformat(),
            backoff_seconds=delay,
            reason=error_class,
        )
    if action not in (NEEDS_ATTENTION, FAIL):
        action = step_def.on_failure
    reason = _failure_reason(state, definition, step_id, within_guard, guard)
    if action == NEEDS_ATTENTION:
        return RunNeedsAttention(step_id, error_class, reason)
    return RunFailed(reason=reason, step_id=step_id)


def _failure_reason(
    state: RunState, definition: Definition, step_id: str, within_guard: bool, guard: int | None
) -> str:
    """What was tried and why it stopped, in plain language."""
    step = state.step(step_id)
    name = definition.steps[step_id].name
    error_class = step.error_class or "transient"
    label = class_policy(error_class).label
    tries = step.failures
    attempts = "1 attempt" if tries == 1 else f"{tries} attempts"
    if step.corrections:
        times = "once" if step.corrections == 1 else f"{step.corrections} times"
        attempts += f", after asking the model to correct its answer {times}"
    if not within_guard:
        summary = (
            f"Step '{name}' stopped after {attempts}: the workspace allows at most {guard} "
            f"failed attempts per step ({label})"
        )
    elif class_policy(error_class).action == RETRY or step.corrections:
        summary = f"Step '{name}' gave up after {attempts} ({label})"
    else:
        summary = f"Step '{name}' failed after {attempts} and will not be retried ({label})"
    return f"{summary}: {step.error_message}" if step.error_message else f"{summary}."


def _loop_restart(state: RunState, definition: Definition, edge: Edge) -> list[Event]:
    """A completed step that took a loop edge: start its loop over, once every step of the
    loop has settled (a parallel branch inside it still running is waited for)."""
    source = state.step(edge.source)
    if source.status != STEP_COMPLETED:
        return []
    if source.ports is not None and edge.port not in source.ports:
        return []
    body = definition.loop_bodies[edge]
    busy = (STEP_RUNNING, STEP_WAITING, STEP_RETRY_SCHEDULED, STEP_FAILED, STEP_GAVE_UP)
    if any(state.step(step_id).status in busy for step_id in body):
        return []
    iteration = state.loops.get(f"{edge.source}>{edge.target}", 1) + 1
    return [LoopRestarted(edge.source, edge.target, iteration, body)]


def _jitter_seed(state: RunState, step_id: str) -> str:
    started = state.started_at.isoformat() if state.started_at else ""
    return (
        f"{state.workflow_id}|{state.version_id}|{started}|{step_id}|{state.step(step_id).attempt}"
    )


def _next_for_step(
    state: RunState,
    definition: Definition,
    step_id: str,
    now: datetime,
    render: ConfigRenderer | None,
) -> list[Event]:
    step = state.step(step_id)
    if step.status == STEP_RETRY_SCHEDULED:
        due = step.retry_at is None or datetime.fromisoformat(step.retry_at) <= now
        if not due:
            return []
        return _start(state, definition, step_id, step.attempt + 1, now, render)
    if step.status == STEP_WAITING:
        if step.wait_reason in LIMIT_WAIT_REASONS:  # a limit deferred it: the same attempt
            due = step.wait_until is None or datetime.fromisoformat(step.wait_until) <= now
            return _start(state, definition, step_id, step.attempt + 1, now, render) if due else []
        return _after_wait(state, definition, step_id, now)
    if step.status != STEP_PENDING:
        return []
    statuses = [edge_status(edge, state) for edge in definition.incoming[step_id]]
    if "unresolved" in statuses:
        return []
    if not statuses or "taken" in statuses:
        return _start(state, definition, step_id, step.attempt + 1, now, render)
    return [StepSkipped(step_id, reason=SKIP_REASON_BRANCH_NOT_TAKEN)]


def _start(
    state: RunState,
    definition: Definition,
    step_id: str,
    attempt: int,
    now: datetime,
    render: ConfigRenderer | None,
) -> list[Event]:
    """Start an attempt: a worker's step gets a StepStarted (and a lease); a step the engine
    moves itself is parked, and may be over at once (a delay until a time already past)."""
    step_def = definition.steps[step_id]
    max_steps = (state.limits or {}).get("max_steps")
    if max_steps is not None and state.steps_started >= max_steps:
        return [
            RunFailed(
                f"Stopped by the runaway guard: the run has started {state.steps_started} "
                f"steps, the most one run may start (max steps per run, in the workspace's "
                f"limits). Step '{step_def.name}' was not started.",
                step_id=step_id,
            )
        ]
    if step_def.kind not in ENGINE_KINDS:
        return [StepStarted(step_id, attempt)]
    try:
        config = step_def.config if render is None else render(step_def, state)
        if step_def.kind == DELAY_KIND:
            until = delay_until(config, now)
            waiting: Event = StepWaiting(step_id, attempt, until.isoformat(), WAIT_REASON_DELAY)
        else:
            waiting = _approval_requested(step_def, config, attempt, now)
    except StepError as exc:
        failed = StepFailed(step_id, attempt, str(exc.error_class), exc.message)
        tentative = apply(state, Recorded(state.last_seq + 1, now, failed))
        return [failed, _after_failure(tentative, definition, step_id, now)]
    return [
        waiting,
        *_after_wait(
            apply(state, Recorded(state.last_seq + 1, now, waiting)), definition, step_id, now
        ),
    ]


def _approval_requested(
    step_def: StepDef, config: Mapping[str, Any], attempt: int, now: datetime
) -> ApprovalRequested:
    """Open a gate with its rules as rendered now; a bad setting is refused now, not when
    someone decides or the timeout passes (raises StepError)."""
    timeout_at = approval_timeout_at(config, now)
    on_timeout = approval_on_timeout(config)
    return ApprovalRequested(
        step_def.id,
        attempt,
        title=approval_text(config, "title", step_def.name),
        instructions=approval_text(config, "instructions"),
        payload=config.get("payload"),
        timeout_at=None if timeout_at is None else timeout_at.isoformat(),
        approvers=approval_approvers(config),
        required=approval_required(config),
        allow_self_approval=approval_allows_self(config),
        form=approval_form(config),
        on_timeout=on_timeout,
        escalate=approval_escalation(config, on_timeout),
    )


def _after_wait(
    state: RunState, definition: Definition, step_id: str, now: datetime
) -> list[Event]:
    """A waiting step whose time has come, or whose gate was decided: complete it."""
    step = state.step(step_id)
    due = step.wait_until is not None and datetime.fromisoformat(step.wait_until) <= now
    if step.wait_reason == WAIT_REASON_DELAY:
        if not due:
            return []
        return [StepCompleted(step_id, step.attempt, {"waited_until": step.wait_until})]
    if step.wait_reason != WAIT_REASON_APPROVAL:
        return []
    events: list[Event] = []
    if step.decision is None:
        if not due:
            return []
        gate = step.gate or {}
        on_timeout = gate.get("on_timeout") or _on_timeout(definition.steps[step_id])
        escalate = gate.get("escalate")
        if on_timeout == "escalate" and escalate:
            return [escalated(step_id, gate, escalate, now)]
        timed_out = ApprovalTimedOut(
            step_id, "approved" if on_timeout == "approve" else "denied", gate.get("key", "")
        )
        events.append(timed_out)
        state = apply(state, Recorded(state.last_seq + 1, now, timed_out))
    if definition.steps[step_id].kind == AGENT_KIND:
        # An agent's tool call was decided: the agent goes on, in a new attempt, from its
        # transcript (which holds the decision); nothing before the gate runs again.
        return events + _start(state, definition, step_id, step.attempt + 1, now, None)
    return events + _gate_outcome(state, definition, step_id)


def escalated(
    step_id: str,
    gate: Mapping[str, Any],
    escalate: Mapping[str, Any],
    now: datetime,
    *,
    actor: str | None = None,
    reason: str = "",
) -> ApprovalEscalated:
    """The gate's escalation, taken at `now`: at its timeout (no actor), or early, by a
    person."""
    seconds = escalate.get("timeout_seconds")
    timeout_at = None if seconds is None else (now + timedelta(seconds=seconds)).isoformat()
    return ApprovalEscalated(
        step_id,
        gate.get("key", ""),
        approvers=dict(escalate["approvers"]),
        timeout_at=timeout_at,
        on_timeout=escalate.get("on_timeout", "deny"),
        level=int(gate.get("level", 0)) + 1,
        actor=actor,
        reason=reason,
    )


def _on_timeout(step_def: StepDef) -> str:
    try:
        return approval_on_timeout(step_def.config)
    except StepError:  # cannot happen: a bad choice is refused when the gate opens
        return "deny"


def _gate_outcome(state: RunState, definition: Definition, step_id: str) -> list[Event]:
    step = state.step(step_id)
    decision = step.decision or {}
    approved = bool(decision.get("approved"))
    output = {
        "approved": approved,
        "by": decision.get("by"),
        "reason": decision.get("reason", ""),
        "fields": decision.get("fields") or {},
        "timed_out": bool(decision.get("timed_out")),
    }
    port = APPROVED_PORT if approved else DENIED_PORT
    completed = StepCompleted(step_id, step.attempt, output, ports=(port,))
    if approved or any(edge.port == DENIED_PORT for edge in definition.outgoing[step_id]):
        return [completed]
    return [completed, RunFailed(_denial_reason(definition, step_id, output), step_id=step_id)]


DENIAL_REASON = re.compile(r"^Approval '.*' was denied[ :]", re.S)


def _denial_reason(definition: Definition, step_id: str, output: Mapping[str, Any]) -> str:
    """The reason of the RunFailed a denial ends its run with (it matches DENIAL_REASON)."""
    name = definition.steps[step_id].name
    if output["timed_out"]:
        return (
            f"Approval '{name}' was denied: nobody decided before its timeout, "
            "and the step denies when it times out."
        )
    reason = str(output["reason"] or "").strip()
    who = f"Approval '{name}' was denied by {output['by'] or 'someone'}"
    return f"{who}: {reason}" if reason else f"{who} (no reason given)."


def ends_in_denial(event: RunFailed) -> bool:
    """Whether this RunFailed is the one decide records when a denied gate has no denied
    path (the fold folds such a run to "denied"): for saying the event, which alone does
    not carry the state."""
    return event.step_id is not None and DENIAL_REASON.match(event.reason) is not None


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
