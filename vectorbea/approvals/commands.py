"""What an owner or admin does to a gate that waits for other people: give it to other
approvers, or take the escalation its workflow set now instead of at its timeout.

Each is one fact appended to the run's log through runs.commands.act, like every person's
action, so it is in the run's timeline and the audit export; who may do it (owners and
admins) is the view's check, as for the workspace's other settings."""

from collections.abc import Mapping
from typing import Any
from uuid import UUID

from vectorbea.engine import ApprovalReassigned, Event, StepError
from vectorbea.engine.decide import escalated
from vectorbea.engine.waits import approval_approvers
from vectorbea.eventlog import store
from vectorbea.runs.commands import ActionRefused, act, check_gate_waiting

NO_ESCALATION = (
    "This approval has no escalation left to take: its workflow sets none, or it has "
    "escalated already. Choose other approvers instead."
)
SAME_APPROVERS = "It already waits for exactly these approvers."


def approvers_problem(approvers: Mapping[str, Any]) -> str | None:
    """Why these approvers cannot be given a gate (None: they can)."""
    try:
        approval_approvers({"approvers": dict(approvers)}, "The new")
    except StepError as exc:
        return str(exc)
    return None


def reassign_gate(
    run_id: UUID,
    step_id: str,
    *,
    approvers: Mapping[str, Any],
    actor: str,
    reason: str = "",
    gate: str | None = None,
) -> int:
    """Give a waiting gate to other approvers ({"roles": [...], "users": [...]}). `gate` is
    the opening the person saw: one asked again since is refused. Returns the event's seq."""
    problem = approvers_problem(approvers)
    if problem:
        raise ActionRefused(problem)
    chosen = approval_approvers({"approvers": dict(approvers)})

    def facts(loaded: store.Loaded) -> list[Event]:
        check_gate_waiting(loaded, step_id, gate)
        current = loaded.state.step(step_id).gate or {}
        if approval_approvers(current) == chosen:
            raise ActionRefused(SAME_APPROVERS)
        return [ApprovalReassigned(step_id, current.get("key", ""), chosen, actor, reason)]

    return act(run_id, facts).events[0].seq


def escalate_gate(
    run_id: UUID, step_id: str, *, actor: str, reason: str = "", gate: str | None = None
) -> int:
    """Take the gate's escalation now: its escalation's approvers, deadline and verdict,
    exactly as at its timeout, recorded with who took it. Returns the event's seq."""

    def facts(loaded: store.Loaded) -> list[Event]:
        check_gate_waiting(loaded, step_id, gate)
        current = loaded.state.step(step_id).gate or {}
        escalation = current.get("escalate")
        if not escalation:
            raise ActionRefused(NO_ESCALATION)
        now = loaded.clock.now()
        return [escalated(step_id, current, escalation, now, actor=actor, reason=reason)]

    return act(run_id, facts).events[0].seq
