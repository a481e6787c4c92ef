"""Workspace secrets in the browser: a secret saved through the settings page is never sent
back to the browser; its name and last four characters show, and it can be replaced and
deleted."""

import re

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import screenshot_path, sign_in
from tests.browser.test_keys import everything_sent, record_responses
from tests.keys.support import assert_no_leak, canary
from vectorbea.keys import vault
from vectorbea.keys.models import WorkspaceSecret

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_an_owner_saves_replaces_and_deletes_a_secret(page: Page, acme, alice):
    first, second = canary("ghp_"), canary("ghp_")
    responses = record_responses(page)
    sign_in(page, "alice")
    page.get_by_role("navigation", name="Workspace").get_by_role("link", name="Settings").click()
    page.get_by_role("navigation", name="Settings").get_by_role("link", name="Secrets").click()
    expect(page).to_have_url(re.compile(r"/w/acme/settings/secrets/$"))
    expect(page.get_by_text("No secrets yet.")).to_be_visible()

    # A mistake first: a name that cannot go into {{ secrets.NAME }}. The value is not kept.
    page.get_by_label("Name").fill("github-token")
    page.get_by_label("Value").fill(first)
    page.get_by_role("button", name="Save secret").click()
    expect(page.get_by_text("Use letters, digits and _ only")).to_be_visible()
    expect(page.get_by_label("Value")).to_have_value("")
    snapshots = [page.content()]

    page.get_by_label("Name").fill("GITHUB_TOKEN")
    page.get_by_label("Value").fill(first)
    page.get_by_role("button", name="Save secret").click()
    expect(page.get_by_role("status")).to_contain_text(
        f"Saved the secret GITHUB_TOKEN ending …{first[-4:]}"
    )
    row = page.locator("#secret-GITHUB_TOKEN")
    expect(row).to_contain_text(f"…{first[-4:]}")
    expect(row).to_contain_text("by alice")
    expect(page.get_by_label("Value")).to_have_value("")
    vault.set_secret(acme, "SLACK_WEBHOOK_SECRET", canary("xoxb-"), alice)
    page.reload()
    for width in (1366, 390):
        page.set_viewport_size({"width": width, "height": 900})
        page.screenshot(path=screenshot_path(f"secrets-page-{width}"), full_page=True)
    snapshots.append(page.content())

    row.get_by_role("link", name="Replace").click()
    expect(page.get_by_label("Name")).to_have_value("GITHUB_TOKEN")
    page.get_by_label("Value").fill(second)
    page.get_by_role("button", name="Save secret").click()
    expect(page.get_by_role("status")).to_contain_text(
        f"Replaced the value of GITHUB_TOKEN (…{first[-4:]})"
    )
    expect(row).to_contain_text(f"…{second[-4:]}")
    snapshots.append(page.content())

    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name="Delete").click()
    expect(page.get_by_role("status")).to_contain_text("Deleted the secret GITHUB_TOKEN.")
    expect(row).to_have_count(0)
    assert list(WorkspaceSecret.objects.values_list("name", flat=True)) == ["SLACK_WEBHOOK_SECRET"]

    sent = everything_sent(page, responses, snapshots)
    assert "/w/acme/settings/secrets/" in sent
    for value in (first, second):
        assert_no_leak(sent, value, "what the browser was sent")
