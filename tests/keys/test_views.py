"""Settings → Providers: owners and admins only; the key field is write-only and the
page shows only the last four characters."""

import pytest
from django.urls import reverse

from tests.conftest import make_member
from tests.keys.support import assert_no_leak, canary
from vectorbea.accounts.models import Role
from vectorbea.keys import vault
from vectorbea.keys.models import Keyring, ProviderKey

pytestmark = pytest.mark.django_db


def keys_url(ws: str = "acme") -> str:
    return reverse("provider-keys", args=[ws])


@pytest.fixture
def owner_client(client, alice):
    client.force_login(alice)
    return client


def save(client, value: str, provider: str = "openai", label: str = ""):
    return client.post(keys_url(), {"provider": provider, "label": label, "key": value})


def test_an_owner_adds_a_key_and_sees_only_its_last_four(owner_client, acme):
    value = canary()
    response = save(owner_client, value, label="Production")
    assert response.status_code == 302
    page = owner_client.get(keys_url())
    html = page.content.decode()
    assert page.status_code == 200
    assert_no_leak(html, value, "the keys page")
    assert f"…{value[-4:]}" in html
    assert "Saved the OpenAI key ending …" in html
    assert "Production" in html
    key = ProviderKey.objects.get(workspace=acme)
    assert (key.provider, key.label, key.last_four) == ("openai", "Production", value[-4:])
    assert key.created_by.username == "alice"


def test_the_form_never_renders_the_submitted_key_even_on_a_validation_error(owner_client):
    value = canary("sk-ant-")  # an Anthropic key filed under OpenAI
    response = save(owner_client, value, provider="openai")
    html = response.content.decode()
    assert response.status_code == 400
    assert "That is an Anthropic key" in html
    assert_no_leak(html, value, "the error page")
    assert not ProviderKey.objects.exists()

    response = save(owner_client, value, provider="nonsense")
    assert response.status_code == 400
    assert "Choose OpenAI or Anthropic." in response.content.decode()
    assert_no_leak(response.content.decode(), value, "the error page")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "Paste the API key from your provider’s dashboard."),
        ("sk-short", "That is too short to be an API key (8 characters)."),
        ("sk-proj-has a space-0123456789", "The key has spaces or line breaks in it."),
        ("sk-proj-ünïcode-0123456789abcdef", "it has characters keys never contain"),
    ],
)
def test_validation_messages_are_plain_and_never_repeat_the_key(owner_client, value, message):
    response = save(owner_client, value)
    html = response.content.decode()
    assert response.status_code == 400
    assert message in html
    if value:
        assert value not in html


def test_a_key_pasted_into_the_label_is_refused_and_not_shown_back(owner_client):
    value = canary()
    response = save(owner_client, value, label=f"prod {value}")
    html = response.content.decode()
    assert response.status_code == 400
    assert "The label looks like a key." in html
    assert_no_leak(html, value, "the error page")
    odd = "a-key-of-no-known-shape-0123456789"
    response = save(owner_client, odd, label=f"mine: {odd}")
    assert "Leave the key out of the label" in response.content.decode()
    assert odd not in response.content.decode()


def test_a_new_key_replaces_the_active_one(owner_client, acme):
    first, second = canary(), canary()
    save(owner_client, first)
    save(owner_client, second)
    active = ProviderKey.objects.get(workspace=acme, revoked_at__isnull=True)
    assert active.last_four == second[-4:]
    html = owner_client.get(keys_url()).content.decode()
    assert f"Replaced the OpenAI key …{first[-4:]}" in html
    assert "Revoked keys" in html
    assert_no_leak(html, first, "the keys page")
    assert_no_leak(html, second, "the keys page")


def test_an_owner_revokes_a_key(owner_client, acme, alice):
    key = vault.add_key(acme, "openai", canary(), "", alice)
    url = reverse("provider-key-revoke", args=["acme", key.id])
    response = owner_client.post(url, headers={"HX-Request": "true"})
    assert response.status_code == 200
    assert response["HX-Redirect"] == keys_url()
    key.refresh_from_db()
    assert key.revoked_at is not None
    assert "Revoked the OpenAI key" in owner_client.get(keys_url()).content.decode()
    assert owner_client.post(url).status_code == 302  # again: a no-op with a message


def test_the_policy_toggle(owner_client, acme):
    policy = reverse("provider-key-policy", args=["acme"])
    assert owner_client.post(policy, {"require_own_keys": "own"}).status_code == 302
    assert Keyring.objects.get(workspace=acme).require_own_keys is True
    assert "fail until you add one" in owner_client.get(keys_url()).content.decode()
    assert owner_client.post(policy, {"require_own_keys": "platform"}).status_code == 302
    assert Keyring.objects.get(workspace=acme).require_own_keys is False
    response = owner_client.post(policy, {})
    assert response.status_code == 400
    assert "Choose what LLM steps do without a key of their own." in response.content.decode()


def test_an_admin_can_manage_keys(client, acme):
    client.force_login(make_member("ada", acme, Role.ADMIN))
    assert client.get(keys_url()).status_code == 200
    assert save(client, canary()).status_code == 302


def test_the_settings_navigation_links_to_keys_only_for_managers(client, acme, alice):
    client.force_login(alice)
    assert (
        ">Providers</a>"
        in client.get(reverse("workspace-settings", args=["acme"])).content.decode()
    )
    client.force_login(make_member("vera", acme, Role.VIEWER))
    assert (
        ">Providers</a>"
        not in client.get(reverse("workspace-settings", args=["acme"])).content.decode()
    )


@pytest.mark.parametrize("role", [Role.VIEWER, Role.EDITOR, Role.APPROVER])
def test_other_roles_can_neither_see_nor_change_keys(client, acme, alice, role):
    value = canary()
    key = vault.add_key(acme, "openai", value, "Production", alice)
    client.force_login(make_member(f"user-{role}", acme, role))
    urls = [
        keys_url(),
        reverse("provider-key-policy", args=["acme"]),
        reverse("provider-key-revoke", args=["acme", key.id]),
    ]
    for url in urls:
        for response in (
            client.get(url),
            client.post(url, {"provider": "openai", "key": canary(), "require_own_keys": "own"}),
        ):
            assert response.status_code == 403, url
            assert f"…{value[-4:]}" not in response.content.decode()
    key.refresh_from_db()
    assert key.revoked_at is None
    assert ProviderKey.objects.filter(workspace=acme).count() == 1
    assert not Keyring.objects.filter(workspace=acme, require_own_keys=True).exists()


def test_another_workspaces_key_is_404(client, acme, globex, alice, bob):
    acme_key = vault.add_key(acme, "openai", canary(), "", alice)
    client.force_login(bob)
    # Through Globex's own URL, Acme's key does not exist either.
    response = client.post(reverse("provider-key-revoke", args=["globex", acme_key.id]))
    assert response.status_code == 404
    assert client.get(keys_url("acme")).status_code == 404
    acme_key.refresh_from_db()
    assert acme_key.revoked_at is None
