"""The builder's agent step in Chromium: add one from the palette, pick a Python tool,
read its arguments' schema, mark it as needing approval, add an HTTP tool, save with no
problems; a bad HTTP tool's URL is a problem shown under the tool."""

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import screenshot_path, sign_in
from tests.browser.test_builder import drop_kind, open_panel, wait_saved
from tests.workers import test_agent_steps as agent
from tests.workers.test_agent_steps import THREE_TOOLS, agent_workflow, finished
from vectorbea.runs.commands import start_run
from vectorbea.workflows import commands
from vectorbea.workflows.models import Workflow

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# The agent worker tests' fixtures: the fake provider and the live worker processes.
fake = agent.fake
live = agent.live
EMPTY = {"input_schema": {"type": "object", "properties": {}}, "steps": [], "edges": []}


def snap(page: Page, name: str) -> None:
    page.screenshot(path=screenshot_path(name), caret="initial", full_page=True)


def test_an_agent_step_is_configured_with_a_picked_tool_behind_approval(page: Page, alice, acme):
    workflow = commands.create_workflow(acme, alice, "Refunds", EMPTY)
    page.set_viewport_size({"width": 1366, "height": 900})
    sign_in(page, "alice")
    page.goto(f"/w/acme/workflows/{workflow.id}/")
    expect(page.locator("#builder")).to_have_attribute("data-ready", "1")

    item = page.locator('.palette-item[data-kind="agent"]')
    expect(item).to_contain_text("Agent")
    item.scroll_into_view_if_needed()
    drop_kind(page, "agent", 200, 160)
    form = open_panel(page, "agent_1")
    form.get_by_label("Provider").fill("openai")
    form.get_by_label("Model").fill("gpt-4o-mini")
    form.get_by_label("System prompt").fill("You handle refunds.")
    form.get_by_label("Task").fill("Refund the broken order.")
    form.get_by_label("Max turns").fill("6")

    # The registered tools are listed; one's schema is shown on request.
    refund = form.locator('[data-tool="python"][data-name="refund"]')
    expect(refund).to_contain_text("Refund part of an order.")
    schema = refund.locator("details.agent-tool-schema")
    expect(schema.locator("pre")).to_be_hidden()
    schema.locator("summary").click()
    expect(schema.locator("pre")).to_contain_text('"amount"')
    refund.get_by_label("refund").check()
    refund.get_by_label("Needs approval").check()
    expect(refund).to_have_class("agent-tool is-picked")

    # An HTTP tool, its header holding a secret reference.
    form.get_by_role("button", name="Add HTTP tool").click()
    http = form.locator('[data-tool="http"]')
    http.get_by_label("Name").fill("weather")
    http.get_by_label("Description (for the model)").fill("Today's weather in a city.")
    http.get_by_label("URL").fill("ftp://weather.example.com/today")
    http.get_by_label("Parameters (JSON Schema of the arguments)").fill(
        '{"type": "object", "properties": {"city": {"type": "string"}}}'
    )
    wait_saved(page)
    # A URL that is not http(s): named in the problems and under the tool.
    expect(page.locator("#problem-list")).to_contain_text("needs an http or https URL")
    expect(http.locator(".agent-tool-error")).to_contain_text("needs an http or https URL")

    http.get_by_label("URL").fill("https://weather.example.com/today")
    wait_saved(page)
    expect(page.locator("#problems-ok")).to_be_visible()
    expect(page.locator("#problem-count")).to_have_text("0")
    refund.scroll_into_view_if_needed()
    snap(page, "agent-panel-1366")
    http.scroll_into_view_if_needed()
    snap(page, "agent-panel-http-1366")

    step = Workflow.objects.get(id=workflow.id).draft["steps"][0]
    assert step["kind"] == "agent"
    assert step["config"]["limits"] == {"max_turns": 6}
    assert step["config"]["tools"] == [
        {"type": "python", "name": "refund", "needs_approval": True},
        {
            "type": "http",
            "name": "weather",
            "description": "Today's weather in a city.",
            "method": "GET",
            "url": "https://weather.example.com/today",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    ]

    # After a reload the panel shows what was saved.
    page.reload()
    form = open_panel(page, "agent_1")
    refund = form.locator('[data-tool="python"][data-name="refund"]')
    expect(refund.get_by_label("refund")).to_be_checked()
    expect(refund.get_by_label("Needs approval")).to_be_checked()
    expect(form.locator('[data-tool="http"]').get_by_label("Name")).to_have_value("weather")

    page.set_viewport_size({"width": 390, "height": 844})
    form.locator('[data-tool="python"][data-name="refund"]').scroll_into_view_if_needed()
    snap(page, "agent-panel-390")
    form.locator('[data-tool="http"]').scroll_into_view_if_needed()
    snap(page, "agent-panel-http-390")


def test_an_agent_runs_step_detail_reads_as_a_conversation(page: Page, live, fake, alice, acme):
    fake.script(*THREE_TOOLS)
    run = start_run(agent_workflow(acme), {"order": 7})
    assert finished(run) == "completed"

    sign_in(page, "alice")
    for width, height in ((1366, 900), (390, 844)):
        page.set_viewport_size({"width": width, "height": height})
        page.goto(f"/w/acme/runs/{run.id}/step/?id=s0")
        conversation = page.locator(".agent-conversation")
        expect(conversation).to_contain_text("3 turns · 3 tool calls · 410 in · 35 out")
        expect(conversation.locator(".turn")).to_have_count(3)
        expect(conversation.locator(".turn").first).to_contain_text("Let me look.")
        expect(conversation.locator("[data-call] .tool-call-name")).to_have_text(
            ["lookup_order", "refund", "notify"]
        )
        box = conversation.bounding_box()
        assert box is not None and box["x"] + box["width"] <= width  # it fits the screen
        snap(page, f"agent-step-detail-{width}")
