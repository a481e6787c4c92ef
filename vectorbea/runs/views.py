from uuid import UUID

from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET

from vectorbea.accounts.access import Access, workspace_view
from vectorbea.eventlog import store
from vectorbea.eventlog.models import Run, RunSummary
from vectorbea.runs.timeline import step_rows, timeline_rows

FIRST_PAGE = 500


def get_run(access: Access, run_id: UUID) -> Run:
    """A run of this workspace, or 404: another workspace's run does not exist here."""
    return get_object_or_404(
        Run.objects.select_related("workflow", "version", "started_by"),
        pk=run_id,
        workspace=access.workspace,
    )


@workspace_view()
@require_GET
def run_detail(request: HttpRequest, access: Access, run_id: UUID) -> HttpResponse:
    run = get_run(access, run_id)
    summary = RunSummary.objects.get(run=run)
    rows = timeline_rows(run.id, limit=FIRST_PAGE)
    context = {
        "access": access,
        "run": run,
        "summary": summary,
        "steps": step_rows(store.definition_for(run.version_id), summary),
        "rows": rows,
        "last_seq": rows[-1].seq if rows else 0,
    }
    return render(request, "runs/detail.html", context)
