"""Gates that wait for other people, as an owner or admin sees them: who can decide each
one now (by name), so a gate nobody can decide, or one stuck with someone away, is seen
and can be given to others or escalated early."""

from dataclasses import dataclass
from typing import Any

from vectorbea.accounts.access import Access
from vectorbea.accounts.models import Membership
from vectorbea.approvals.inbox import PAGE
from vectorbea.approvals.models import Gate, GateStatus
from vectorbea.approvals.rules import gate_rules, may_decide, refusal


@dataclass(frozen=True)
class WaitingForOthers:
    gate: Gate
    deciders: list[str]  # usernames of the members who may decide it now

    @property
    def named(self) -> str:
        """The gate's rule in words: "approvers, admins and carol"."""
        return approvers_text(self.gate.approver_roles, self.gate.approver_users)


def approvers_text(roles: list[str], users: list[str]) -> str:
    names = [f"{role}s" for role in roles] + list(users)
    if len(names) <= 1:
        return names[0] if names else "nobody"
    return ", ".join(names[:-1]) + " and " + names[-1]


def members(access: Access) -> list[Membership]:
    return list(
        Membership.objects.filter(workspace=access.workspace, user__is_active=True)
        .select_related("user")
        .order_by("user__username")
    )


def deciders(gate: Gate, people: list[Membership]) -> list[str]:
    rules = gate_rules(gate)
    initiator = gate.initiator or None
    return [
        m.user.username
        for m in people
        if refusal(m.user.username, m.role, rules, initiator, waiting=True) is None
    ]


def waiting_for_others(user: Any, access: Access) -> list[WaitingForOthers]:
    """The workspace's waiting gates this person may not decide, newest first."""
    gates = (
        Gate.objects.filter(workspace=access.workspace, status=GateStatus.WAITING)
        .select_related("workflow")
        .order_by("-requested_at", "-id")
    )
    others = [gate for gate in gates if not may_decide(user, access, gate)][:PAGE]
    people = members(access) if others else []
    return [WaitingForOthers(gate, deciders(gate, people)) for gate in others]
