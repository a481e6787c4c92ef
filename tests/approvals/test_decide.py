"""Deciding a gate from the inbox: who may, what is recorded, and what is refused (with
nothing appended)."""

import pytest
from django.test import Client

from tests.approvals.support import decisions, event_count, payloads, publish_gated
from tests.conftest import make_member
from tests.support.live import event_types, run_status
from vectorbea.accounts.models import Role
from vectorbea.approvals.models import Gate
from vectorbea.runs.commands import start_run

INPUT = {"amount": 40, "customer": "Ada"}


def decide_url(run, step_id: str = "gate") -> str:
    return f"/w/acme/inbox/{run.id}/{step_id}/decide/"


def post_decision(client: Client, run, decision: str, reason: str = "", step_id="gate", **extra):
    gate = Gate.objects.filter(run=run, step_id=step_id).order_by("-attempt").first()
    data = {"decision": decision, "gate": gate.key if gate else "", "reason": reason, **extra}
    return client.post(decide_url(run, step_id), data)


def text(response) -> str:
    from html import unescape

    return unescape(response.content.decode())


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def omar(acme):
    return make_member("omar", acme, Role.APPROVER)


def test_an_approver_approves_with_a_reason_and_the_run_moves_on(acme, alice, omar):
    run = start_run(publish_gated(acme), INPUT, started_by=alice)

    response = post_decision(signed_in(omar), run, "approve", "within policy")

    assert response.status_code == 302
    assert response["Location"] == f"/w/acme/inbox/{run.id}/gate/"
    (granted,) = payloads(run.id, "ApprovalGranted")
    assert granted == {
        "step_id": "gate",
        "actor": "omar",
        "reason": "within policy",
        "fields": {},
        "gate": "gate:1",
    }
    assert event_types(run.id)[-2:] == ["StepCompleted", "StepStarted"]  # on to "pay"
    gate = Gate.objects.get(run=run)
    assert (gate.status, gate.decided_by, gate.reason) == ("approved", "omar", "within policy")


def test_the_decision_page_shows_who_decided_and_why(acme, alice, omar):
    run = start_run(publish_gated(acme), INPUT, started_by=alice)
    client = signed_in(omar)
    post_decision(client, run, "approve", "within policy")

    page = client.get(f"/w/acme/inbox/{run.id}/gate/").content.decode()

    assert "Approved by <strong>omar</strong>" in page
    assert "within policy" in page
    assert "Step &#x27;Refund&#x27; approved by omar: within policy" in page  # the history


def test_a_denial_needs_a_reason_and_appends_nothing_without_one(acme, alice, omar):
    run = start_run(publish_gated(acme), INPUT, started_by=alice)
    before = event_count(run.id)

    response = post_decision(signed_in(omar), run, "deny", "  ")

    assert response.status_code == 400
    assert "Say why you deny it" in response.content.decode()
    assert event_count(run.id) == before


def test_a_denial_ends_the_run_denied_with_the_reason_recorded(acme, alice, omar):
    run = start_run(publish_gated(acme), INPUT, started_by=alice)

    post_decision(signed_in(omar), run, "deny", "the amount is too high")

    assert run_status(run.id) == "denied"
    (failed,) = payloads(run.id, "RunFailed")
    assert failed["reason"] == "Approval 'Refund' was denied by omar: the amount is too high"
    assert Gate.objects.get(run=run).status == "denied"


def test_a_denial_takes_the_denied_branch_when_there_is_one(acme, alice, omar):
    from tests.approvals.support import gated

    run = start_run(publish_gated(acme, gated(denied_edge=True)), INPUT, started_by=alice)

    post_decision(signed_in(omar), run, "deny", "no")

    assert payloads(run.id, "StepSkipped") == [{"step_id": "pay", "reason": "branch not taken"}]
    assert payloads(run.id, "StepStarted")[-1]["step_id"] == "sorry"


@pytest.mark.parametrize(
    ("who", "status"),
    [("viewer", 403), ("editor", 403), ("initiator", 403), ("stranger", 404)],
)
def test_people_who_may_not_decide_are_refused_and_nothing_is_appended(
    acme, alice, bob, who, status
):
    initiator = make_member("ivan", acme, Role.APPROVER)  # an approver, but it is his run
    run = start_run(publish_gated(acme), INPUT, started_by=initiator)
    people = {
        "viewer": make_member("vera", acme, Role.VIEWER),
        "editor": make_member("eddie", acme, Role.EDITOR),
        "initiator": initiator,
        "stranger": bob,
    }
    before = event_count(run.id)

    for decision in ("approve", "deny"):
        response = post_decision(signed_in(people[who]), run, decision, "because")
        assert response.status_code == status, decision

    assert event_count(run.id) == before
    assert Gate.objects.get(run=run).status == "waiting"


def test_the_initiator_may_decide_when_the_gate_allows_it(acme, alice):
    run = start_run(publish_gated(acme, allow_self_approval=True), INPUT, started_by=alice)

    assert post_decision(signed_in(alice), run, "approve").status_code == 302
    assert decisions(run.id) == ["ApprovalGranted"]


def test_a_gate_may_name_the_people_who_decide(acme, alice, omar):
    carol = make_member("carol", acme, Role.EDITOR)
    workflow = publish_gated(acme, approvers={"users": ["{{ input.manager }}"]})
    run = start_run(workflow, {**INPUT, "manager": "carol"}, started_by=alice)

    assert post_decision(signed_in(omar), run, "approve").status_code == 403  # role not named
    assert post_decision(signed_in(carol), run, "approve").status_code == 302
    assert payloads(run.id, "ApprovalRequested")[0]["approvers"] == {
        "roles": [],
        "users": ["carol"],
    }


