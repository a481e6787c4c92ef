"""How long a token works: it expires (after 90 days unless its creator chooses otherwise,
shown on the tokens page), and it stands for the person who created it, so it is revoked
when they leave the workspace or lose a role that covers the token's."""

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse
from django.utils import timezone

from tests.api.support import ApiClient, token_for
from tests.conftest import make_member
from vectorbea.accounts.models import Membership, Role
from vectorbea.api.models import ApiToken
from vectorbea.api.tokens import TOKEN_SHAPE

pytestmark = pytest.mark.django_db

TOKENS = reverse("api-tokens", args=["acme"])


@pytest.fixture
def dave(acme):
    """An admin of Acme, who makes tokens."""
    return make_member("dave", acme, Role.ADMIN)


def signed_in(client, user):
    client.force_login(user)
    return client


def token_named(name: str) -> ApiToken:
    return ApiToken.objects.get(name=name)


def membership_id(user, workspace) -> int:
    return Membership.objects.get(user=user, workspace=workspace).id


# --- expiry ---------------------------------------------------------------------------------


def test_a_new_token_expires_after_90_days_by_default_and_the_page_says_when(client, alice):
    signed_in(client, alice)
    form = client.get(TOKENS).content.decode()
    assert '<option value="90" selected>90 days</option>' in form

    answer = client.post(TOKENS, {"name": "CI", "role": "editor", "expires": "90"})

    token = token_named("CI")
    assert abs(token.expires_at - (timezone.now() + timedelta(days=90))) < timedelta(minutes=1)
    expires = f"{timezone.localtime(token.expires_at):%b %-d, %Y}"
    assert f"It works until <strong>{expires}" in answer.content.decode()
    listed = client.get(TOKENS).content.decode()
    assert f'data-expires="{token.expires_at.isoformat()}"' in listed
    assert expires in listed


def test_a_form_without_an_expiry_gets_the_default(client, alice):
    signed_in(client, alice).post(TOKENS, {"name": "CI", "role": "viewer"})

    left = token_named("CI").expires_at - timezone.now()
    assert timedelta(days=89, hours=23) < left <= timedelta(days=90)


@pytest.mark.parametrize(("choice", "days"), [("7", 7), ("365", 365), ("never", None)])
def test_the_creator_chooses_another_expiry_or_none(client, alice, choice, days):
    signed_in(client, alice).post(TOKENS, {"name": "CI", "role": "viewer", "expires": choice})

    token = token_named("CI")
    if days is None:
        assert token.expires_at is None
        assert 'data-expires="never"><span class="muted">Never</span>' in (
            client.get(TOKENS).content.decode()
        )
    else:
        left = token.expires_at - timezone.now()
        assert timedelta(days=days) - timedelta(minutes=1) < left <= timedelta(days=days)


def test_an_unknown_expiry_is_refused_in_plain_words(client, alice):
    response = signed_in(client, alice).post(
        TOKENS, {"name": "CI", "role": "viewer", "expires": "3650"}
    )

    assert response.status_code == 400
    assert "Choose 7, 30 or 90 days, 1 year, or never." in response.content.decode()
    assert not ApiToken.objects.exists()


def test_an_expired_token_is_a_plain_401(acme):
    value = token_for(acme, Role.ADMIN, "CI")
    api = ApiClient(value)
    assert api.get("/workflows").status_code == 200
    ApiToken.objects.filter(name="CI").update(expires_at=timezone.now() - timedelta(seconds=1))

    response = api.get("/workflows")

    assert response.status_code == 401
    assert response["Content-Type"] == "application/json; charset=utf-8"
    assert response["WWW-Authenticate"] == 'Bearer realm="vectorbea"'
    body = response.json()
    assert body["problems"] == []
    assert body["detail"].startswith("This API token expired on ")
    assert body["detail"].endswith("UTC. Create a new one in Settings → API tokens.")


def test_an_expired_token_is_marked_on_the_page_until_it_is_revoked(client, alice, acme):
    token_for(acme, Role.VIEWER, "old")
    ApiToken.objects.filter(name="old").update(expires_at=timezone.now() - timedelta(days=1))

    html = signed_in(client, alice).get(TOKENS).content.decode()

    assert '<span class="badge status-failed">Expired</span>' in html


# --- the creator leaves or is demoted -------------------------------------------------------


