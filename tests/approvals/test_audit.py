"""A gate's history comes from the log; owners and admins export decisions by date."""

import csv
import io
import re
from datetime import UTC, datetime, timedelta

from django.test import Client

from tests.approvals.support import publish_gated
from tests.conftest import make_member
from vectorbea.accounts.models import Membership, Role
from vectorbea.runs.commands import decide_gate, start_run

INPUT = {"amount": 40, "customer": "Ada"}


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def today() -> str:
    return datetime.now(UTC).date().isoformat()


def test_owners_export_the_decisions_of_a_date_range_as_csv_and_json(acme, alice, globex):
    workflow = publish_gated(acme)
    first = start_run(workflow, INPUT, started_by=alice)
    second = start_run(workflow, INPUT, started_by=alice)
    decide_gate(first.id, "gate", approve=True, actor="omar", reason="fine", fields={"n": 1})
    decide_gate(second.id, "gate", approve=False, actor="olga", reason="=HYPERLINK(evil)")
    Membership.objects.create(workspace=globex, user=alice, role=Role.OWNER)
    start_run(publish_gated(globex), INPUT, started_by=alice)  # another workspace's
    client = signed_in(alice)

    response = client.get(f"/w/acme/inbox/audit/?from={today()}&to={today()}")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    table = {r["actor"]: r for r in csv.DictReader(io.StringIO(response.content.decode()))}
    assert {(r["run_id"], r["decision"], a) for a, r in table.items()} == {
        (str(first.id), "approved", "omar"),
        (str(second.id), "denied", "olga"),
    }
    assert table["omar"]["fields"] == '{"n": 1}' and table["omar"]["workflow"] == "Refunds"
    assert table["olga"]["reason"] == "'=HYPERLINK(evil)"  # never a formula in a spreadsheet

    as_json = client.get(f"/w/acme/inbox/audit/?from={today()}&to={today()}&format=json").json()
    assert sorted(d["reason"] for d in as_json["decisions"]) == ["=HYPERLINK(evil)", "fine"]
    assert {d["gate"] for d in as_json["decisions"]} == {"gate:1"}


def test_the_export_covers_only_the_days_asked_for(acme, alice):
    run = start_run(publish_gated(acme), INPUT, started_by=alice)
    decide_gate(run.id, "gate", approve=True, actor="alice")
    yesterday = (datetime.now(UTC).date() - timedelta(days=1)).isoformat()

    response = signed_in(alice).get(f"/w/acme/inbox/audit/?from={yesterday}&to={yesterday}")

    assert response.content.decode().strip().count("\n") == 0  # the header only


def test_approvers_editors_and_strangers_cannot_export(acme, alice, bob):
    omar = make_member("omar", acme, Role.APPROVER)
    eddie = make_member("eddie", acme, Role.EDITOR)

    assert signed_in(omar).get("/w/acme/inbox/audit/").status_code == 403
    assert signed_in(eddie).get("/w/acme/inbox/audit/").status_code == 403
    assert signed_in(bob).get("/w/acme/inbox/audit/").status_code == 404


def test_a_gates_page_shows_its_whole_history_from_the_log(acme, alice):
    escalate = {"approvers": {"roles": ["owner"]}, "timeout_seconds": 600}
    workflow = publish_gated(acme, timeout_seconds=60, on_timeout="escalate", escalate=escalate)
    run = start_run(workflow, INPUT, started_by=make_member("ivan", acme, Role.EDITOR))
    from tests.approvals.test_projection import advance_to_now

    advance_to_now(run.id, 61)
    decide_gate(run.id, "gate", approve=True, actor="alice", reason="checked")

    page = signed_in(alice).get(f"/w/acme/inbox/{run.id}/gate/").content.decode()

    history = page[page.index('id="gate-history"') :]
    types = re.findall(r'data-type="(Approval\w+)"', history)
    assert types == ["ApprovalRequested", "ApprovalEscalated", "ApprovalGranted"]
    assert "escalated to owners" in history
    assert "approved by alice: checked" in history
