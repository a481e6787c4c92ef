"""Settings → Providers: the workspace's OpenAI and Anthropic keys (add, replace, revoke),
its OpenAI-compatible servers (add, change, delete), which provider is the default, the key
policy, and "Test connection" for each.
Settings → Secrets: set, replace and delete the secrets HTTP and tool steps use.

Owners and admins only (Capability.MANAGE_WORKSPACE); everyone else gets a 403, strangers a
404. The pages show a key's or secret's last four characters and never its value.
"""

from uuid import UUID

from django.conf import settings
from django.contrib import messages
from django.db.models.functions import Lower
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect

from vectorbea.accounts.access import Access, Capability, workspace_view
from vectorbea.keys import vault
from vectorbea.keys.forms import (
    CompatibleProviderForm,
    DefaultProviderForm,
    PolicyForm,
    ProviderKeyForm,
    SecretForm,
)
from vectorbea.keys.models import (
    CompatibleProvider,
    Keyring,
    Provider,
    ProviderKey,
    WorkspaceSecret,
)
from vectorbea.llm.keys import SETTING_FOR
from vectorbea.llm.resolve import DEFAULT_BASE_URL_SETTING, check_connection, display_name
from vectorbea.steps import ssrf


def _context(
    access: Access,
    form: ProviderKeyForm,
    policy_form: PolicyForm | None = None,
    server_form: CompatibleProviderForm | None = None,
    edit: str = "",
):
    keys = list(
        ProviderKey.objects.filter(workspace=access.workspace)
        .select_related("created_by")
        .order_by("-created_at")
    )
    active = {key.provider: key for key in keys if key.is_active}
    require_own = Keyring.objects.filter(workspace=access.workspace, require_own_keys=True).exists()
    default = vault.default_provider(access.workspace.id, fresh=True) or Provider.OPENAI
    rows = [
        {
            "provider": value,
            "name": name,
            "key": active.get(value),
            "platform_key": bool(getattr(settings, SETTING_FOR[value], "")),
            "is_default": default.lower() == value,
            "base_url": getattr(settings, DEFAULT_BASE_URL_SETTING[value]),
        }
        for value, name in Provider.choices
    ]
    servers = [
        {
            "entry": entry,
            "is_default": default.lower() == entry.name.lower(),
            "refusal": ssrf.refusal(entry.base_url),
        }
        for entry in CompatibleProvider.objects.filter(workspace=access.workspace)
        .select_related("created_by")
        .order_by(Lower("name"))
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
        "servers": servers,
        "server_form": server_form or _server_form(access, edit),
    }


def _server_form(access: Access, edit: str) -> CompatibleProviderForm:
    """The server form, filled in with the provider `edit` names (if the workspace has it)."""
    entry = vault.compatible_provider(access.workspace.id, edit) if edit else None
    initial = (
        {"name": entry.name, "base_url": entry.base_url, "default_model": entry.default_model}
        if entry
        else {}
    )
    return CompatibleProviderForm(prefix="server", initial=initial)


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
    context = _context(access, form, edit=request.GET.get("edit", "").strip())
    return render(request, "keys/provider_keys.html", context, status=status)


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
@sensitive_post_parameters("server-key")
@require_POST
def compatible_provider_save(request: HttpRequest, access: Access) -> HttpResponse:
    form = CompatibleProviderForm(request.POST, prefix="server")
    if not form.is_valid():
        context = _context(access, ProviderKeyForm(), server_form=form)
        return render(request, "keys/provider_keys.html", context, status=400)
    data = form.cleaned_data
    entry, created = vault.save_compatible_provider(
        access.workspace,
        data["name"],
        data["base_url"],
        data["default_model"],
        data["key"] or None,
        request.user,
        remove_key=data["remove_key"] and not data["key"],
    )
    said = "Added" if created else "Changed"
    key = f"its key ending …{entry.last_four}" if entry.has_key else "no key"
    messages.success(
        request,
        f"{said} the provider {entry.name} ({entry.base_url}, model {entry.default_model}, "
        f"{key}). Steps use it when their provider is “{entry.name}”.",
    )
    refusal = ssrf.refusal(entry.base_url)
    if refusal:
        messages.warning(request, f"Steps cannot call it yet. {refusal}")
    return redirect(reverse("provider-keys", args=[access.workspace.slug]) + "#providers")


@workspace_view(Capability.MANAGE_WORKSPACE)
@require_POST
def compatible_provider_delete(
    request: HttpRequest, access: Access, provider_id: UUID
) -> HttpResponse:
    entry = get_object_or_404(CompatibleProvider, id=provider_id, workspace=access.workspace)
    if vault.delete_compatible_provider(entry):
        messages.success(
            request,
            f"Deleted the provider {entry.name}. Steps that use it stop at their next call "
            "until it is added again.",
        )
    url = reverse("provider-keys", args=[access.workspace.slug])
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


def _known_provider(access: Access, name: str) -> str | None:
    """The provider's name as the workspace spells it, or None if it has none such."""
    if name.lower() in Provider.values:
        return name.lower()
    entry = vault.compatible_provider(access.workspace.id, name)
    return entry.name if entry else None


@workspace_view(Capability.MANAGE_WORKSPACE)
@require_POST
def provider_default(request: HttpRequest, access: Access) -> HttpResponse:
    form = DefaultProviderForm(request.POST)
    name = _known_provider(access, form.data.get("name", "").strip()) if form.is_valid() else None
    if name is None:
        messages.error(request, "There is no such provider in this workspace any more.")
    else:
        vault.set_default_provider(access.workspace, name)
        messages.success(
            request,
            f"{display_name(name)} is now the default: LLM steps that name no provider use it.",
        )
    return redirect("provider-keys", ws=access.workspace.slug)


@workspace_view(Capability.MANAGE_WORKSPACE)
@require_POST
def provider_test(request: HttpRequest, access: Access) -> HttpResponse:
    """Test connection: one tiny call to the provider, answered with what it said or why
    it failed (a fragment for htmx, a message on the page otherwise)."""
    form = DefaultProviderForm(request.POST)
    name = _known_provider(access, form.data.get("name", "").strip()) if form.is_valid() else None
    if name is None:
        return render(
            request,
            "keys/provider_keys.html#test_result",
            {"ok": False, "message": "There is no such provider in this workspace any more."},
        )
    result = check_connection(access.workspace.id, name)
    if request.htmx:
        context = {"ok": result.ok, "message": result.message, "name": name}
        return render(request, "keys/provider_keys.html#test_result", context)
    (messages.success if result.ok else messages.error)(request, result.message)
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
