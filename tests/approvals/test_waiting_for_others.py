"""Owners and admins see the gates that wait for other people, and can give one to other
approvers or escalate it early; each is a fact in the run's log. Other roles are offered
neither, and their POSTs are refused."""

import json

import pytest
from django.test import Client

from tests.approvals.support import payloads, publish_gated
from tests.conftest import make_member
from tests.support.live import event_types
from vectorbea.accounts.models import Role
from vectorbea.approvals.models import Gate
from vectorbea.approvals.projection import rebuild
from vectorbea.runs.commands import decide_gate, start_run

INPUT = {"amount": 40, "customer": "Ada"}
APPROVERS_ONLY = {"roles": ["approver"]}
ESCALATE = {"approvers": {"users": ["carol"]}, "timeout_seconds": 3600, "on_timeout": "deny"}


def signed_in(user, csrf: bool = False) -> Client:
    client = Client(enforce_csrf_checks=csrf)
    client.force_login(user)
    return client


def url(run, action: str = "") -> str:
    return f"/w/acme/inbox/{run.id}/gate/{action + '/' if action else ''}"


@pytest.fixture
def omar(acme):
    return make_member("omar", acme, Role.APPROVER)


@pytest.fixture
def carol(acme):
    return make_member("carol", acme, Role.EDITOR)


@pytest.fixture
def run(acme, alice, omar, carol):
    """A gate only approvers may decide (alice, the owner, may not), escalating to carol."""
    workflow = publish_gated(
        acme,
        approvers=APPROVERS_ONLY,
        timeout_seconds=600,
        on_timeout="escalate",
        escalate=ESCALATE,
    )
    return start_run(workflow, INPUT, started_by=alice)


def test_an_owner_sees_gates_waiting_for_others_and_who_can_decide_them(run, alice):
    page = signed_in(alice).get("/w/acme/inbox/").content.decode()

    assert "Nothing is waiting for your decision" in page
    assert "1 approval waits for other people" in page
    assert 'id="inbox-others"' in page
    assert "Refund 40 EUR to Ada?" in page
    assert "Can decide: <strong>omar</strong>" in page
    assert "Reassign" in page and "Escalate now" in page and "to carol" in page


def test_a_gate_nobody_can_decide_says_so(acme, alice):
    workflow = publish_gated(acme, approvers={"users": ["ghost"]})
    start_run(workflow, INPUT, started_by=alice)

    page = signed_in(alice).get("/w/acme/inbox/").content.decode()

    assert "Nobody in this workspace can decide it now" in page


@pytest.mark.parametrize("role", [Role.APPROVER, Role.EDITOR, Role.VIEWER])
def test_other_roles_are_not_offered_gates_of_others_nor_actions_on_them(acme, run, role):
    member = make_member(f"m-{role}", acme, role)

    page = signed_in(member).get("/w/acme/inbox/").content.decode()

    assert 'id="inbox-others"' not in page
    assert "Reassign" not in page and "Escalate now" not in page
    gate_page = signed_in(member).get(url(run)).content.decode()
    assert "Reassign" not in gate_page and "Escalate now" not in gate_page


@pytest.mark.parametrize("role", [Role.APPROVER, Role.VIEWER])
def test_roles_that_cannot_act_on_runs_are_not_offered_runs_needing_attention(acme, role):
    member = make_member(f"m-{role}", acme, role)

    page = signed_in(member).get("/w/acme/inbox/").content.decode()

    assert "Runs needing attention" not in page
    assert "?status=attention" not in page


@pytest.mark.parametrize("role", [Role.OWNER, Role.EDITOR])
def test_roles_that_operate_runs_see_runs_needing_attention(acme, role):
    member = make_member(f"m-{role}", acme, role)

    assert "Runs needing attention" in signed_in(member).get("/w/acme/inbox/").content.decode()


