"""Settings → Provider keys: add, replace and revoke a workspace's keys, and its policy.
Settings → Secrets: set, replace and delete the secrets HTTP and tool steps use.

Owners and admins only (Capability.MANAGE_WORKSPACE); everyone else gets a 403, strangers a
404. The pages show a key's or secret's last four characters and never its value.
"""

from uuid import UUID

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect

from vectorbea.accounts.access import Access, Capability, workspace_view
from vectorbea.keys import vault
from vectorbea.keys.forms import PolicyForm, ProviderKeyForm, SecretForm
from vectorbea.keys.models import Keyring, Provider, ProviderKey, WorkspaceSecret
from vectorbea.llm.keys import SETTING_FOR


def _context(access: Access, form: ProviderKeyForm, policy_form: PolicyForm | None = None):
    keys = list(
        ProviderKey.objects.filter(workspace=access.workspace)
        .select_related("created_by")
        .order_by("-created_at")
    )
    active = {key.provider: key for key in keys if key.is_active}
    require_own = Keyring.objects.filter(workspace=access.workspace, require_own_keys=True).exists()
    rows = [
        {
            "provider": value,
            "name": name,
            "key": active.get(value),
            "platform_key": bool(getattr(settings, SETTING_FOR[value], "")),
        }
        for value, name in Provider.choices
    ]
    policy_form = policy_form or PolicyForm(
        initial={"require_own_keys": "own" if require_own else "platform"}
    )
    return {
        "access": access,
        "can_manage": True,
        "rows": rows,
        "revoked": [key for key in keys if not key.is_active],
        "require_own": require_own,
        "form": form,
        "policy_form": policy_form,
    }


@workspace_view(Capability.MANAGE_WORKSPACE)
@sensitive_post_parameters("key")
@require_http_methods(["GET", "POST"])
def provider_keys(request: HttpRequest, access: Access) -> HttpResponse:
    initial = {"provider": request.GET.get("provider", Provider.OPENAI)}
    form = ProviderKeyForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        replaced = vault.active_key(access.workspace.id, data["provider"])
        key = vault.add_key(
            access.workspace, data["provider"], data["key"], data["label"], request.user
        )
        name = key.get_provider_display()
        if replaced is not None:
            messages.success(
                request,
                f"Replaced the {name} key …{replaced.last_four}: steps now use the key ending "
                f"…{key.last_four}.",
            )
        else:
            messages.success(request, f"Saved the {name} key ending …{key.last_four}.")
        return redirect("provider-keys", ws=access.workspace.slug)
    status = 400 if form.errors else 200
    return render(request, "keys/provider_keys.html", _context(access, form), status=status)


@workspace_view(Capability.MANAGE_WORKSPACE)
@require_POST
def provider_key_revoke(request: HttpRequest, access: Access, key_id: UUID) -> HttpResponse:
    key = get_object_or_404(ProviderKey, id=key_id, workspace=access.workspace)
    if vault.revoke_key(key):
        messages.success(
            request,
            f"Revoked the {key.get_provider_display()} key …{key.last_four}. Steps stop using "
            "it from their next call. Revoke it at the provider too if it may have leaked.",
        )
    else:
        messages.info(request, f"The {key.get_provider_display()} key was already revoked.")
    url = reverse("provider-keys", args=[access.workspace.slug])
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


@workspace_view(Capability.MANAGE_WORKSPACE)
@require_POST
def provider_key_policy(request: HttpRequest, access: Access) -> HttpResponse:
    policy_form = PolicyForm(request.POST)
    if not policy_form.is_valid():
        context = _context(access, ProviderKeyForm(), policy_form)
        return render(request, "keys/provider_keys.html", context, status=400)
    require_own = policy_form.cleaned_data["require_own_keys"]
    vault.set_policy(access.workspace, require_own)
    messages.success(
        request,
        "LLM steps now use only this workspace's keys."
        if require_own
        else "LLM steps now fall back to the installation's key for a provider with no key here.",
    )
    return redirect("provider-keys", ws=access.workspace.slug)


@workspace_view(Capability.MANAGE_WORKSPACE)
@sensitive_post_parameters("value")
@require_http_methods(["GET", "POST"])
def workspace_secrets(request: HttpRequest, access: Access) -> HttpResponse:
    form = SecretForm(request.POST or None, initial={"name": request.GET.get("name", "")})
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        secret, replaced = vault.set_secret(
            access.workspace, data["name"], data["value"], request.user
        )
        if replaced is None:
            messages.success(request, f"Saved the secret {secret.name} ending …{secret.last_four}.")
        else:
            messages.success(
                request,
                f"Replaced the value of {secret.name} (…{replaced}): steps now use the one "
                f"ending …{secret.last_four}.",
            )
        return redirect("workspace-secrets", ws=access.workspace.slug)
    secrets = (
        WorkspaceSecret.objects.filter(workspace=access.workspace)
        .select_related("created_by", "updated_by")
        .order_by("name")
    )
    context = {"access": access, "can_manage": True, "secrets": secrets, "form": form}
    status = 400 if form.errors else 200
    return render(request, "keys/secrets.html", context, status=status)


@workspace_view(Capability.MANAGE_WORKSPACE)
@require_POST
def workspace_secret_delete(request: HttpRequest, access: Access, secret_id: UUID) -> HttpResponse:
    secret = get_object_or_404(WorkspaceSecret, id=secret_id, workspace=access.workspace)
    if vault.delete_secret(secret):
        messages.success(
            request,
            f"Deleted the secret {secret.name}. Steps that use it fail until it is set again.",
        )
    url = reverse("workspace-secrets", args=[access.workspace.slug])
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)
