"""The "inbox" topic of the workspace socket: the navigation's live count of gates waiting
for this person, pushed whenever a run of the workspace changes."""

from typing import Any
from uuid import UUID

from django.template.loader import render_to_string

from vectorbea.accounts.access import Access
from vectorbea.accounts.models import Membership
from vectorbea.approvals.inbox import waiting_count
from vectorbea.runs.topics import topic


def count_context(user: Any, membership: Membership) -> dict[str, Any]:
    access = Access(workspace=membership.workspace, membership=membership)
    return {"inbox_count": waiting_count(user, access), "ws": membership.workspace.slug}


@topic("inbox")
def inbox_count(user: Any, access: Access, run_id: UUID) -> str:
    return render_to_string("approvals/_inbox_count.html", count_context(user, access.membership))
