"""In Chromium: the builder's problems in plain words, invalid JSON that is not saved, “Test
this step”, the run form's checks, and the tools and triggers pages at 1366 and 390 px."""

import re

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import screenshot_path, sign_in
from vectorbea.eventlog.models import Run
from vectorbea.triggers.models import Schedule
from vectorbea.workflows import commands
from vectorbea.workflows.models import Workflow

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

WIDE = {"width": 1366, "height": 860}
PHONE = {"width": 390, "height": 844}


def definition() -> dict:
    return {
        "input_schema": {
            "type": "object",
            "properties": {"ticket": {"type": "string"}},
            "x-order": ["ticket"],
        },
        "steps": [
            {
                "id": "read",
                "kind": "transform",
                "name": "Read",
                "config": {"output": {"text": "{{ input.ticket | upper }}"}},
            },
            {
                "id": "branch_1",
                "kind": "branch",
                "name": "Branch 1",
                "config": {"conditions": [{"port": "yes", "when": ""}], "default_port": "no"},
            },
        ],
        "edges": [{"source": "read", "target": "branch_1"}],
        "layout": {"read": {"x": 40, "y": 80}, "branch_1": {"x": 340, "y": 80}},
    }


def open_builder(page: Page, workflow: Workflow) -> None:
    page.set_viewport_size(WIDE)
    sign_in(page, "alice")
    page.goto(f"/w/acme/workflows/{workflow.id}/")
    expect(page.locator("#builder")).to_have_attribute("data-ready", "1")


def open_panel(page: Page, step_id: str):
    page.locator(f'[data-node="{step_id}"] .node-title').click()
    form = page.locator(f'.panel-form[data-step="{step_id}"]')
    expect(form).to_be_visible()
    return form


def snap(page: Page, name: str) -> None:
    page.screenshot(path=screenshot_path(name), caret="initial", full_page=True)


def content_fits(page: Page) -> None:
    """Nothing in the page's content reaches past the right edge of the screen (the top
    bar is the shell's: it collapses on its own)."""
    widest = page.evaluate(
        """() => Math.max(...[...document.querySelectorAll('#main *')]
             .map(e => e.getBoundingClientRect().right))"""
    )
    assert widest <= page.viewport_size["width"] + 1, f"content reaches {widest}px"


def test_problems_name_steps_and_fields_and_invalid_json_is_not_saved(page: Page, alice, acme):
    workflow = commands.create_workflow(acme, alice, "Plain words", definition())
    open_builder(page, workflow)

    problems = page.locator("#problem-list")
    expect(problems.locator(".problem")).to_have_count(1)
    expect(problems).to_contain_text("Branch 1 → Condition 1 → When")
    expect(problems).to_contain_text("Enter a condition")
    expect(page.locator("#problems")).not_to_contain_text("conditions[0]")
    expect(page.locator("#problems")).not_to_contain_text("non-empty")
    form = open_panel(page, "branch_1")
    expect(form.locator('[data-field="config.conditions[0].when"] .field-error')).to_have_text(
        "Enter a condition."
    )

    # Text that is not JSON in a JSON field: listed, and the header says it is not saved.
    form = open_panel(page, "read")
    form.get_by_label("Output").fill('{"text": ')
    expect(page.locator("#save-state")).to_have_text("Not saved: invalid JSON in Read → Output")
    expect(page.locator("#builder")).to_have_attribute("data-save-state", "bad")
    expect(problems.locator(".problem")).to_have_count(2)
    expect(problems).to_contain_text("Read → Output")
    expect(page.locator("#problem-count")).to_have_text("2")
    expect(page.locator('[data-node="read"].has-issues')).to_be_visible()
    snap(page, "builder-messages-invalid-json")
    page.get_by_role("button", name="Publish").click()
    expect(page.locator("#toast")).to_contain_text("Fix the invalid JSON first")
    workflow.refresh_from_db()
    assert workflow.draft["steps"][0]["config"]["output"] == {"text": "{{ input.ticket | upper }}"}

    form.get_by_label("Output").fill('{"text": "{{ input.ticket }}"}')
    expect(page.locator("#save-state")).to_have_text("Saved")
    expect(problems.locator(".problem")).to_have_count(1)
    workflow.refresh_from_db()
    assert workflow.draft["steps"][0]["config"]["output"] == {"text": "{{ input.ticket }}"}


def test_a_wrong_number_in_a_setting_says_what_to_enter(page: Page, alice, acme):
    draft = definition()
    draft["steps"][1]["config"]["conditions"][0]["when"] = "{{ true }}"
    workflow = commands.create_workflow(acme, alice, "Numbers", draft)
    open_builder(page, workflow)
    expect(page.locator("#problems-ok")).to_be_visible()

    form = open_panel(page, "read")
    form.get_by_text("Retries, timeout and failures").click()
    form.get_by_label("Step timeout (seconds)").fill("soon")

    problems = page.locator("#problem-list")
    expect(problems).to_contain_text("Read → Step timeout (seconds)")
    expect(problems).to_contain_text("Enter from 1 to 604800 seconds (7 days)")
    expect(page.locator("#problems")).not_to_contain_text("timeout_seconds")


