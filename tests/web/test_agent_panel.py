"""The builder's agent step: its panel lists the registered Python tools with their
schemas to pick from and HTTP tools to describe, each with "needs approval", its limits
beside the step's timeout; saving a draft names each bad tool or schema in its problems."""

import json

import pytest
from django.test import Client
from django.urls import reverse

import tests.support.tools  # noqa: F401  (registers lookup_order, refund, notify)
from vectorbea.keys import vault
from vectorbea.workflows import commands
from vectorbea.workflows.panel import palette

AGENT = {
    "provider": "openai",
    "model": "gpt-4o-mini",
    "system": "You help customers.",
    "task": "Refund order {{ input.order }}.",
    "tools": [
        {
            "type": "http",
            "name": "weather",
            "method": "POST",
            "url": "https://api.example.com/w",
            "headers": {"Authorization": "Bearer {{ secrets.WEATHER }}"},
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            "approval": {"required_approvals": 2},
        },
        {"type": "python", "name": "refund", "needs_approval": True},
    ],
    "limits": {"max_turns": 6, "max_cost_usd": 0.5},
}


def definition(config=AGENT):
    return {
        "input_schema": {"type": "object", "properties": {"order": {"type": "integer"}}},
        "steps": [
            {
                "id": "agent",
                "kind": "agent",
                "name": "Support agent",
                "config": config,
                "timeout_seconds": 120,
            }
        ],
        "edges": [],
    }


@pytest.fixture
def workflow(acme, alice):
    vault.set_secret(acme, "WEATHER", "wx-secret-value-0123456789", alice)
    return commands.create_workflow(acme, alice, "Support", definition())


@pytest.fixture
def as_alice(alice) -> Client:
    client = Client()
    client.force_login(alice)
    return client


def url(name, workflow):
    return reverse(name, args=[workflow.workspace.slug, workflow.id])


def panel(client, workflow, draft):
    response = client.post(
        url("workflow-panel", workflow), {"definition": json.dumps(draft), "step": "agent"}
    )
    assert response.status_code == 200
    return response.content.decode()


def save(client, workflow, draft):
    response = client.post(
        url("workflow-draft", workflow),
        json.dumps({"definition": draft, "revision": workflow.draft_revision}),
        content_type="application/json",
    )
    assert response.status_code == 200
    return response.json()["issues"]


def test_the_palette_offers_an_agent_step(db):
    agent = next(item for item in palette() if item["name"] == "agent")
    assert agent["label"] == "Agent"
    assert "tools" in agent["description"]


def test_the_panel_lists_python_tools_with_their_schemas_and_the_steps_http_tools(
    as_alice, workflow
):
    content = panel(as_alice, workflow, definition())

    # Every registered tool is offered with its description and its arguments' schema.
    for name in ("lookup_order", "refund", "notify"):
        assert f'data-name="{name}"' in content
    assert "Find an order by its number." in content
    assert "&quot;order_id&quot;" in content and "&quot;amount&quot;" in content
    # The picked one is ticked, with its approval, at its place in config.tools.
    refund = content.split('data-name="refund"')[1].split("</li>")[0]
    assert 'data-field="config.tools[1]"' in refund
    assert 'data-tool-key="picked" checked' in refund
    assert 'data-tool-key="needs_approval" checked' in refund
    notify = content.split('data-name="notify"')[1].split("</li>")[0]
    assert 'data-tool-key="picked" checked' not in notify
    # The HTTP tool: its settings in their controls, the keys without one kept aside.
    assert 'value="https://api.example.com/w"' in content
    assert '<option value="POST" selected>' in content
    assert "Bearer {{ secrets.WEATHER }}" in content
    assert "wx-secret-value" not in content
    assert "&quot;required_approvals&quot;: 2" in content  # data-extra
    assert 'data-field="config.tools[0]"' in content
    # Limits, with the engine's defaults as placeholders, and the step's timeout among them.
    assert 'data-path="config.limits.max_turns"' in content and 'value="6"' in content
    assert 'data-path="config.limits.max_tool_calls"' in content and 'placeholder="20"' in content
    limits = content.split('id="limits-title"')[1].split("</section>")[0]
    assert 'data-path="timeout_seconds"' in limits and 'value="120"' in limits
    assert content.count('data-path="timeout_seconds"') == 1
    assert 'data-path="config.task"' in content and 'data-path="config.output_schema"' in content
    assert 'data-path="config.tools"' in content and 'data-type="tools"' in content


def test_an_agent_step_with_no_tools_yet_says_how_to_add_them(as_alice, workflow):
    content = panel(as_alice, workflow, definition({**AGENT, "tools": []}))
    assert "None yet." in content
    assert "Add HTTP tool" in content


def test_a_good_agent_step_saves_with_no_problems(as_alice, workflow):
    assert save(as_alice, workflow, definition()) == []
    workflow.refresh_from_db()
    assert workflow.draft["steps"][0]["config"]["tools"][1] == {
        "type": "python",
        "name": "refund",
        "needs_approval": True,
    }


@pytest.mark.parametrize(
    "tool, path, words",
    [
        (
            {"type": "python", "name": "teleport"},
            "config.tools[0]",
            "No Python tool named 'teleport' is registered",
        ),
        (
            {"type": "http", "name": "w", "url": "ftp://example.com"},
            "config.tools[0]",
            "needs an http or https URL",
        ),
        (
            {"type": "http", "name": "w", "url": "https://x.test", "parameters": {"type": "nope"}},
            "config.tools[0]",
            "not a valid JSON Schema",
        ),
        ({"type": "http", "name": "a b", "url": "https://x.test"}, "config.tools[0].name", ""),
    ],
)
def test_a_bad_tool_is_a_problem_of_its_step_and_tool(as_alice, workflow, tool, path, words):
    issues = save(as_alice, workflow, definition({**AGENT, "tools": [tool]}))
    assert [i["path"] for i in issues] == [f"steps[0].{path}"]
    assert issues[0]["step_id"] == "agent"
    assert words in issues[0]["message"]


def test_an_output_schema_that_is_not_a_json_schema_is_a_problem(as_alice, workflow):
    issues = save(as_alice, workflow, definition({**AGENT, "output_schema": {"type": "objekt"}}))
    assert [i["path"] for i in issues] == ["steps[0].config.output_schema"]
    assert "output schema is not a valid JSON Schema" in issues[0]["message"]
