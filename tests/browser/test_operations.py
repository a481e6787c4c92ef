"""The operations page in Chromium, under the site's CSP: it renders and keeps refreshing."""

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import screenshot_path, sign_in
from tests.support.workflows import chain, publish
from vectorbea.runs.commands import start_run

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_an_owner_watches_the_operations_page_refresh(page: Page, alice, acme):
    sign_in(page, "alice")
    page.goto("/w/acme/operations/")
    expect(page.get_by_role("heading", name="Operations")).to_be_visible()
    expect(page.locator("#operations")).to_contain_text("No runs yet.")

    start_run(publish(acme, chain(2)), {})  # waits on the steps queue: no worker here

    expect(page.locator("#operations")).to_contain_text("Running", timeout=15_000)
    page.screenshot(path=screenshot_path("operations"), full_page=True)
