"""Settings → API tokens: owners and admins create, list and revoke tokens; the value is
shown once, on the answer to its creation, and never again."""

import pytest
from django.urls import reverse

from tests.api.support import ApiClient
from tests.conftest import make_member
from vectorbea.accounts.models import Role
from vectorbea.api.models import ApiToken
from vectorbea.api.tokens import TOKEN_SHAPE, digest

pytestmark = pytest.mark.django_db


def tokens_url(ws: str = "acme") -> str:
    return reverse("api-tokens", args=[ws])


@pytest.fixture
def owner_client(client, alice):
    client.force_login(alice)
    return client


def create(client, name: str = "CI deploys", role: str = "editor"):
    return client.post(tokens_url(), {"name": name, "role": role})


def shown_token(html: str) -> str:
    match = TOKEN_SHAPE.search(html)
    assert match, "no token on the page"
    return match[0]


def test_an_owner_creates_a_token_and_sees_it_once(owner_client, acme, alice):
    response = create(owner_client)

    html = response.content.decode()
    assert response.status_code == 200
    assert "Copy your new token now" in html
    assert "no-store" in response["Cache-Control"]
    value = shown_token(html)
    token = ApiToken.objects.get(workspace=acme)
    assert (token.name, token.role, token.created_by) == ("CI deploys", "editor", alice)
    assert token.secret_hash == digest(value)
    assert ApiClient(value).get("/workflows").status_code == 200

    again = owner_client.get(tokens_url()).content.decode()
    assert value not in again
    assert TOKEN_SHAPE.search(again) is None
    assert f"vb_{token.prefix}_…" in again


def test_the_list_shows_when_a_token_was_last_used(owner_client):
    value = shown_token(create(owner_client).content.decode())
    assert "Not yet" in owner_client.get(tokens_url()).content.decode()
    ApiClient(value).get("/workflows")

    html = owner_client.get(tokens_url()).content.decode()

    assert "Not yet" not in html
    assert "ago" in html


@pytest.mark.parametrize(
    ("name", "role", "message"),
    [
        ("", "editor", "Give the token a name"),
        ("x" * 61, "editor", "Keep the name under 60 characters."),
        ("deploy; rm -rf", "editor", "Use letters, digits, spaces, dots, dashes and underscores"),
        ("vb_12345678_abc", "editor", "That looks like a token."),
        ("CI", "owner", "a token cannot be an owner"),
        ("CI", "", "Choose what the token may do."),
    ],
)
def test_validation_errors_are_plain(owner_client, name, role, message):
    response = create(owner_client, name, role)

    assert response.status_code == 400
    assert message in response.content.decode()
    assert not ApiToken.objects.exists()


def test_two_active_tokens_cannot_share_a_name(owner_client):
    create(owner_client, "CI")

    response = create(owner_client, "  CI ")

    assert response.status_code == 400
    assert "A token named “CI” already exists here." in response.content.decode()
    assert ApiToken.objects.count() == 1


def test_revoking_a_token_refuses_it_at_once_and_keeps_it_for_the_record(owner_client, acme):
    value = shown_token(create(owner_client, "CI").content.decode())
    token = ApiToken.objects.get()

    response = owner_client.post(reverse("api-token-revoke", args=["acme", token.id]))

    assert response.status_code == 302
    assert ApiClient(value).get("/workflows").status_code == 401
    page = owner_client.get(tokens_url()).content.decode()
    assert "Revoked the token “CI”" in page
    assert "Revoked tokens" in page
    assert create(owner_client, "CI").status_code == 200  # the name is free again


def test_revoke_needs_a_post(owner_client):
    create(owner_client)
    token = ApiToken.objects.get()

    response = owner_client.get(reverse("api-token-revoke", args=["acme", token.id]))

    assert response.status_code == 405
    assert ApiToken.objects.get().is_active


@pytest.mark.parametrize("role", [Role.EDITOR, Role.APPROVER, Role.VIEWER])
def test_other_roles_get_a_403(client, acme, role):
    client.force_login(make_member("mo", acme, role))

    assert client.get(tokens_url()).status_code == 403
    assert client.post(tokens_url(), {"name": "x", "role": "admin"}).status_code == 403
    assert not ApiToken.objects.exists()


def test_an_admin_manages_tokens_and_the_settings_nav_links_the_page(client, acme):
    client.force_login(make_member("ada", acme, Role.ADMIN))

    html = client.get(reverse("workspace-settings", args=["acme"])).content.decode()

    assert f'href="{tokens_url()}"' in html
    assert client.get(tokens_url()).status_code == 200
