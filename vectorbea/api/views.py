"""Settings → API tokens: create, list and revoke the workspace's tokens. A new token
expires after 90 days unless its creator chooses otherwise; the list shows when each does.

Owners and admins only (Capability.MANAGE_WORKSPACE); other roles get a 403, strangers a
404. A new token's value is on the page that answers its creation and nowhere else: it is
not stored, not logged, and that page is not cached.
"""

from uuid import UUID

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect

from vectorbea.accounts.access import Access, Capability, workspace_view
from vectorbea.api import tokens
from vectorbea.api.forms import TokenForm
from vectorbea.api.models import ApiToken


def _context(request: HttpRequest, access: Access, form: TokenForm, **extra) -> dict:
    # Tokens whose creator left or was demoted outside the members page (the admin, a
    # deleted account) are refused at their next request; revoke them now for the list.
    tokens.revoke_unbacked(access.workspace.id)
    rows = list(
        ApiToken.objects.filter(workspace=access.workspace)
        .select_related("created_by")
        .order_by("-created_at")
    )
    return {
        "access": access,
        "can_manage": True,
        "tokens": [token for token in rows if token.is_active],
        "revoked": [token for token in rows if not token.is_active],
        "form": form,
        "api_url": request.build_absolute_uri("/api/"),
        **extra,
    }


@workspace_view(Capability.MANAGE_WORKSPACE)
@never_cache
@require_http_methods(["GET", "POST"])
def api_tokens(request: HttpRequest, access: Access) -> HttpResponse:
    form = TokenForm(access.workspace, request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            token, value = tokens.create_token(
                access.workspace, data["name"], data["role"], request.user, data["expires"]
            )
        except tokens.NameTaken:
            form.add_error("name", "A token with this name was just created. Choose another.")
        else:
            context = _context(request, access, TokenForm(access.workspace), new=token, value=value)
            return render(request, "api/tokens.html", context)
    status = 400 if form.errors else 200
    return render(request, "api/tokens.html", _context(request, access, form), status=status)


@workspace_view(Capability.MANAGE_WORKSPACE)
@require_POST
def api_token_revoke(request: HttpRequest, access: Access, token_id: UUID) -> HttpResponse:
    token = get_object_or_404(ApiToken, id=token_id, workspace=access.workspace)
    if tokens.revoke_token(token, f"{request.user.get_username()} revoked it"):
        messages.success(
            request,
            f"Revoked the token “{token.name}” ({token.masked}). Requests with it are refused "
            "from now on.",
        )
    else:
        messages.info(request, f"The token “{token.name}” was already revoked.")
    url = reverse("api-tokens", args=[access.workspace.slug])
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)
