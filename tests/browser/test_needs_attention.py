"""A run that needs a person, in a real browser with real worker and scheduler processes:
a step fails for good because of a wrong setting; its run stops and says so; alice opens
it, fixes the setting in the Retry form and the run completes live. The timeline tells the
whole story in plain language."""

import json
import re
import time

import pytest
from playwright.sync_api import Page, Route, expect

from tests.browser.conftest import screenshot_path, sign_in
from tests.support.live import run_status, wait_for
from tests.support.workflows import publish
from vectorbea.engine import BudgetWarning
from vectorbea.eventlog import store
from vectorbea.runs.commands import start_run

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

WRONG = {"tool": "lookup_region", "args": {"region": "mars"}}
FIXED = {"tool": "lookup_region", "args": {"region": "eu"}}


def append(run_id, event) -> None:
    """Record a fact as its writer would (here: a budget warning), without a worker."""
    loaded = store.load(run_id)
    store.append(
        run_id, loaded.state, lambda s, now: [event], loaded.definition, now=loaded.clock.now()
    )


def customer_report(acme):
    """Lookup (fails for good unless its region is right) → Report."""
    definition = {
        "input_schema": {"type": "object"},
        "steps": [
            {"id": "lookup", "kind": "tool", "name": "Lookup customers", "config": WRONG},
            {"id": "report", "kind": "tool", "name": "Report", "config": {"tool": "record"}},
        ],
        "edges": [{"source": "lookup", "target": "report", "port": None}],
    }
    return publish(acme, definition, name="Customer report")


def test_a_person_fixes_the_settings_of_a_stopped_step_and_the_run_completes(
    page: Page, live, alice, acme
):
    workflow = customer_report(acme)
    run = start_run(workflow, {"customer": "Initech"}, started_by=alice)
    other = start_run(workflow, {"customer": "Globex"}, started_by=alice)
    sign_in(page, "alice")
    page.goto(f"/w/acme/runs/{run.id}/")
    panel = page.locator("#attention-panel")
    expect(panel).to_be_hidden()

    live.worker()
    live.scheduler()

    # The stop arrives over the websocket: no reload.
    expect(panel).to_be_visible(timeout=30_000)
    expect(page.locator("#run-status")).to_have_text("Needs attention")
    expect(panel.get_by_role("heading", level=2)).to_have_text(
        "Needs attention: step ‘Lookup customers’"
    )
    expect(panel).to_contain_text(
        "Step 'Lookup customers' failed after 1 attempt and will not be retried"
    )
    expect(panel).to_contain_text("Unknown region 'mars': use 'eu' or 'us'")
    expect(page.locator("#step-lookup .badge")).to_have_text("Needs attention")
    wait_for(lambda: run_status(other.id) == "needs_attention")

    # The list: its tab with a count, and the runs that wait.
    page.goto("/w/acme/runs/?status=attention")
    expect(page.locator("#run-tabs .tab-count")).to_have_text("2")
    expect(page.locator(f"#run-{run.id} .badge")).to_have_text("Needs attention")
    expect(page.get_by_role("button", name="Retry on newest version")).to_be_visible()
    page.screenshot(path=screenshot_path("review-needs-attention-list"))

    # The inbox says so too.
    page.goto("/w/acme/inbox/")
    section = page.locator("#inbox-attention")
    expect(section).to_contain_text("2 runs have stopped at a step")
    page.screenshot(path=screenshot_path("review-needs-attention-inbox"))
    section.get_by_role("link", name="Review them").click()
    expect(page).to_have_url(re.compile(r"/w/acme/runs/\?status=attention$"))

    page.goto(f"/w/acme/runs/{run.id}/")
    expect(page.locator("body")).not_to_have_class(re.compile("htmx-request"))
    # caret="initial": hiding the caret leaves style="" on every input, which htmx copies
    # onto the swapped-in form (an inline style the CSP refuses).
    page.screenshot(path=screenshot_path("review-needs-attention-run"), caret="initial")
    page.screenshot(
        path=screenshot_path("review-needs-attention-run-full"), full_page=True, caret="initial"
    )

    # A typo in the JSON is shown next to the form, and what was typed stays, also when a
    # live update redraws the panel meanwhile.
    panel.get_by_text("Edit the step’s settings").click()
    settings = panel.get_by_label("The step's settings (JSON)")
    assert json.loads(settings.input_value()) == WRONG  # prefilled with what it ran with
    settings.fill('{"tool": "lookup_region", "args": {"region": "eu"}')
    append(run.id, BudgetWarning("day", 80, "80% of today's budget is spent"))
    expect(page.locator('#timeline [data-type="BudgetWarning"]')).to_have_count(1)
    expect(settings).to_have_value('{"tool": "lookup_region", "args": {"region": "eu"}')
    panel.get_by_role("button", name="Retry step").click()
    expect(panel.get_by_role("alert")).to_contain_text("This is not valid JSON")
    page.screenshot(path=screenshot_path("review-needs-attention-bad-json"), caret="initial")
    settings = panel.get_by_label("The step's settings (JSON)")
    expect(settings).to_have_value('{"tool": "lookup_region", "args": {"region": "eu"}')

    settings.fill(json.dumps(FIXED, indent=2))
    panel.get_by_placeholder("Why? Shown in the timeline").first.fill("the region was a typo")

    def answer_after_the_live_update(route: Route) -> None:
        # The live update (the retry's events, the run's end) replaces the panel and the
        # form that asked before the answer arrives: the answer still says what happened.
        response = route.fetch()
        wait_for(lambda: run_status(run.id) == "completed")
        time.sleep(0.5)
        route.fulfill(response=response)

    page.route("**/attention/retry/", answer_after_the_live_update)
    panel.get_by_role("button", name="Retry step").click()

    expect(page.locator("#action-message")).to_have_text(
        "Retrying step 'Lookup customers' with the new settings."
    )
    expect(page.locator("#run-status")).to_have_attribute(
        "data-status", "completed", timeout=30_000
    )
    expect(panel).to_be_hidden()
    timeline = page.locator("#timeline")
    expect(timeline.locator('[data-type="RunCompleted"]')).to_have_count(1)
    story = [
        re.sub(r"\s+", " ", t).strip() for t in timeline.locator(".event-text").all_inner_texts()
    ]
    expected = [
        "Step 'Lookup customers' failed: permanent error such as bad configuration or a "
        "missing key — Unknown region 'mars': use 'eu' or 'us'",
        "Needs attention: Step 'Lookup customers' failed after 1 attempt and will not be "
        "retried (permanent error such as bad configuration or a missing key): Unknown "
        "region 'mars': use 'eu' or 'us'",
        "alice retried step 'Lookup customers' with new settings: the region was a typo",
        "Step 'Lookup customers' completed (attempt 2)",
        "Step 'Report' completed (attempt 1)",
        "Run completed",
    ]
    positions = [next(i for i, line in enumerate(story) if line == want) for want in expected]
    assert positions == sorted(positions), story
    page.screenshot(path=screenshot_path("review-needs-attention-completed"), full_page=True)
    assert run_status(other.id) == "needs_attention"  # the other run still waits
