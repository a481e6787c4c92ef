"""The one place that decides who may do what in a workspace.

Every workspace-scoped view, websocket consumer and API call goes through
`workspace_access()`: a non-member gets a 404 (the workspace does not exist for them), a
member whose role lacks the capability gets a 403.
"""

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from functools import wraps
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse

from vectorbea.accounts.models import Membership, Role, Workspace


class Capability(StrEnum):
    VIEW = "view"
    EDIT_WORKFLOWS = "edit_workflows"
    START_RUNS = "start_runs"
    OPERATE_RUNS = "operate_runs"
    DECIDE_APPROVALS = "decide_approvals"
    MANAGE_WORKSPACE = "manage_workspace"


ROLE_CAPABILITIES: dict[str, frozenset[Capability]] = {
    Role.OWNER: frozenset(Capability),
    Role.ADMIN: frozenset(Capability),
    Role.EDITOR: frozenset(
        {Capability.VIEW, Capability.EDIT_WORKFLOWS, Capability.START_RUNS, Capability.OPERATE_RUNS}
    ),
    Role.APPROVER: frozenset({Capability.VIEW, Capability.DECIDE_APPROVALS}),
    Role.VIEWER: frozenset({Capability.VIEW}),
}


@dataclass(frozen=True)
class Access:
    """A user's standing in one workspace."""

    workspace: Workspace
    membership: Membership

    @property
    def role(self) -> str:
        return self.membership.role

    def can(self, capability: Capability) -> bool:
        return capability in ROLE_CAPABILITIES[self.role]


def workspace_access(user: Any, slug: str, capability: Capability = Capability.VIEW) -> Access:
    """Resolve `user`'s access to the workspace `slug`, or raise Http404 / PermissionDenied."""
    if user is None or not user.is_authenticated:
        raise Http404("No such workspace")
    membership = (
        Membership.objects.select_related("workspace")
        .filter(user=user, workspace__slug=slug)
        .first()
    )
    if membership is None:
        raise Http404("No such workspace")
    access = Access(workspace=membership.workspace, membership=membership)
    if not access.can(capability):
        raise PermissionDenied(f"Your role ({membership.get_role_display()}) cannot do this.")
    return access


def workspace_view(capability: Capability = Capability.VIEW) -> Callable:
    """Decorate a view taking (request, access, ...) under the URL kwarg `ws`."""

    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @login_required
        @wraps(view)
        def wrapper(request: HttpRequest, ws: str, *args: Any, **kwargs: Any) -> HttpResponse:
            access = workspace_access(request.user, ws, capability)
            if request.session.get("workspace") != access.workspace.slug:
                # Written only when it changes: otherwise every page and background refresh
                # saved the session again (a write per request), and one in flight while the
                # person signed out failed with a 400 for the session it was about to save.
                request.session["workspace"] = access.workspace.slug
            return view(request, access, *args, **kwargs)

        wrapper.capability = capability  # type: ignore[attr-defined]
        return wrapper

    return decorator
