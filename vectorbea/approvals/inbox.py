"""The inbox's queries: the gates a person may decide (or was asked to), newest first."""

from typing import Any

from vectorbea.accounts.access import Access
from vectorbea.approvals.models import Gate, GateStatus
from vectorbea.approvals.rules import is_approver_of, may_decide

FILTERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "waiting": ("Waiting for you", (GateStatus.WAITING,)),
    "decided": ("Decided", (GateStatus.APPROVED, GateStatus.DENIED)),
    "timed_out": ("Timed out", (GateStatus.TIMED_OUT,)),
    "all": ("All", ()),
}
DEFAULT_FILTER = "waiting"
PAGE = 100
SCAN = 2000  # history rows looked at per page view (the newest); waiting gates: all of them
RULE_COLUMNS = (
    "id",
    "approver_roles",
    "approver_users",
    "allow_self_approval",
    "initiator",
    "granted_by",
    "status",
)


def gates_for(
    user: Any, access: Access, status: str = DEFAULT_FILTER, workflow_id: Any = None
) -> list[Gate]:
    """Waiting: the gates this person may decide now. Otherwise: gates that named them."""
    gates = (
        Gate.objects.filter(workspace=access.workspace)
        .select_related("workflow")
        .order_by("-requested_at", "-id")
    )
    statuses = FILTERS.get(status, FILTERS[DEFAULT_FILTER])[1]
    if statuses:
        gates = gates.filter(status__in=statuses)
    if workflow_id:
        gates = gates.filter(workflow_id=workflow_id)
    if status == DEFAULT_FILTER:
        return [gate for gate in gates if may_decide(user, access, gate)][:PAGE]
    return [gate for gate in gates[:SCAN] if is_approver_of(user, access, gate)][:PAGE]


def waiting_count(user: Any, access: Access) -> int:
    """How many gates wait for this person's decision: the navigation's count."""
    waiting = Gate.objects.filter(workspace=access.workspace, status=GateStatus.WAITING)
    return sum(1 for gate in waiting.only(*RULE_COLUMNS) if may_decide(user, access, gate))
