"""Workspaces and their members: create, rename, add, change roles, remove."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect

from vectorbea.accounts import forms
from vectorbea.accounts.access import Access, Capability, workspace_view
from vectorbea.accounts.models import Membership


@login_required
@require_http_methods(["GET", "POST"])
def workspace_create(request: HttpRequest) -> HttpResponse:
    form = forms.WorkspaceForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        workspace = forms.create_workspace(request.user, form.cleaned_data["name"])
        messages.success(request, f"Created {workspace.name}. You are its owner.")
        return redirect("workflows", ws=workspace.slug)
    return render(request, "accounts/workspace_create.html", {"form": form})


@workspace_view(Capability.VIEW)
@require_http_methods(["GET", "POST"])
def workspace_settings(request: HttpRequest, access: Access) -> HttpResponse:
    can_manage = access.can(Capability.MANAGE_WORKSPACE)
    if request.method == "POST" and not can_manage:
        raise PermissionDenied("Only owners and admins can rename the workspace.")
    form = forms.WorkspaceForm(request.POST or None, initial={"name": access.workspace.name})
    if request.method == "POST" and form.is_valid():
        forms.rename_workspace(access.workspace, form.cleaned_data["name"])
        messages.success(request, "Saved the workspace name.")
        return redirect("workspace-settings", ws=access.workspace.slug)
    context = {"access": access, "form": form, "can_manage": can_manage}
    return render(request, "accounts/settings.html", context)


def _members_context(access: Access, **extra) -> dict:
    memberships = (
        Membership.objects.filter(workspace=access.workspace)
        .select_related("user")
        .order_by("user__username")
    )
    can_manage = access.can(Capability.MANAGE_WORKSPACE)
    rows = [
        {
            "membership": m,
            "manageable": can_manage and forms.may_manage(access, m),
            "is_me": m.user_id == access.membership.user_id,
        }
        for m in memberships
    ]
    roles = forms.grantable_roles(access)
    return {"access": access, "rows": rows, "can_manage": can_manage, "roles": roles, **extra}


@workspace_view(Capability.VIEW)
@require_http_methods(["GET", "POST"])
def members(request: HttpRequest, access: Access) -> HttpResponse:
    if request.method == "POST" and not access.can(Capability.MANAGE_WORKSPACE):
        raise PermissionDenied("Only owners and admins can add members.")
    form = forms.AddMemberForm(request.POST or None, access=access)
    if request.method == "POST" and form.is_valid():
        user = form.cleaned_data["who"]
        forms.add_member(access.workspace, user, form.cleaned_data["role"])
        messages.success(request, f"Added {user.get_username()} to {access.workspace.name}.")
        return redirect("members", ws=access.workspace.slug)
    status = 400 if form.errors else 200
    return render(
        request, "accounts/members.html", _members_context(access, form=form), status=status
    )


def _managed_membership(access: Access, member_id: int) -> Membership:
    membership = get_object_or_404(
        Membership.objects.select_related("user", "workspace"),
        id=member_id,
        workspace=access.workspace,
    )
    if not forms.may_manage(access, membership):
        raise PermissionDenied("Only an owner can change or remove another owner.")
    return membership


def _row_response(request: HttpRequest, access: Access, membership: Membership, error: str = ""):
    """The member's table row (for htmx), or back to the members page."""
    if request.htmx:
        context = _members_context(access)
        row = next(r for r in context["rows"] if r["membership"].id == membership.id)
        context.update(row=row, error=error)
        return render(request, "accounts/members.html#member-row", context)
    if error:
        messages.error(request, error)
    return redirect("members", ws=access.workspace.slug)


@workspace_view(Capability.MANAGE_WORKSPACE)
@require_POST
def member_role(request: HttpRequest, access: Access, member_id: int) -> HttpResponse:
    membership = _managed_membership(access, member_id)
    form = forms.RoleForm(request.POST, access=access)
    if not form.is_valid():
        return _row_response(request, access, membership, "Choose one of the listed roles.")
    try:
        forms.change_role(membership, form.cleaned_data["role"])
    except forms.LastOwnerError as exc:
        return _row_response(request, access, membership, exc.message)
    if membership.user_id == request.user.pk and membership.role != access.role:
        messages.success(request, f"You are now {membership.get_role_display()}.")
        if request.htmx:
            return HttpResponseClientRedirect(reverse("members", args=[access.workspace.slug]))
        return redirect("members", ws=access.workspace.slug)
    if not request.htmx:
        name = membership.user.get_username()
        messages.success(request, f"{name} is now {membership.get_role_display()}.")
    return _row_response(request, access, membership)


@workspace_view(Capability.MANAGE_WORKSPACE)
@require_POST
def member_remove(request: HttpRequest, access: Access, member_id: int) -> HttpResponse:
    membership = _managed_membership(access, member_id)
    try:
        forms.remove_member(membership)
    except forms.LastOwnerError as exc:
        return _row_response(request, access, membership, exc.message)
    name = membership.user.get_username()
    if membership.user_id == request.user.pk:
        messages.success(request, f"You left {access.workspace.name}.")
        request.session.pop("workspace", None)
        return HttpResponseClientRedirect(reverse("home")) if request.htmx else redirect("home")
    if request.htmx:
        return HttpResponse("")  # the row swaps itself out
    messages.success(request, f"Removed {name} from {access.workspace.name}.")
    return redirect("members", ws=access.workspace.slug)
