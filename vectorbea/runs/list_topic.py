"""The "runs" topic of the workspace socket: a run's list row, re-rendered when it changes,
for the run list to swap in by id (run-<uuid>)."""

from typing import Any
from uuid import UUID

from django.template.loader import render_to_string
from django.urls import reverse

from vectorbea.accounts.access import Access, Capability
from vectorbea.runs import listing
from vectorbea.runs.topics import topic


@topic("runs")
def run_row(user: Any, access: Access, run_id: UUID) -> str:
    workspace = access.workspace
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
