"""Who may call what: a token is its workspace and its role. Unknown and revoked tokens
get a 401, a role without the capability a 403, another workspace's ids a 404 exactly like
missing ones."""

import uuid
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from tests.api.conftest import api_as
from tests.api.support import ApiClient, token_for
from tests.approvals.support import publish_gated
from tests.support.workflows import chain, publish
from vectorbea.accounts.models import Role
from vectorbea.api.models import ApiToken
from vectorbea.api.tokens import find_token, revoke_token
from vectorbea.runs.commands import start_run

pytestmark = pytest.mark.django_db

INPUT = {"amount": 40, "customer": "Ada"}


def test_a_request_without_a_token_is_a_401_saying_how_to_send_one(workflow):
    response = ApiClient(None).get("/workflows")

    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert response.json() == {
        "detail": "Send an API token in the Authorization header: “Authorization: Bearer vb_…”.",
        "problems": [],
    }


@pytest.mark.parametrize(
    "value",
    [
        "vb_00000000_" + "A" * 43,  # well formed, unknown
        "nonsense",
        "vb_zzzzzzzz_" + "A" * 43,
    ],
)
def test_an_unknown_token_is_a_401(acme, value):
    response = ApiClient(value).get("/workflows")

    assert response.status_code == 401
    assert "This API token is not valid" in response.json()["detail"]


def test_a_token_with_the_right_prefix_but_the_wrong_secret_is_a_401(acme):
    value = token_for(acme, Role.ADMIN)
    forged = value[:12] + ("B" if value[12] != "B" else "C") + value[13:]

    assert ApiClient(forged).get("/workflows").status_code == 401
    assert ApiClient(value).get("/workflows").status_code == 200


def test_a_revoked_token_is_a_401_from_its_next_request(acme):
    value = token_for(acme, Role.ADMIN)
    api = ApiClient(value)
    assert api.get("/workflows").status_code == 200

    revoke_token(find_token(value))

    response = api.get("/workflows")
    assert response.status_code == 401
    assert "revoked" in response.json()["detail"]


def test_a_signed_in_browser_session_is_not_an_api_credential(alice, workflow):
    client = Client()
    client.force_login(alice)

    assert client.get("/api/workflows").status_code == 401


def test_only_a_digest_of_the_token_is_stored(acme):
    value = token_for(acme, Role.VIEWER, "reader")
    token = ApiToken.objects.get(name="reader")

    assert value.startswith(f"vb_{token.prefix}_")
    assert value not in str(ApiToken.objects.filter(pk=token.pk).values().get())


def test_last_used_is_set_at_most_once_a_minute(acme):
    value = token_for(acme, Role.VIEWER, "reader")
    api = ApiClient(value)
    api.get("/workflows")
    first = ApiToken.objects.get(name="reader").last_used_at
    assert first is not None

    api.get("/workflows")
    assert ApiToken.objects.get(name="reader").last_used_at == first

    ApiToken.objects.filter(name="reader").update(last_used_at=first - timedelta(minutes=2))
    api.get("/workflows")
    assert ApiToken.objects.get(name="reader").last_used_at > first - timedelta(seconds=1)
    assert ApiToken.objects.get(name="reader").last_used_at <= timezone.now()


def test_a_viewer_token_reads_but_cannot_start_operate_or_decide(acme, alice, workflow):
    gated = start_run(publish_gated(acme), INPUT, started_by=alice)
    api = api_as(acme, Role.VIEWER)

    assert api.get("/workflows").status_code == 200
    assert api.get(f"/runs/{gated.id}").status_code == 200
    assert api.get("/approvals").json() == []
    refused = [
        api.post(f"/workflows/{workflow.id}/runs", {"input": {"ticket": "a"}}),
        api.post(f"/runs/{gated.id}/cancel"),
        api.post(f"/runs/{gated.id}/retry"),
        api.post(f"/approvals/{gated.id}/gate", {"approve": True}),
    ]
    assert [r.status_code for r in refused] == [403, 403, 403, 403]
    assert refused[0].json()["detail"] == "This token's role (Viewer) cannot do this."


def test_an_approver_token_decides_but_cannot_start(acme, alice, workflow):
    run = start_run(publish_gated(acme), INPUT, started_by=alice)
    api = api_as(acme, Role.APPROVER, "approver bot")

    assert api.post(f"/workflows/{workflow.id}/runs", {"input": {"ticket": "a"}}).status_code == 403
    assert api.post(f"/runs/{run.id}/cancel").status_code == 403
    response = api.post(f"/approvals/{run.id}/gate", {"approve": True, "reason": "ok"})
    assert response.status_code == 200
    assert response.json()["decided_by"] == "api:approver bot"


def test_an_editor_token_cannot_decide(acme, alice):
    run = start_run(publish_gated(acme), INPUT, started_by=alice)

    response = api_as(acme, Role.EDITOR).post(f"/approvals/{run.id}/gate", {"approve": True})

    assert response.status_code == 403


@pytest.fixture
def acme_objects(acme, alice):
    """One of everything an id can name, in Acme."""
    workflow = publish(acme, chain(1), name="Acme only")
    run = start_run(publish_gated(acme), INPUT, started_by=alice)
    return {"workflow": workflow.id, "run": run.id}


ID_ENDPOINTS = [
    ("get", "/workflows/{workflow}/versions", None),
    ("post", "/workflows/{workflow}/runs", {"input": {}}),
    ("get", "/runs/{run}", None),
    ("get", "/runs/{run}/events", None),
    ("post", "/runs/{run}/cancel", None),
    ("post", "/runs/{run}/retry", None),
    ("post", "/approvals/{run}/gate", {"approve": True, "reason": "mine now"}),
]


@pytest.mark.parametrize(("method", "path", "body"), ID_ENDPOINTS)
def test_another_workspaces_ids_are_404_like_missing_ones(acme_objects, globex, method, path, body):
    stranger = api_as(globex, Role.ADMIN)
    missing = {"workflow": uuid.uuid4(), "run": uuid.uuid4()}

    theirs = getattr(stranger, method)(path.format(**acme_objects), *([body] if body else []))
    absent = getattr(stranger, method)(path.format(**missing), *([body] if body else []))

    assert theirs.status_code == 404
    assert theirs.json() == absent.json()
    assert absent.status_code == 404


def test_a_token_sees_only_its_own_workspace(acme_objects, globex):
    publish(globex, chain(1), name="Globex only")
    stranger = api_as(globex, Role.ADMIN)

    assert [w["name"] for w in stranger.get("/workflows").json()] == ["Globex only"]
    assert stranger.get("/approvals").json() == []
