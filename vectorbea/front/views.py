"""The front door (`/`) and the workspace pages that have no app of their own yet."""

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET

from vectorbea.accounts.access import Access, Capability, workspace_view
from vectorbea.accounts.models import Membership

RUN_STATUSES = [
    ("pending", "Pending", "Queued, waiting for a worker."),
    ("running", "Running", "A step is executing now."),
    ("waiting", "Waiting", "Paused for a timer or a human approval."),
    ("retrying", "Retrying", "A step failed and will be tried again."),
    ("completed", "Completed", "Every step finished."),
    ("failed", "Failed", "Stopped by an error that retries could not fix."),
    ("cancelled", "Cancelled", "Stopped by someone on your team."),
    ("needs-attention", "Needs attention", "Stopped until someone fixes its input or config."),
]


@login_required
@require_GET
def home(request: HttpRequest) -> HttpResponse:
    """Go to the last used workspace, else the first one, else make one."""
    memberships = Membership.objects.filter(user=request.user).select_related("workspace")
    last = request.session.get("workspace")
    membership = memberships.filter(workspace__slug=last).first() if last else None
    membership = membership or memberships.order_by("workspace__name").first()
    if membership is None:
        return redirect("workspace-create")
    return redirect("workflows", ws=membership.workspace.slug)


@workspace_view(Capability.VIEW)
@require_GET
def workspace_home(request: HttpRequest, access: Access) -> HttpResponse:
    return redirect("workflows", ws=access.workspace.slug)


@workspace_view(Capability.VIEW)
@require_GET
def workflows(request: HttpRequest, access: Access) -> HttpResponse:
    can_edit = access.can(Capability.EDIT_WORKFLOWS)
    return render(request, "front/workflows.html", {"access": access, "can_edit": can_edit})


@workspace_view(Capability.VIEW)
@require_GET
def runs(request: HttpRequest, access: Access) -> HttpResponse:
    return render(request, "front/runs.html", {"access": access, "statuses": RUN_STATUSES})


@workspace_view(Capability.VIEW)
@require_GET
def inbox(request: HttpRequest, access: Access) -> HttpResponse:
    can_decide = access.can(Capability.DECIDE_APPROVALS)
    return render(request, "front/inbox.html", {"access": access, "can_decide": can_decide})
