"""The inbox by role, in a browser at 1366 and 390 px: an owner whose "Waiting for you" is
empty is told gates wait for others, sees who can decide them and gives one to someone
else; an approver is offered only what an approver can do."""

import re

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.approvals.support import publish_gated
from tests.browser.conftest import screenshot_path, sign_in
from tests.conftest import make_member
from tests.support.live import event_types
from vectorbea.accounts.models import Role
from vectorbea.runs.commands import start_run

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ESCALATE = {"approvers": {"users": ["carol"]}, "timeout_seconds": 3600, "on_timeout": "deny"}
WIDTHS = (1366, 390)


def at_width(browser: Browser, live_server_url: str, width: int) -> Page:
    context = browser.new_context(
        base_url=live_server_url, viewport={"width": width, "height": 900}
    )
    return context.new_page()


# The page's own content (not the navigation bar, which collapses by its own rule).
WIDER_THAN_THE_PAGE = """() => {
  const width = document.documentElement.clientWidth;
  return [...document.querySelectorAll("main *")]
    .filter((el) => el.getBoundingClientRect().right > width + 1)
    .filter((el) => el.parentElement.getBoundingClientRect().right <= width + 1)
    .map((el) => el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") + "." + el.className);
}"""


def no_horizontal_scroll(page: Page) -> None:
    assert page.evaluate(WIDER_THAN_THE_PAGE) == [], "the inbox is wider than the screen"


@pytest.mark.parametrize("width", WIDTHS)
def test_an_owner_sees_gates_waiting_for_others_and_reassigns_one(
    browser: Browser, live_server_url: str, acme, alice, width: int
):
    make_member("omar", acme, Role.APPROVER)
    make_member("carol", acme, Role.EDITOR)
    workflow = publish_gated(
        acme,
        approvers={"roles": ["approver"]},
        timeout_seconds=600,
        on_timeout="escalate",
        escalate=ESCALATE,
    )
    run = start_run(workflow, {"amount": 40, "customer": "Ada"}, started_by=alice)
    page = at_width(browser, live_server_url, width)
    try:
        sign_in(page, "alice")
        expect(page).to_have_url(re.compile(r"/w/acme/"))
        page.goto("/w/acme/inbox/")

        expect(page.get_by_text("Nothing is waiting for your decision")).to_be_visible()
        expect(page.get_by_text("1 approval waits for other people")).to_be_visible()
        others = page.locator("#inbox-others")
        expect(others.get_by_role("heading", name=re.compile("Waiting for others"))).to_be_visible()
        item = others.locator(f'[data-run="{run.id}"]')
        expect(item).to_contain_text("Can decide: omar")
        expect(item.get_by_role("button", name="Escalate now")).to_be_visible()
        no_horizontal_scroll(page)
        page.screenshot(path=screenshot_path(f"inbox-others-{width}"), full_page=True)

        item.get_by_text("Reassign…").click()
        item.get_by_label("carol").check()
        item.get_by_label("Approvers").uncheck()
        item.get_by_label(re.compile("^Reason")).fill("omar is on leave")
        no_horizontal_scroll(page)
        page.screenshot(path=screenshot_path(f"inbox-reassign-{width}"), full_page=True)
        item.get_by_role("button", name="Give it to them").click()

        expect(page.get_by_text("now waits for carol")).to_be_visible()
        assert "ApprovalReassigned" in event_types(run.id)
        expect(page.locator("#inbox-others")).to_contain_text("Can decide: carol")

        item.get_by_role("link", name="Refund 40 EUR to Ada?").click()
        expect(page.get_by_role("heading", name="Who decides")).to_be_visible()
        expect(page.locator("#gate-history")).to_contain_text(
            "reassigned by alice to carol: omar is on leave"
        )
        no_horizontal_scroll(page)
        page.screenshot(path=screenshot_path(f"gate-owner-{width}"), full_page=True)
    finally:
        page.context.close()


@pytest.mark.parametrize("width", WIDTHS)
def test_an_approver_is_offered_only_what_an_approver_can_do(
    browser: Browser, live_server_url: str, acme, alice, width: int
):
    make_member("omar", acme, Role.APPROVER)
    start_run(publish_gated(acme), {"amount": 40, "customer": "Ada"}, started_by=alice)
    page = at_width(browser, live_server_url, width)
    try:
        sign_in(page, "omar")
        expect(page).to_have_url(re.compile(r"/w/acme/"))
        page.goto("/w/acme/inbox/")

        expect(page.get_by_role("heading", name="Refund 40 EUR to Ada?")).to_be_visible()
        expect(page.get_by_role("button", name="Approve")).to_be_visible()
        expect(page.get_by_text("Runs needing attention")).to_have_count(0)
        expect(page.locator("#inbox-others")).to_have_count(0)
        expect(page.get_by_text("Reassign…")).to_have_count(0)
        no_horizontal_scroll(page)
        page.screenshot(path=screenshot_path(f"inbox-approver-{width}"), full_page=True)
    finally:
        page.context.close()
