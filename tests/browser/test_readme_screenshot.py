"""The README's screenshot: an approver's inbox with a run waiting for a decision. Written
to test-artifacts/readme-inbox.png on every run; docs/img/inbox.png is a copy of it (see
docs/development.md)."""

import re

import pytest
from playwright.sync_api import Browser, expect

from tests.approvals.support import publish_gated
from tests.browser.conftest import screenshot_path, sign_in
from tests.conftest import make_member
from vectorbea.accounts.models import Role
from vectorbea.runs.commands import start_run

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_readme_screenshot_shows_an_approvers_inbox(
    browser: Browser, live_server_url: str, acme, alice
):
    make_member("maria", acme, Role.APPROVER)
    workflow = publish_gated(acme)
    start_run(workflow, {"amount": 40, "customer": "Ada Lovelace"}, started_by=alice)
    context = browser.new_context(base_url=live_server_url, viewport={"width": 1100, "height": 760})
    page = context.new_page()
    try:
        sign_in(page, "maria")
        expect(page).to_have_url(re.compile(r"/w/acme/"))
        page.goto("/w/acme/inbox/")

        expect(page.get_by_role("heading", name="Refund 40 EUR to Ada Lovelace?")).to_be_visible()
        expect(page.get_by_role("button", name="Approve")).to_be_visible()
        expect(page.locator("#inbox-count")).to_have_text("1")
        page.get_by_label("Reason for approving").fill("Order checked, within policy")
        page.wait_for_load_state("networkidle")
        page.mouse.move(0, 0)
        page.screenshot(path=screenshot_path("readme-inbox"))
    finally:
        context.close()
