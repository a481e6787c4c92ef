"""The front door: `/` and `w/<ws>/` send people to the right workspace page."""

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_GET

from vectorbea.accounts.access import Access, Capability, workspace_view
from vectorbea.accounts.models import Membership


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
