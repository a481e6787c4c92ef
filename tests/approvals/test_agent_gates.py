"""An agent's tool call waiting for a person, decided from the inbox like any gate: the
proposed call is shown, the approver may edit its arguments (checked against the tool's
schema), and the agent goes on in a new attempt once it is decided."""

import json

import pytest
from django.test import Client

import tests.support.tools  # noqa: F401  (registers the Python tools the agent offers)
from tests.conftest import make_member
from tests.support.live import event_rows
from tests.support.workflows import chain, publish, record
from vectorbea.accounts.models import Role
from vectorbea.approvals.models import Gate
from vectorbea.engine import AgentTurnCompleted
from vectorbea.engine.agent import AskPerson, tool_gate_key
from vectorbea.runs.commands import start_run
from vectorbea.steps.agent import tool_gate

TOOLS = [{"type": "python", "name": "refund", "needs_approval": True}]
CALL = {"id": "c1", "name": "refund", "arguments": {"order_id": 7, "amount": 40}}


@pytest.fixture
def omar(acme):
    return make_member("omar", acme, Role.APPROVER)


def waiting_agent(acme, alice):
    """A run whose agent asked to call `refund` and waits for a person (as a worker records
    it: the model's turn, then the gate)."""
    config = {"provider": "openai", "model": "m", "task": "Refund order 7", "tools": TOOLS}
    run = start_run(publish(acme, chain(1, "agent", config)), {}, started_by=alice)
    turn = AgentTurnCompleted("s0", 1, 1, {"role": "assistant", "text": "", "tool_calls": [CALL]})
    ask = AskPerson("c1", "refund", CALL["arguments"], tool_gate_key("s0", 1, "c1"))
    ctx = type("Ctx", (), {"step_id": "s0", "attempt": 1, "run_input": {}, "outputs": {}})
    record(run.id, turn, tool_gate(ctx, config, ask))
    return run


def post(client, run, **data):
    gate = Gate.objects.get(run=run, step_id="s0")
    return client.post(f"/w/acme/inbox/{run.id}/s0/decide/", {"gate": gate.key, **data})


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_the_inbox_shows_the_proposed_call_with_its_arguments_to_edit(acme, alice, omar):
    run = waiting_agent(acme, alice)
    page = signed_in(omar).get(f"/w/acme/inbox/{run.id}/s0/").content.decode()
    assert "Run the tool refund?" in page
    assert "field-arguments" in page and "&quot;amount&quot;: 40" in page


def test_edited_arguments_that_do_not_fit_the_tool_are_refused_with_nothing_appended(
    acme, alice, omar
):
    run = waiting_agent(acme, alice)
    before = len(event_rows(run.id))
    bad = json.dumps({"order_id": "seven", "amount": 40})
    response = post(signed_in(omar), run, decision="approve", **{"field-arguments": bad})
    assert response.status_code == 400
    assert "is not of type 'integer'" in response.content.decode().replace("&#x27;", "'")
    assert len(event_rows(run.id)) == before


def test_an_edited_approval_is_recorded_and_the_agent_goes_on_in_a_new_attempt(acme, alice, omar):
    run = waiting_agent(acme, alice)
    edited = json.dumps({"order_id": 7, "amount": 10})
    response = post(signed_in(omar), run, decision="approve", **{"field-arguments": edited})
    assert response.status_code == 302
    rows = event_rows(run.id)
    (granted,) = [p for _, t, p in rows if t == "ApprovalGranted"]
    assert granted["fields"] == {"arguments": {"order_id": 7, "amount": 10}}
    assert granted["gate"] == tool_gate_key("s0", 1, "c1")
    assert [p["attempt"] for _, t, p in rows if t == "StepStarted"] == [1, 2]
    assert Gate.objects.get(run=run, step_id="s0").status == "approved"
