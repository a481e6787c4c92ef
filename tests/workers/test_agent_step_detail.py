"""An agent step's detail page after a real agent run (worker processes, the scripted fake
provider): each turn with its words, its tool calls with their arguments and results, the
approval a call waited on and who decided it, and the tokens and cost of each turn and in
all, read from the run's own state."""

import json
import re
import time

from django.test import Client
from django.urls import reverse

from tests.support.fake_llm import calls, ok
from tests.support.live import wait_for
from tests.workers import test_agent_steps as agent
from tests.workers.test_agent_steps import agent_workflow, finished, gated
from vectorbea.runs.commands import decide_gate, start_run

# The agent worker tests' fixtures: the fake provider and the live worker processes.
fake = agent.fake
live = agent.live


def step_page(client, run):
    response = client.get(
        reverse("run-step", args=[run.workflow.workspace.slug, run.id]), {"id": "s0"}
    )
    assert response.status_code == 200
    return response.content.decode()


def text_of(html):
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_the_step_detail_shows_an_agents_turns_calls_approvals_and_usage(live, acme, alice, fake):
    tools = [
        {"type": "python", "name": "lookup_order"},
        {"type": "python", "name": "refund", "needs_approval": True},
    ]
    fake.script(
        calls(("lookup_order", {"order_id": 7}), text="Let me look.", usage=(100, 20)),
        calls(("refund", {"order_id": 7, "amount": 40}), usage=(200, 30)),
        ok("Refunded 10 of order 7.", usage=(300, 10)),
    )
    run = start_run(agent_workflow(acme, tools=tools), {"order": 7})
    client = Client()
    client.force_login(alice)

    wait_for(lambda: gated(run.id), timeout=60)
    time.sleep(0.3)
    waiting = text_of(step_page(client, run))
    assert "Turn 2" in waiting and "waiting for approval" in waiting
    assert "Approval asked; nobody has decided yet." in waiting

    edited = {"arguments": json.dumps({"order_id": 7, "amount": 10})}
    decide_gate(run.id, "s0", approve=True, actor="alice", reason="Only 10", fields=edited)
    assert finished(run) == "completed"

    html = step_page(client, run)
    page = text_of(html)
    assert "Conversation" in page
    assert "3 turns · 2 tool calls · 600 in · 60 out" in page
    # Each attempt's row counts what its turns used (the decided gate began attempt 2).
    table = html.split('class="table attempts"')[1].split("</table>")[0]
    rows = [text_of(row) for row in table.split("<tr")[2:]]
    assert [("300/50" in rows[0]), ("300/10" in rows[1])] == [True, True]
    # Turn by turn, in order: words, calls with their arguments, results, usage.
    turns = re.findall(r'data-turn="(\d+)"', html)
    assert turns == ["1", "2", "3"]
    first = text_of(html.split('data-turn="1"')[1].split('data-turn="2"')[0])
    assert "Let me look." in first and "100 in · 20 out" in first
    assert "lookup_order" in first and "returned" in first
    assert "&quot;order_id&quot;: 7" in html.split('data-turn="1"')[1].split('data-turn="2"')[0]
    assert "delivered" in first  # the tool's result
    second = text_of(html.split('data-turn="2"')[1].split('data-turn="3"')[0])
    assert "200 in · 30 out" in second
    assert "Approved by alice: “Only 10”" in second
    assert "Ran with the arguments the approver gave" in second
    assert '"amount": 10' in second.replace("&quot;", '"')
    assert "refunded" in second
    third = text_of(html.split('data-turn="3"')[1])
    assert "Refunded 10 of order 7." in third and "300 in · 10 out" in third
