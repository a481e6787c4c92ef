"""Deciding approvals through the API: the inbox's list and the inbox's rules."""

import pytest

from tests.api.conftest import api_as
from tests.approvals.support import decisions, event_count, payloads, publish_gated
from tests.conftest import make_member
from vectorbea.accounts.models import Role
from vectorbea.approvals.models import Gate
from vectorbea.runs.commands import start_run

pytestmark = pytest.mark.django_db

INPUT = {"amount": 40, "customer": "Ada"}
FIELDS = [
    {"name": "refund", "type": "number", "label": "Refund amount", "required": True},
    {"name": "note", "type": "text", "label": "Note"},
]


def test_it_lists_the_gates_the_token_may_decide(acme, alice):
    run = start_run(publish_gated(acme), INPUT, started_by=alice)
    finance_only = start_run(
        publish_gated(acme, approvers={"roles": ["admin"]}), INPUT, started_by=alice
    )

    listed = api_as(acme, Role.APPROVER).get("/approvals").json()

    assert [(a["run_id"], a["step_id"]) for a in listed] == [(str(run.id), "gate")]
    (approval,) = listed
    assert approval["title"] == "Refund 40 EUR to Ada?"
    assert approval["status"] == "waiting"
    assert approval["gate"] == "gate:1"
    assert approval["run_input"] == INPUT
    admin_listed = api_as(acme, Role.ADMIN).get("/approvals").json()
    assert {a["run_id"] for a in admin_listed} == {str(run.id), str(finance_only.id)}


def test_an_approval_is_recorded_with_the_tokens_name(acme, alice):
    run = start_run(publish_gated(acme), INPUT, started_by=alice)

    response = api_as(acme, Role.APPROVER, "refund bot").post(
        f"/approvals/{run.id}/gate", {"approve": True, "reason": "within policy"}
    )

    assert response.status_code == 200
    assert response.json()["status"] == "approved"
    (granted,) = payloads(run.id, "ApprovalGranted")
    assert (granted["actor"], granted["reason"]) == ("api:refund bot", "within policy")


def test_a_denial_needs_a_reason_and_appends_nothing_without_one(acme, alice):
    run = start_run(publish_gated(acme), INPUT, started_by=alice)
    before = event_count(run.id)

    response = api_as(acme, Role.APPROVER).post(f"/approvals/{run.id}/gate", {"approve": False})

    assert response.status_code == 422
    assert response.json()["problems"] == [
        {"path": "reason", "message": "Say why you deny it: the reason is recorded with the run."}
    ]
    assert event_count(run.id) == before


def test_fields_are_checked_and_typed_as_in_the_inbox(acme, alice):
    run = start_run(publish_gated(acme, fields=FIELDS), INPUT, started_by=alice)
    api = api_as(acme, Role.APPROVER)

    refused = api.post(
        f"/approvals/{run.id}/gate", {"approve": True, "fields": {"note": "x", "color": "red"}}
    )
    assert refused.status_code == 422
    assert sorted(p["path"] for p in refused.json()["problems"]) == [
        "fields.color",
        "fields.refund",
    ]

    response = api.post(
        f"/approvals/{run.id}/gate", {"approve": True, "fields": {"refund": "12.5", "note": "ok"}}
    )
    assert response.status_code == 200
    (granted,) = payloads(run.id, "ApprovalGranted")
    assert granted["fields"] == {"refund": 12.5, "note": "ok"}


def test_deciding_twice_is_a_conflict_saying_who_decided(acme, alice):
    run = start_run(publish_gated(acme), INPUT, started_by=alice)
    api = api_as(acme, Role.APPROVER, "first")
    api.post(f"/approvals/{run.id}/gate", {"approve": True})

    again = api_as(acme, Role.ADMIN, "second").post(
        f"/approvals/{run.id}/gate", {"approve": False, "reason": "too late"}
    )

    assert again.status_code == 409
    assert "was already approved by api:first" in again.json()["detail"]
    assert decisions(run.id) == ["ApprovalGranted"]


def test_a_gate_that_does_not_name_the_tokens_role_is_a_403(acme, alice):
    run = start_run(
        publish_gated(acme, approvers={"roles": [], "users": ["omar"]}), INPUT, started_by=alice
    )
    make_member("omar", acme, Role.APPROVER)

    response = api_as(acme, Role.ADMIN).post(f"/approvals/{run.id}/gate", {"approve": True})

    assert response.status_code == 403
    assert response.json()["detail"] == (
        "You are not one of the people who may decide this approval."
    )
    assert decisions(run.id) == []


def test_a_token_may_not_approve_a_run_it_started(acme):
    api = api_as(acme, Role.ADMIN, "self starter")
    workflow = publish_gated(acme)
    started = api.post(f"/workflows/{workflow.id}/runs", {"input": INPUT}).json()

    response = api.post(f"/approvals/{started['id']}/gate", {"approve": True})

    assert response.status_code == 403
    assert response.json()["detail"] == (
        "api:self starter was created by acme-keeper, who started this run; this approval "
        "does not let anyone approve their own run."
    )


def test_a_gate_asked_again_refuses_a_decision_for_the_old_one(acme, alice):
    run = start_run(publish_gated(acme), INPUT, started_by=alice)

    response = api_as(acme, Role.APPROVER).post(
        f"/approvals/{run.id}/gate", {"approve": True, "gate": "gate:0"}
    )

    assert response.status_code == 409
    assert "was asked again since you opened it" in response.json()["detail"]
    assert Gate.objects.get(run=run).status == "waiting"


def test_an_unknown_step_is_a_404_and_a_malformed_one_a_422(acme, alice):
    run = start_run(publish_gated(acme), INPUT, started_by=alice)
    api = api_as(acme, Role.APPROVER)

    assert api.post(f"/approvals/{run.id}/nope", {"approve": True}).status_code == 404
    malformed = api.post(f"/approvals/{run.id}/no%20pe", {"approve": True})
    assert malformed.status_code == 422
    assert malformed.json()["problems"][0]["path"] == "path.step_id"