def test_a_token_is_revoked_when_its_creator_is_removed_from_the_workspace(
    client, alice, acme, dave
):
    value = token_for(acme, Role.EDITOR, "deploys", by=dave)
    assert ApiClient(value).get("/workflows").status_code == 200

    removed = signed_in(client, alice).post(
        reverse("member-remove", args=["acme", membership_id(dave, acme)])
    )

    assert removed.status_code == 302
    token = token_named("deploys")
    assert token.revoked_at is not None
    assert token.revoked_reason == "dave, who created it, left the workspace"
    response = ApiClient(value).get("/workflows")
    assert response.status_code == 401
    assert (
        ": dave, who created it, left the workspace. Create a new one"
        in (response.json()["detail"])
    )
    page = client.get(TOKENS).content.decode()
    assert "dave, who created it, left the workspace" in page


def test_a_token_is_revoked_when_its_creator_loses_the_role_it_holds(client, alice, acme, dave):
    admin = token_for(acme, Role.ADMIN, "admin bot", by=dave)
    approver = token_for(acme, Role.APPROVER, "approver bot", by=dave)
    editor = token_for(acme, Role.EDITOR, "editor bot", by=dave)
    viewer = token_for(acme, Role.VIEWER, "viewer bot", by=dave)

    signed_in(client, alice).post(
        reverse("member-role", args=["acme", membership_id(dave, acme)]), {"role": "editor"}
    )

    assert ApiClient(admin).get("/workflows").status_code == 401
    assert ApiClient(approver).get("/workflows").status_code == 401
    assert ApiClient(editor).get("/workflows").status_code == 200
    assert ApiClient(viewer).get("/workflows").status_code == 200
    assert token_named("admin bot").revoked_reason == (
        "dave, who created it, is now an Editor, who may not do all that an Admin token does"
    )
    assert not token_named("editor bot").revoked_at


def test_a_revoked_token_stays_revoked_when_its_creator_gets_the_role_back(
    client, alice, acme, dave
):
    value = token_for(acme, Role.ADMIN, "admin bot", by=dave)
    role_url = reverse("member-role", args=["acme", membership_id(dave, acme)])
    signed_in(client, alice).post(role_url, {"role": "viewer"})

    client.post(role_url, {"role": "admin"})

    assert ApiClient(value).get("/workflows").status_code == 401


def test_a_token_is_refused_however_its_creator_left(acme, dave):
    """Removed or demoted outside the members page (the admin, a script): the request
    itself checks the creator's role now, and revokes the token."""
    kept = token_for(acme, Role.VIEWER, "kept", by=dave)
    value = token_for(acme, Role.ADMIN, "admin bot", by=dave)
    Membership.objects.filter(user=dave, workspace=acme).update(role=Role.APPROVER)

    response = ApiClient(value).get("/workflows")

    assert response.status_code == 401
    assert "dave, who created it, is now an Approver" in response.json()["detail"]
    assert token_named("admin bot").revoked_at is not None
    assert ApiClient(kept).get("/workflows").status_code == 200

    Membership.objects.filter(user=dave, workspace=acme).delete()
    assert "left the workspace" in ApiClient(kept).get("/workflows").json()["detail"]


def test_a_token_whose_creators_account_is_switched_off_or_deleted_is_refused(acme, dave):
    switched_off = token_for(acme, Role.VIEWER, "one", by=dave)
    get_user_model().objects.filter(pk=dave.pk).update(is_active=False)
    assert (
        "dave, who created it, can no longer sign in"
        in (ApiClient(switched_off).get("/workflows").json()["detail"])
    )

    deleted = token_for(acme, Role.VIEWER, "two", by=make_member("erin", acme, Role.ADMIN))
    get_user_model().objects.filter(username="erin").delete()
    response = ApiClient(deleted).get("/workflows")
    assert response.status_code == 401
    assert "the account that created it was deleted" in response.json()["detail"]


def test_the_tokens_page_lists_tokens_whose_creator_left_as_revoked(client, alice, acme, dave):
    token_for(acme, Role.EDITOR, "deploys", by=dave)
    Membership.objects.filter(user=dave, workspace=acme).delete()  # e.g. in the admin

    html = signed_in(client, alice).get(TOKENS).content.decode()

    assert 'id="revoked-tokens"' in html
    assert "dave, who created it, left the workspace" in html
    assert TOKEN_SHAPE.search(html) is None
