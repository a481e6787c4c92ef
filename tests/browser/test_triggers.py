"""The triggers page in Chromium: make a webhook, copy its secret from the one-time reveal,
deliver a signed event to the real server, and add a schedule (after a typo in its cron)."""

import json
import time
import urllib.request

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import screenshot_path, sign_in
from tests.support.workflows import chain, publish
from tests.triggers.conftest import TICKET_SCHEMA
from vectorbea.eventlog.models import Run
from vectorbea.triggers import webhooks

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def workflow(acme):
    return publish(acme, {**chain(1), "input_schema": TICKET_SCHEMA}, name="Triage a ticket")


def send_signed(url: str, secret: str, body: dict, event_id: str) -> tuple[int, dict]:
    raw = json.dumps(body).encode()
    ts = str(int(time.time()))
    request = urllib.request.Request(  # noqa: S310  (the test's own server)
        url,
        data=raw,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "Vectorbea-Timestamp": ts,
            "Vectorbea-Event-Id": event_id,
            "Vectorbea-Signature": webhooks.signature(secret, ts, event_id, raw),
        },
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        return response.status, json.loads(response.read())


def test_an_owner_sets_up_a_webhook_and_a_schedule(page: Page, alice, workflow):
    sign_in(page, "alice")
    page.goto(f"/w/acme/workflows/{workflow.id}/")
    page.get_by_role("toolbar", name="Canvas").get_by_role("link", name="Triggers").click()
    expect(page.get_by_role("heading", name="Triggers", exact=True)).to_be_visible()

    page.get_by_role("button", name="New webhook").click()
    expect(page.get_by_text("is not shown again")).to_be_visible()
    url = page.locator("#new-webhook-url").inner_text()
    secret = page.locator("#new-webhook-secret").inner_text()
    expect(page.locator("#new-webhook-curl")).to_contain_text("openssl dgst -sha256 -hmac")
    page.screenshot(path=screenshot_path("triggers-secret-reveal"), full_page=True)

    status, answer = send_signed(url, secret, {"ticket": "Printer on fire"}, "evt-browser-1")
    assert status == 202
    assert Run.objects.filter(pk=answer["run_id"]).exists()

    page.get_by_label("When (cron expression)").fill("0 9 * * 1-5 *extra")
    page.get_by_label("Time zone").fill("Europe/Paris")
    page.get_by_label("Run input (JSON object)").fill('{"ticket": "Standup notes"}')
    page.get_by_role("button", name="Add schedule").click()
    expect(page.get_by_text("is not a cron expression")).to_be_visible()

    page.get_by_label("When (cron expression)").fill("0 9 * * 1-5")
    page.get_by_role("button", name="Add schedule").click()
    expect(page.get_by_text("Saved the schedule “0 9 * * 1-5” (Europe/Paris)")).to_be_visible()
    expect(page.locator(".fire-times li")).to_have_count(5)
    expect(page.locator(".fire-times li").first).to_contain_text("09:00:00 CE")
    expect(page.get_by_text("evt-browser-1")).to_be_visible()
    # The secret was shown once; the page now holds only the URL.
    assert secret not in page.content()
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=screenshot_path("triggers-page"), full_page=True)


@pytest.mark.parametrize("width", [1366, 390])
def test_the_schedule_form_says_the_next_runs_as_the_expression_is_typed(
    page: Page, alice, workflow, width
):
    page.set_viewport_size({"width": width, "height": 900})
    sign_in(page, "alice")
    page.goto(f"/w/acme/workflows/{workflow.id}/triggers/")
    preview = page.locator("#schedule-preview")
    expect(preview).to_contain_text("Type a cron expression to see when it would run.")

    page.get_by_label("When (cron expression)").fill("* * * * * *")
    expect(preview).to_contain_text(
        "Runs may be at most once a minute on this installation, and “* * * * * *” starts "
        "them 1 second apart."
    )
    page.get_by_label("When (cron expression)").fill("* * * * * * *")
    expect(preview).to_contain_text("A schedule has 5 fields (minute hour day month weekday)")

    page.get_by_label("When (cron expression)").fill("0 9 * * 1-5")
    page.get_by_label("Time zone").fill("Europe/Paris")
    expect(preview.locator("li")).to_have_count(5)
    expect(preview.locator("li").first).to_contain_text("09:00:00 CE")
    preview.scroll_into_view_if_needed()
    page.screenshot(path=screenshot_path(f"triggers-schedule-preview-{width}"), full_page=True)
