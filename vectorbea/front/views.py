"""The front door: `/` and `w/<ws>/` send people to the right workspace page."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from vectorbea.accounts.access import Access, Capability, workspace_view
from vectorbea.accounts.models import Membership
from vectorbea.front import operations
from workers import announce


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


@workspace_view(Capability.MANAGE_WORKSPACE)
@require_GET
def operations_page(request: HttpRequest, access: Access) -> HttpResponse:
    """Workers, queues, dead letters and this workspace's runs; the figures refresh every
    few seconds (htmx polls the same URL for the fragment)."""
    context = {
        "access": access,
        "workers": announce.listed(),
        "queues": operations.queues(),
        "dead_letters": operations.dead_letters() if request.user.is_staff else [],
        "can_redrive": request.user.is_staff,
        # Installation-wide (every workspace's runs): staff only, like the dead letters.
        "tables": operations.churned_tables() if request.user.is_staff else [],
        "figures": operations.workspace_figures(access.workspace.id),
    }
    context["unvacuumed"] = [table for table in context["tables"] if not table.autovacuum]
    template = "front/operations.html"
    if request.htmx:
        template += "#figures"
    return render(request, template, context)


@workspace_view(Capability.MANAGE_WORKSPACE)
@require_POST
def operations_redrive(request: HttpRequest, access: Access) -> HttpResponse:
    """Put a dead-lettered message back on its queue: installation staff only, since the
    queues are shared by every workspace."""
    if not request.user.is_staff:
        raise PermissionDenied("Only installation staff may re-drive messages.")
    done = operations.redrive(request.POST.get("queue", ""), request.POST.get("id", ""))
    if done:
        messages.success(request, "The message is back on its queue.")
    else:
        messages.error(
            request, "That message is no longer dead-lettered, or it is not a Dramatiq message."
        )
    return redirect("operations", ws=access.workspace.slug)