def test_an_owner_gives_a_gate_to_other_approvers_and_the_log_records_it(run, alice, carol):
    gate = Gate.objects.get(run=run)
    client = signed_in(alice)

    response = client.post(
        url(run, "reassign"),
        {"gate": gate.key, "users": ["carol"], "reason": "omar is away", "back": "gate"},
    )

    assert response.status_code == 302 and response["Location"] == url(run)
    [fact] = payloads(run.id, "ApprovalReassigned")
    assert fact["actor"] == "alice" and fact["reason"] == "omar is away"
    assert fact["approvers"] == {"roles": [], "users": ["carol"]}
    gate.refresh_from_db()
    assert (gate.approver_roles, gate.approver_users, gate.status) == ([], ["carol"], "waiting")
    page = client.get(url(run)).content.decode()
    assert "reassigned by alice to carol: omar is away" in page
    assert "now waits for carol" in page
    # carol may decide it now; omar may not
    decided = signed_in(carol).post(url(run, "decide"), {"decision": "approve", "gate": gate.key})
    assert decided.status_code == 302
    assert event_types(run.id).count("ApprovalGranted") == 1
    assert payloads(run.id, "ApprovalGranted")[0]["actor"] == "carol"


def test_the_new_approvers_decide_and_the_old_ones_cannot(run, alice, omar):
    gate = Gate.objects.get(run=run)
    signed_in(alice).post(url(run, "reassign"), {"gate": gate.key, "users": ["carol"]})

    response = signed_in(omar).post(url(run, "decide"), {"decision": "approve", "gate": gate.key})

    assert response.status_code == 403
    assert "ApprovalGranted" not in event_types(run.id)


def test_an_owner_escalates_a_gate_early_as_its_timeout_would(run, alice):
    gate = Gate.objects.get(run=run)

    response = signed_in(alice).post(url(run, "escalate"), {"gate": gate.key, "reason": "urgent"})

    assert response.status_code == 302 and response["Location"] == "/w/acme/inbox/"
    [fact] = payloads(run.id, "ApprovalEscalated")
    assert (fact["actor"], fact["reason"], fact["level"]) == ("alice", "urgent", 1)
    assert fact["approvers"] == {"roles": [], "users": ["carol"]}
    escalated = Gate.objects.get(run=run)
    assert (escalated.level, escalated.approver_users, escalated.escalation) == (1, ["carol"], None)
    assert (escalated.timeout_at - gate.timeout_at).total_seconds() > 2000  # its own 1 h
    page = signed_in(alice).get(url(run)).content.decode()
    assert "escalated by alice to carol" in page
    assert "Escalate now" not in page  # one escalation, already taken


def test_escalating_a_gate_without_an_escalation_says_why_and_records_nothing(acme, alice):
    run = start_run(publish_gated(acme, approvers=APPROVERS_ONLY), INPUT, started_by=alice)
    gate = Gate.objects.get(run=run)
    before = event_types(run.id)

    response = signed_in(alice).post(url(run, "escalate"), {"gate": gate.key}, follow=True)

    assert "has no escalation left to take" in response.content.decode()
    assert event_types(run.id) == before


def test_a_reassignment_to_nobody_or_a_stranger_is_refused_in_plain_words(run, alice):
    gate = Gate.objects.get(run=run)
    before = event_types(run.id)
    client = signed_in(alice)

    nobody = client.post(url(run, "reassign"), {"gate": gate.key}, follow=True)
    stranger = client.post(url(run, "reassign"), {"gate": gate.key, "users": ["eve"]}, follow=True)

    assert "Choose at least one role or person" in nobody.content.decode()
    assert "was not reassigned" in stranger.content.decode()
    assert event_types(run.id) == before


def test_a_decided_gate_cannot_be_reassigned_or_escalated(run, alice, omar):
    gate = Gate.objects.get(run=run)
    decide_gate(run.id, "gate", approve=True, actor="omar")
    before = event_types(run.id)
    client = signed_in(alice)

    reassigned = client.post(
        url(run, "reassign"), {"gate": gate.key, "users": ["carol"]}, follow=True
    )
    escalated = client.post(url(run, "escalate"), {"gate": gate.key}, follow=True)

    assert "already approved by omar" in reassigned.content.decode()
    assert "already approved by omar" in escalated.content.decode()
    assert event_types(run.id) == before


