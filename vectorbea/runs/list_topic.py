"""The "runs" topic of the workspace socket: a run's list row, re-rendered when it changes,
for the run list to swap in by id (run-<uuid>)."""

from uuid import UUID

from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.template.loader import render_to_string
from django.urls import reverse

from vectorbea.accounts.access import Capability, workspace_access
from vectorbea.runs import listing
from vectorbea.runs.topics import topic


@topic("runs")
def run_row(user, workspace, run_id: UUID) -> str:
    try:
        access = workspace_access(user, workspace.slug)
    except (Http404, PermissionDenied):
        return ""  # no longer a member: show nothing more
    summary = listing.row_for(workspace.id, run_id)
    if summary is None:
        return ""
    context = {
        "summary": summary,
        "access": access,
        "can_operate": access.can(Capability.OPERATE_RUNS),
        "oob": True,
        "runs_url": reverse("runs", kwargs={"ws": workspace.slug}),
    }
    return render_to_string("runs/list.html#row", context)