def test_two_of_three_approvals_from_different_people_complete_the_gate(acme, alice, omar):
    olga = make_member("olga", acme, Role.APPROVER)
    run = start_run(publish_gated(acme, required_approvals=2), INPUT, started_by=alice)

    assert post_decision(signed_in(omar), run, "approve", "ok").status_code == 302
    assert Gate.objects.get(run=run).status == "waiting"
    again = post_decision(signed_in(omar), run, "approve", "still ok")
    assert again.status_code == 403  # the same person twice counts once, and is told
    assert "already approved" in again.content.decode()
    assert post_decision(signed_in(olga), run, "approve", "agreed").status_code == 302

    assert decisions(run.id) == ["ApprovalGranted", "ApprovalGranted"]
    gate = Gate.objects.get(run=run)
    assert (gate.status, gate.granted_by) == ("approved", ["omar", "olga"])
    completed = [p for p in payloads(run.id, "StepCompleted") if p["step_id"] == "gate"]
    assert completed[0]["output"]["approved"] is True


def test_any_denial_denies_a_gate_that_needs_several_approvals(acme, alice, omar):
    olga = make_member("olga", acme, Role.APPROVER)
    run = start_run(publish_gated(acme, required_approvals=2), INPUT, started_by=alice)

    post_decision(signed_in(omar), run, "approve", "ok")
    post_decision(signed_in(olga), run, "deny", "not without a receipt")

    assert run_status(run.id) == "denied"
    assert Gate.objects.get(run=run).status == "denied"


def test_the_approvers_fields_become_the_steps_output(acme, alice, omar):
    fields = [
        {"name": "draft", "type": "long_text", "required": True, "default": "{{ input.customer }}"},
        {"name": "amount", "type": "number"},
        {"name": "notify", "type": "boolean"},
    ]
    run = start_run(publish_gated(acme, fields=fields), INPUT, started_by=alice)
    (requested,) = payloads(run.id, "ApprovalRequested")
    assert requested["form"][0]["default"] == "Ada"  # prefilled from the run
    client = signed_in(omar)

    missing = post_decision(client, run, "approve", **{"field-draft": " "})
    assert missing.status_code == 400 and "is required to approve" in missing.content.decode()
    ok = post_decision(
        client,
        run,
        "approve",
        **{"field-draft": "Dear Ada, sorry.", "field-amount": "35", "field-notify": "on"},
    )

    assert ok.status_code == 302
    gate_done = next(p for p in payloads(run.id, "StepCompleted") if p["step_id"] == "gate")
    assert gate_done["output"]["fields"] == {
        "draft": "Dear Ada, sorry.",
        "amount": 35,
        "notify": True,
    }


def test_a_link_never_decides_a_gate(acme, alice, omar):
    run = start_run(publish_gated(acme), INPUT, started_by=alice)
    client = signed_in(omar)
    before = event_count(run.id)

    assert client.get(decide_url(run) + "?decision=approve&gate=gate:1").status_code == 405
    assert client.get(f"/w/acme/inbox/{run.id}/gate/?decision=approve").status_code == 200
    assert event_count(run.id) == before


def test_a_decision_without_the_csrf_token_is_refused(acme, alice, omar):
    run = start_run(publish_gated(acme), INPUT, started_by=alice)
    client = Client(enforce_csrf_checks=True)
    client.force_login(omar)
    before = event_count(run.id)

    response = client.post(decide_url(run), {"decision": "approve", "gate": "gate:1"})

    assert response.status_code == 403
    assert event_count(run.id) == before


def test_the_second_person_is_told_who_decided_first_and_when(acme, alice, omar):
    olga = make_member("olga", acme, Role.APPROVER)
    run = start_run(publish_gated(acme), INPUT, started_by=alice)
    post_decision(signed_in(omar), run, "approve", "ok")

    late = post_decision(signed_in(olga), run, "deny", "too late")

    assert late.status_code == 409
    page = late.content.decode()
    assert "was already approved by omar at 20" in page
    assert decisions(run.id) == ["ApprovalGranted"]


def test_a_decision_on_an_older_opening_of_the_gate_is_refused(acme, alice, omar):
    run = start_run(publish_gated(acme), INPUT, started_by=alice)

    response = signed_in(omar).post(
        decide_url(run), {"decision": "approve", "gate": "gate:7", "reason": ""}
    )

    assert response.status_code == 409
    assert "asked again since you opened it" in response.content.decode()
    assert decisions(run.id) == []


def test_an_htmx_decision_answers_with_the_decided_item(acme, alice, omar):
    run = start_run(publish_gated(acme), INPUT, started_by=alice)

    response = signed_in(omar).post(
        decide_url(run),
        {"decision": "approve", "gate": "gate:1", "reason": "fine"},
        headers={"HX-Request": "true"},
    )

    assert response.status_code == 200
    html = response.content.decode()
    assert html.lstrip().startswith('<article class="card gate"')
    assert 'data-status="approved"' in html and "Approved by <strong>omar</strong>" in html


def test_text_postgres_cannot_store_is_refused_in_plain_words_not_a_500(acme, alice, omar):
    fields = [{"name": "draft", "type": "long_text"}]
    run = start_run(publish_gated(acme, fields=fields), INPUT, started_by=alice)
    before = event_count(run.id)

    response = post_decision(signed_in(omar), run, "approve", **{"field-draft": "Dear\x00Ada"})

    assert response.status_code == 400
    assert "This contains a NUL character (\\u0000), which cannot be stored." in text(response)
    assert event_count(run.id) == before
