from django.http import HttpRequest

from vectorbea.accounts.models import Membership


def workspace_nav(request: HttpRequest) -> dict:
    """The workspace switcher's entries for the signed-in user."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    memberships = list(
        Membership.objects.filter(user=user).select_related("workspace").order_by("workspace__name")
    )
    match = getattr(request, "resolver_match", None)
    current = (match.kwargs.get("ws") if match else None) or request.session.get("workspace")
    current_membership = next((m for m in memberships if m.workspace.slug == current), None)
    return {"nav_memberships": memberships, "nav_current": current_membership}
