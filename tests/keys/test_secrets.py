"""Settings → Secrets: owners and admins only; the value field is write-only, the page shows
only the last four characters, and values are stored encrypted like provider keys."""

import pytest
from django.db import connection
from django.urls import reverse

from tests.conftest import make_member
from tests.keys.support import assert_no_leak, canary
from vectorbea.accounts.models import Role
from vectorbea.keys import crypto, vault
from vectorbea.keys.models import WorkspaceSecret

pytestmark = pytest.mark.django_db


def secrets_url(ws: str = "acme") -> str:
    return reverse("workspace-secrets", args=[ws])


def save(client, name: str, value: str, ws: str = "acme"):
    return client.post(secrets_url(ws), {"name": name, "value": value})


@pytest.fixture
def owner_client(client, alice):
    client.force_login(alice)
    return client


def test_an_owner_adds_a_secret_and_sees_only_its_name_and_last_four(owner_client, acme):
    value = canary("ghp_")
    response = save(owner_client, "GITHUB_TOKEN", value)
    assert response.status_code == 302
    assert_no_leak(response.content.decode() + str(response.headers), value, "the response")
    html = owner_client.get(secrets_url()).content.decode()
    assert_no_leak(html, value, "the secrets page")
    assert "GITHUB_TOKEN" in html and f"…{value[-4:]}" in html
    assert f"Saved the secret GITHUB_TOKEN ending …{value[-4:]}." in html
    # The form is write-only: the value field is empty, even on the page after saving.
    assert 'name="value" ' in html and 'value="' + value not in html
    secret = WorkspaceSecret.objects.get(workspace=acme)
    assert (secret.name, secret.last_four, secret.created_by.username) == (
        "GITHUB_TOKEN",
        value[-4:],
        "alice",
    )


def test_the_value_is_stored_encrypted_and_bound_to_its_row(owner_client, acme, alice):
    value = canary("ghp_")
    save(owner_client, "TOKEN", value)
    save(owner_client, "OTHER", canary("ghp_"))
    with connection.cursor() as cursor:
        cursor.execute("SELECT t::text FROM keys_workspacesecret t")
        assert_no_leak("\n".join(row[0] for row in cursor.fetchall()), value, "the table")
    token, other = (WorkspaceSecret.objects.get(name=n) for n in ("TOKEN", "OTHER"))
    assert vault.secret_values(acme.id, ["TOKEN"]) == {"TOKEN": value}
    # A ciphertext copied onto another row does not decrypt there.
    data_key = vault.data_key_of(vault.keyring_for(acme))
    with pytest.raises(crypto.DecryptionFailed):
        crypto.decrypt_secret(data_key, acme.id, other.id, token.ciphertext)
    # Nor does a provider key's envelope open a secret's.
    with pytest.raises(crypto.DecryptionFailed):
        crypto.decrypt_key(data_key, acme.id, token.id, token.ciphertext)


def test_saving_a_name_again_replaces_its_value(owner_client, acme):
    first, second = canary("ghp_"), canary("ghp_")
    save(owner_client, "TOKEN", first)
    save(owner_client, "TOKEN", second)
    assert vault.secret_values(acme.id, ["TOKEN"]) == {"TOKEN": second}
    assert WorkspaceSecret.objects.filter(workspace=acme).count() == 1
    html = owner_client.get(secrets_url()).content.decode()
    assert f"Replaced the value of TOKEN (…{first[-4:]})" in html
    assert_no_leak(html, first, "the secrets page")
    assert_no_leak(html, second, "the secrets page")


def test_an_owner_deletes_a_secret(owner_client, acme, alice):
    secret, _ = vault.set_secret(acme, "TOKEN", canary("ghp_"), alice)
    url = reverse("workspace-secret-delete", args=["acme", secret.id])
    response = owner_client.post(url, headers={"HX-Request": "true"})
    assert response.status_code == 200
    assert response["HX-Redirect"] == secrets_url()
    assert not WorkspaceSecret.objects.exists()
    assert "Deleted the secret TOKEN." in owner_client.get(secrets_url()).content.decode()
    assert owner_client.post(url).status_code == 404  # gone


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("", "long-enough-value", "Give the secret a name, e.g. GITHUB_TOKEN."),
        ("my-token", "long-enough-value", "Use letters, digits and _ only"),
        ("1TOKEN", "long-enough-value", "Use letters, digits and _ only"),
        ("_TOKEN", "long-enough-value", "Use letters, digits and _ only"),
        ("TOKEN", "", "Paste the secret’s value."),
        ("TOKEN", "short7!", "The value is 7 characters long; a secret needs at least 8"),
        ("TOKEN", "two\nlines-of-it", "The value has line breaks in it."),
        ("TOKEN", "x" * 5000, "The value is longer than 4,096 characters."),
    ],
)
def test_validation_messages_are_plain_and_never_repeat_the_value(
    owner_client, name, value, message
):
    response = save(owner_client, name, value)
    html = response.content.decode()
    assert response.status_code == 400
    assert message in html
    if value.strip():
        assert value not in html
    assert not WorkspaceSecret.objects.exists()


def test_an_admin_can_manage_secrets(client, acme):
    client.force_login(make_member("ada", acme, Role.ADMIN))
    assert client.get(secrets_url()).status_code == 200
    assert save(client, "TOKEN", canary("ghp_")).status_code == 302


def test_the_settings_navigation_links_to_secrets_only_for_managers(client, acme, alice):
    settings_page = reverse("workspace-settings", args=["acme"])
    client.force_login(alice)
    assert secrets_url() in client.get(settings_page).content.decode()
    client.force_login(make_member("vera", acme, Role.VIEWER))
    assert secrets_url() not in client.get(settings_page).content.decode()


@pytest.mark.parametrize("role", [Role.VIEWER, Role.EDITOR, Role.APPROVER])
def test_other_roles_can_neither_see_nor_change_secrets(client, acme, alice, role):
    value = canary("ghp_")
    secret, _ = vault.set_secret(acme, "TOKEN", value, alice)
    client.force_login(make_member(f"user-{role}", acme, role))
    delete = reverse("workspace-secret-delete", args=["acme", secret.id])
    for url in (secrets_url(), delete):
        for response in (client.get(url), client.post(url, {"name": "TOKEN", "value": "x" * 20})):
            assert response.status_code == 403, url
            assert "TOKEN" not in response.content.decode()
            assert f"…{value[-4:]}" not in response.content.decode()
    assert vault.secret_values(acme.id, ["TOKEN"]) == {"TOKEN": value}


def test_another_workspaces_secret_is_404(client, acme, globex, alice, bob):
    value = canary("ghp_")
    secret, _ = vault.set_secret(acme, "ACME_DEPLOY", value, alice)
    client.force_login(bob)
    # Through Globex's own URL, Acme's secret does not exist either.
    assert (
        client.post(reverse("workspace-secret-delete", args=["globex", secret.id])).status_code
        == 404
    )
    assert client.get(secrets_url("acme")).status_code == 404
    assert save(client, "ACME_DEPLOY", canary("ghp_"), ws="acme").status_code == 404
    globex_page = client.get(secrets_url("globex")).content.decode()
    assert "ACME_DEPLOY" not in globex_page and f"…{value[-4:]}" not in globex_page
    assert vault.secret_values(acme.id, ["ACME_DEPLOY"]) == {"ACME_DEPLOY": value}
    assert vault.secret_values(globex.id, ["ACME_DEPLOY"]) == {}
