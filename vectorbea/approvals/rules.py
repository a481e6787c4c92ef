"""Who may decide a gate: the one rule, for the inbox, the decide POST, the notifications
and the API.

Membership of the workspace is checked first, by accounts.access (a stranger gets a 404).
Then `engine.waits.decider_problem` says whether the gate's rules let this member decide:
named by role or username, not the run's initiator unless the gate allows it (for an API
token: not its creator, the person behind it), not someone who already approved. Last, the
gate must be waiting. Inside `decide_gate` the same rule runs again on the state the
decision is appended to, so an escalation or another decision that landed in between is
respected.
"""

from collections.abc import Mapping
from typing import Any

from vectorbea.accounts.access import Access
from vectorbea.approvals.models import Gate
from vectorbea.engine.waits import decider_problem, is_listed_approver
from vectorbea.eventlog import store
from vectorbea.runs.commands import DeciderCheck, NotAnApprover

NOT_WAITING = "This approval is not waiting for a decision."


def gate_rules(gate: Gate) -> dict[str, Any]:
    """A Gate row's rules in the shape the engine keeps them in a run's state."""
    return {
        "approvers": {"roles": gate.approver_roles, "users": gate.approver_users},
        "allow_self_approval": gate.allow_self_approval,
        "grants": [{"by": username} for username in gate.granted_by],
    }


def person_behind(user: Any) -> str:
    """Who answers for what `user` decides: the user, or an API token's creator."""
    return getattr(user, "person", None) or user.username


def refusal(
    username: str,
    role: str | None,
    rules: Mapping[str, Any],
    started_by: str | None,
    *,
    waiting: bool,
    person: str | None = None,
) -> str | None:
    """Why this person may not decide now (None: they may)."""
    problem = decider_problem(rules, username, role, started_by, person)
    return problem or (None if waiting else NOT_WAITING)


def refusal_for(user: Any, access: Access, gate: Gate) -> str | None:
    return refusal(
        user.username,
        access.role,
        gate_rules(gate),
        gate.initiator or None,
        waiting=gate.is_waiting,
        person=person_behind(user),
    )


def may_decide(user: Any, access: Access, gate: Gate) -> bool:
    return refusal_for(user, access, gate) is None


def is_approver_of(user: Any, access: Access, gate: Gate) -> bool:
    """Named by the gate (for the inbox's history filters): whatever it became since."""
    approvers = {"roles": gate.approver_roles, "users": gate.approver_users}
    return is_listed_approver(approvers, user.username, access.role)


def decider_check(user: Any, access: Access) -> DeciderCheck:
    """The rule, for decide_gate to run on the freshly read state of the run."""

    def check(loaded: store.Loaded, step_id: str) -> None:
        state = loaded.state
        problem = decider_problem(
            state.step(step_id).gate or {},
            user.username,
            access.role,
            state.started_by,
            person_behind(user),
        )
        if problem:
            raise NotAnApprover(problem)

    return check