def test_test_this_step_shows_the_output_for_sample_input_without_a_run(page: Page, alice, acme):
    workflow = commands.create_workflow(acme, alice, "Trial", definition())
    open_builder(page, workflow)

    form = open_panel(page, "read")
    form.get_by_text("Test this step", exact=True).first.click()
    sample = form.get_by_label("Sample run input (JSON)")
    expect(sample).to_have_value('{\n  "ticket": ""\n}')
    sample.fill('{"ticket": "printer on fire"}')
    form.get_by_role("button", name="Test this step").click()

    result = form.locator(".trial-result")
    expect(result).to_have_attribute("data-trial", "ok")
    expect(result).to_contain_text('"text": "PRINTER ON FIRE"')
    expect(result).to_contain_text("no run was started")
    snap(page, "builder-test-this-step")

    # A template that fails: the error, and what a run would do about it.
    form.get_by_label("Output").fill('{"text": "{{ input.ticket.nope.deeper }}"}')
    expect(page.locator("#save-state")).to_have_text("Saved")
    form.get_by_role("button", name="Test this step").click()
    expect(result).to_have_attribute("data-trial", "failed")
    expect(result).to_contain_text("a run would not retry it")

    # Sample input that is not a JSON object is refused in words.
    sample.fill("[1, 2]")
    form.get_by_role("button", name="Test this step").click()
    expect(result).to_have_attribute("data-trial", "refused")
    expect(result).to_contain_text("The sample input must be a JSON object")
    assert not Run.objects.exists()


def test_test_this_step_uses_sample_outputs_of_earlier_steps(page: Page, alice, acme):
    draft = definition()
    draft["steps"][1]["config"]["conditions"][0]["when"] = "{{ steps.read.output.urgent }}"
    workflow = commands.create_workflow(acme, alice, "Trial outputs", draft)
    open_builder(page, workflow)

    form = open_panel(page, "branch_1")
    form.get_by_text("Test this step", exact=True).first.click()
    outputs = form.get_by_label("Earlier steps’ results (JSON, by step id)")
    expect(outputs).to_have_value('{\n  "read": null\n}')
    outputs.fill('{"read": {"urgent": true}}')
    form.get_by_role("button", name="Test this step").click()

    result = form.locator(".trial-result")
    expect(result).to_have_attribute("data-trial", "ok")
    expect(result).to_contain_text("takes yes")


def wait_form(acme, alice) -> Workflow:
    draft = {
        "input_schema": {
            "type": "object",
            "properties": {
                "message": {"type": "string", "description": "What to remind about"},
                "wait_seconds": {"type": "number", "minimum": 0},
            },
            "required": ["message", "wait_seconds"],
            "x-order": ["message", "wait_seconds"],
        },
        "steps": [{"id": "done", "kind": "noop", "name": "Done"}],
        "edges": [],
    }
    workflow = commands.create_workflow(acme, alice, "Wait and remind", draft)
    commands.publish_draft(workflow, 0, alice)
    return workflow


@pytest.mark.parametrize("viewport", [WIDE, PHONE], ids=["1366", "390"])
def test_the_run_form_refuses_a_negative_wait_and_names_a_missing_field_once(
    page: Page, alice, acme, viewport
):
    workflow = wait_form(acme, alice)
    page.set_viewport_size(viewport)
    sign_in(page, "alice")
    page.goto(f"/w/acme/workflows/{workflow.id}/run/")
    wait = page.get_by_label("wait_seconds")
    expect(wait).to_have_attribute("type", "number")
    expect(wait).to_have_attribute("min", "0")

    wait.fill("-5")
    wait.press("Tab")  # a hint before submitting, from the same limits
    expect(page.locator("[data-live-hint]")).to_contain_text("0")
    page.get_by_role("button", name="Start run").click()

    expect(page.locator(".field-error", has_text="Enter 0 or more.")).to_have_count(1)
    expect(page.get_by_text("This field is required.")).to_have_count(1)
    content_fits(page)
    snap(page, f"run-form-errors-{viewport['width']}")
    assert not Run.objects.exists()

    page.get_by_label("message").fill("stand up")
    page.get_by_label("wait_seconds").fill("5")
    page.get_by_role("button", name="Start run").click()
    expect(page).to_have_url(re.compile(r"/w/acme/runs/[0-9a-f-]{36}/$"))


@pytest.mark.parametrize("viewport", [WIDE, PHONE], ids=["1366", "390"])
def test_the_tools_and_triggers_pages_fit_the_screen(page: Page, alice, acme, viewport):
    workflow = wait_form(acme, alice)
    Schedule.objects.create(workflow=workflow, cron="0 9 * * 1-5", timezone="Europe/Berlin")
    page.set_viewport_size(viewport)
    sign_in(page, "alice")

    page.goto("/w/acme/triggers/")
    expect(page.get_by_role("heading", name="Triggers", exact=True)).to_be_visible()
    expect(page.locator("#all-schedules")).to_contain_text("Wait and remind")
    expect(page.locator("#all-schedules")).to_contain_text("0 9 * * 1-5")
    content_fits(page)
    snap(page, f"workspace-triggers-{viewport['width']}")

    page.goto("/w/acme/tools/")
    expect(page.get_by_role("heading", name="Python tools", exact=True)).to_be_visible()
    content_fits(page)
    snap(page, f"tools-{viewport['width']}")


def test_the_nav_leads_to_the_triggers_page(page: Page, alice, acme):
    page.set_viewport_size(WIDE)
    sign_in(page, "alice")
    page.goto("/w/acme/workflows/")

    page.get_by_role("navigation", name="Workspace").get_by_role("link", name="Triggers").click()

    expect(page).to_have_url(re.compile(r"/w/acme/triggers/$"))
    expect(page.get_by_text("No schedules.")).to_be_visible()