@pytest.mark.parametrize("role", [Role.APPROVER, Role.EDITOR, Role.VIEWER])
def test_other_roles_cannot_reassign_or_escalate(acme, run, role):
    member = make_member(f"m-{role}", acme, role)
    gate = Gate.objects.get(run=run)
    before = event_types(run.id)
    client = signed_in(member)

    assert (
        client.post(url(run, "reassign"), {"gate": gate.key, "users": ["carol"]}).status_code == 403
    )
    assert client.post(url(run, "escalate"), {"gate": gate.key}).status_code == 403
    assert event_types(run.id) == before


def test_another_workspaces_owner_gets_a_404(run, bob):
    gate = Gate.objects.get(run=run)
    client = signed_in(bob)

    assert (
        client.post(url(run, "reassign"), {"gate": gate.key, "users": ["bob"]}).status_code == 404
    )
    assert client.post(url(run, "escalate"), {"gate": gate.key}).status_code == 404


def test_a_post_without_its_csrf_token_is_refused(run, alice):
    gate = Gate.objects.get(run=run)
    before = event_types(run.id)
    client = signed_in(alice, csrf=True)

    assert (
        client.post(url(run, "reassign"), {"gate": gate.key, "users": ["carol"]}).status_code == 403
    )
    assert client.post(url(run, "escalate"), {"gate": gate.key}).status_code == 403
    assert event_types(run.id) == before


def test_reassignments_and_early_escalations_are_in_the_audit_export(run, alice):
    gate = Gate.objects.get(run=run)
    client = signed_in(alice)
    client.post(url(run, "reassign"), {"gate": gate.key, "roles": ["admin"], "users": ["carol"]})
    client.post(url(run, "escalate"), {"gate": gate.key, "reason": "urgent"})

    export = json.loads(client.get("/w/acme/inbox/audit/?format=json").content)

    rows = [(row["decision"], row["actor"], row["reason"]) for row in export["decisions"]]
    assert rows == [
        ("reassigned to admins and carol", "alice", ""),
        ("escalated early", "alice", "urgent"),
    ]


def test_the_rows_rebuilt_from_the_log_equal_the_live_ones(run, alice):
    gate = Gate.objects.get(run=run)
    client = signed_in(alice)
    client.post(url(run, "reassign"), {"gate": gate.key, "users": ["carol"]})
    columns = ["approver_roles", "approver_users", "level", "escalation", "timeout_at", "status"]
    live = list(Gate.objects.filter(run=run).values(*columns))

    rebuild([run.id])

    assert list(Gate.objects.filter(run=run).values(*columns)) == live


def test_an_admin_sees_and_manages_gates_waiting_for_others_like_an_owner(acme, run):
    adam = make_member("adam", acme, Role.ADMIN)
    gate = Gate.objects.get(run=run)
    client = signed_in(adam)

    assert 'id="inbox-others"' in client.get("/w/acme/inbox/").content.decode()
    assert "Who decides" in client.get(url(run)).content.decode()
    assert client.post(url(run, "escalate"), {"gate": gate.key}).status_code == 302
    assert payloads(run.id, "ApprovalEscalated")[0]["actor"] == "adam"


def test_the_migration_gives_gates_waiting_before_it_their_escalation(acme, alice, run):
    import importlib

    from django.db import connection

    migration = importlib.import_module(
        "vectorbea.approvals.migrations.0002_gate_escalation_still_to_come"
    )
    plain = start_run(publish_gated(acme, approvers=APPROVERS_ONLY), INPUT, started_by=alice)
    Gate.objects.update(escalation=None)  # as every row was before the column existed

    with connection.cursor() as cursor:
        cursor.execute(migration.BACKFILL)

    assert Gate.objects.get(run=run).escalation == {
        "approvers": {"roles": [], "users": ["carol"]},
        "timeout_seconds": 3600,
        "on_timeout": "deny",
    }
    assert Gate.objects.get(run=plain).escalation is None
