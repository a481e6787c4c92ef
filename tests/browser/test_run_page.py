"""The run page in a real browser at a laptop's and a phone's width: the run's input and
final output at the top, copied with one click; Re-run opens the run form filled with the
input, and the new run and its origin link to each other; an ended run counts nothing down."""

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.approvals.support import gated, publish_gated
from tests.browser.conftest import sign_in
from tests.support.workflows import chain, publish, record
from vectorbea.engine import StepCompleted
from vectorbea.eventlog.models import Run
from vectorbea.runs.commands import cancel_run, decide_gate, start_run

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SHOTS = Path("/tmp/shots-endstates")
WIDTHS = {"laptop": {"width": 1366, "height": 900}, "phone": {"width": 390, "height": 844}}


@pytest.fixture(params=list(WIDTHS))
def sized(request, browser: Browser, live_server_url: str) -> Iterator[tuple[str, Page]]:
    """A page at 1366 or 390 px wide that may use the clipboard; fails the test on any
    console error."""
    context = browser.new_context(base_url=live_server_url, viewport=WIDTHS[request.param])
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server_url)
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    try:
        yield request.param, page
        assert problems == [], f"Browser console errors: {problems}"
    finally:
        context.close()


def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=SHOTS / f"{name}.png", full_page=True)


def quotes(acme):
    definition = chain(2)
    definition["steps"][0]["name"] = "Draft"
    definition["steps"][1]["name"] = "Polish"
    definition["input_schema"] = {
        "type": "object",
        "properties": {"customer": {"type": "string"}, "seats": {"type": "integer"}},
        "required": ["customer"],
    }
    return publish(acme, definition, name="Quotes")


def test_the_run_page_shows_input_and_output_copies_them_and_reruns_through_the_form(
    sized, alice, acme
):
    width, page = sized
    run = start_run(quotes(acme), {"customer": "Initech", "seats": 12}, started_by=alice)
    record(run.id, StepCompleted("s0", 1, {"draft": "Dear Initech"}))
    output = {"quote": "12 seats at €40", "lines": [1, 2]}
    record(run.id, StepCompleted("s1", 1, output))
    sign_in(page, "alice")
    page.goto(f"/w/acme/runs/{run.id}/")

    expect(page.locator("#run-status")).to_have_text("Completed")
    run_input = page.locator("#run-input")
    expect(run_input).to_be_visible()
    expect(run_input).to_have_text(json.dumps({"customer": "Initech", "seats": 12}, indent=2))
    expect(page.locator("#run-output")).to_be_visible()
    assert json.loads(page.locator("#run-output").inner_text()) == {"s1": output}
    expect(page.locator("#run-cost dt")).to_have_text("Cost")
    box = page.locator("#run-io").bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= WIDTHS[width]["width"]
    shot(page, f"run-page-completed-{width}")

    page.get_by_role("button", name="Copy the output").click()
    expect(page.get_by_role("button", name="Copy the output")).to_have_text("Copied")
    copied = page.evaluate("navigator.clipboard.readText()")
    assert json.loads(copied) == {"s1": output}

    page.locator("#run-input-block > summary").click()  # collapse
    expect(run_input).to_be_hidden()

    page.locator("#rerun").click()
    expect(page.get_by_role("heading", name="Start a run")).to_be_visible()
    expect(page.locator("#rerun-note")).to_contain_text(f"run {str(run.id)[:8]}")
    expect(page.locator('input[value="Initech"]')).to_be_visible()
    assert Run.objects.count() == 1  # opening the form started nothing
    page.locator('input[value="Initech"]').fill("Initrode")
    shot(page, f"rerun-form-{width}")
    page.get_by_role("button", name="Start run").click()

    expect(page.locator("#rerun-of")).to_contain_text(f"Re-run of run {str(run.id)[:8]}")
    new = Run.objects.exclude(pk=run.pk).get()
    expect(page.locator("#run-input")).to_contain_text('"customer": "Initrode"')
    expect(page.locator("#run-input")).to_contain_text('"seats": 12')
    shot(page, f"rerun-page-{width}")
    page.locator("#rerun-of a").click()
    expect(page.locator("#reruns")).to_contain_text(f"Re-run as run {str(new.id)[:8]}")


def test_a_cancelled_run_shows_steps_not_run_and_no_countdown(sized, alice, acme):
    width, page = sized
    definition = chain(1)
    definition["steps"].append(
        {"id": "wait", "kind": "delay", "name": "Cool off", "config": {"seconds": 600}}
    )
    definition["steps"].append({"id": "send", "kind": "noop", "name": "Send", "config": {}})
    definition["edges"] += [
        {"source": "s0", "target": "wait", "port": None},
        {"source": "wait", "target": "send", "port": None},
    ]
    run = start_run(publish(acme, definition, name="Cooling"), {}, started_by=alice)
    record(run.id, StepCompleted("s0", 1, {"ok": True}))
    sign_in(page, "alice")
    page.goto(f"/w/acme/runs/{run.id}/")
    expect(page.locator("#now-on")).to_contain_text("Cool off")
    expect(page.locator(".countdown").first).to_contain_text("in 9 min")

    cancel_run(run.id, actor="alice", reason="Not needed")  # arrives live

    expect(page.locator("#run-status")).to_have_text("Cancelled")
    expect(page.locator("#now-on")).to_have_count(0)
    expect(page.locator("#step-wait .badge")).to_have_text("Cancelled")
    expect(page.locator("#step-send .badge")).to_have_text("Not run")
    expect(page.locator("#run-cost dt")).to_have_text("Cost")
    expect(page.locator("#run-io")).to_contain_text("No output: the run was cancelled.")
    page.wait_for_timeout(1200)  # a tick of the countdown's clock
    for countdown in page.locator(".countdown").all():
        expect(countdown).to_have_text("")
    shot(page, f"run-page-cancelled-{width}")


def test_a_decided_gate_stops_counting_down_while_the_run_goes_on(sized, alice, acme):
    width, page = sized
    definition = gated(denied_edge=True, timeout_seconds=3600)
    run = start_run(publish_gated(acme, definition), {"amount": 5, "customer": "Ada"})
    sign_in(page, "alice")
    page.goto(f"/w/acme/runs/{run.id}/")
    countdown = page.locator('[data-type="ApprovalRequested"] .countdown')
    expect(countdown).to_contain_text("in 59 min")

    decide_gate(run.id, "gate", approve=False, actor="bob", reason="no")  # arrives live

    expect(page.locator("#step-sorry")).to_have_attribute("data-status", "running")
    expect(page.locator("#run-status")).not_to_have_text("Denied")  # it had a denied path
    expect(countdown).to_have_text("")
    shot(page, f"run-page-decided-gate-{width}")
