"""An approver's day in a real browser: the inbox count rises live when a run reaches a
gate, they approve one run (it goes on) and deny another (it fails, with the reason)."""

import re

import pytest
from playwright.sync_api import Page, expect

from tests.approvals.support import gated
from tests.browser.conftest import screenshot_path, sign_in
from tests.conftest import make_member
from tests.support.live import run_status, wait_for
from tests.support.workflows import publish
from vectorbea.accounts.models import Role
from vectorbea.runs.commands import start_run

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def refund_workflow(acme):
    """prepare (a worker step) → approval gate → pay: the gate is reached by a worker."""
    definition = gated()
    definition["steps"].insert(0, {"id": "prepare", "kind": "tool", "config": {"tool": "record"}})
    definition["edges"].insert(0, {"source": "prepare", "target": "gate", "port": None})
    definition["steps"][-1] = {"id": "pay", "kind": "tool", "config": {"tool": "record"}}
    return publish(acme, definition, name="Refunds")


def test_an_approver_approves_one_run_and_denies_another_from_the_inbox(
    page: Page, live, acme, alice
):
    make_member("omar", acme, Role.APPROVER)
    workflow = refund_workflow(acme)
    live.worker()
    sign_in(page, "omar")
    expect(page).to_have_url(re.compile(r"/w/acme/"))
    count = page.locator("#inbox-count")
    expect(count).to_be_hidden()

    first = start_run(workflow, {"amount": 40, "customer": "Ada"}, started_by=alice)

    expect(count).to_have_text("1")  # pushed over the socket: no reload
    expect(count).to_be_visible()
    page.get_by_role("navigation", name="Workspace").get_by_role("link", name="Inbox").click()
    expect(page).to_have_url(re.compile(r"/w/acme/inbox/$"))
    item = page.locator(f'.gate[data-run="{first.id}"]')
    expect(item.get_by_role("heading", name="Refund 40 EUR to Ada?")).to_be_visible()
    expect(item).to_contain_text("Dear Ada")  # the payload the approver is asked about
    item.get_by_label("Reason for approving").fill("Order checked, within policy")
    item.get_by_role("button", name="Approve").click()

    expect(item).to_have_attribute("data-status", "approved")
    expect(item).to_contain_text("Approved by omar")
    expect(count).to_have_text("0")
    expect(count).to_be_hidden()
    wait_for(lambda: run_status(first.id) == "completed")
    page.screenshot(path=screenshot_path("inbox-approved"), full_page=True)
    item.get_by_role("link", name=str(first.id)[:8]).click()
    timeline = page.locator("#timeline")
    expect(timeline).to_contain_text("approved by omar: Order checked, within policy")
    expect(page.locator("#run-status")).to_have_attribute("data-status", "completed")

    page.goto("/w/acme/inbox/")
    second = start_run(workflow, {"amount": 9000, "customer": "Bo"}, started_by=alice)
    expect(count).to_have_text("1")
    expect(page.get_by_text("New approvals are waiting for you")).to_be_visible()
    page.get_by_text("New approvals are waiting for you").click()
    item = page.locator(f'.gate[data-run="{second.id}"]')
    item.get_by_label("Reason for denying").fill("Too much for a refund")
    item.get_by_role("button", name="Deny").click()

    expect(item).to_have_attribute("data-status", "denied")
    expect(item).to_contain_text("Too much for a refund")
    wait_for(lambda: run_status(second.id) == "denied")
    page.goto(f"/w/acme/runs/{second.id}/")
    expect(page.locator("#run-status")).to_have_attribute("data-status", "denied")
    expect(page.locator("#run-denial")).to_contain_text(
        "Denied by omar at ‘Refund’, reason: Too much for a refund"
    )
    expect(page.locator("#timeline")).to_contain_text(
        "Approval 'Refund' was denied by omar: Too much for a refund"
    )


def test_a_deny_without_a_reason_is_explained_and_decides_nothing(page: Page, acme, alice):
    make_member("omar", acme, Role.APPROVER)
    run = start_run(publish(acme, gated(), name="Refunds"), {"amount": 1, "customer": "Cy"})
    sign_in(page, "omar")
    page.goto(f"/w/acme/inbox/{run.id}/gate/")
    item = page.locator(".gate")
    deny = item.locator("form.gate-deny")
    deny.get_by_label("Reason for denying").evaluate("el => el.removeAttribute('required')")

    deny.get_by_role("button", name="Deny").click()

    expect(item.locator(".field-error")).to_contain_text("Say why you deny it")
    expect(item).to_have_attribute("data-status", "waiting")
    assert run_status(run.id) == "waiting"
