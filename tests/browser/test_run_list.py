"""The run list's bulk actions in Chromium: they need a selection, and Cancel asks first."""

import pytest
from playwright.sync_api import Dialog, Page, expect

from tests.browser.conftest import sign_in
from tests.support.live import run_status
from tests.support.workflows import chain, publish
from vectorbea.runs.commands import start_run

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_bulk_buttons_need_a_selection_and_cancel_asks_first(page: Page, acme, alice):
    workflow = publish(acme, chain(2), name="Nightly")
    run = start_run(workflow, {}, started_by=alice)
    sign_in(page, "alice")
    page.goto("/w/acme/runs/")
    bulk = page.locator("#bulk")
    cancel = bulk.get_by_role("button", name="Cancel")
    retry = bulk.get_by_role("button", name="Retry from failed step")

    expect(cancel).to_be_disabled()
    expect(retry).to_be_disabled()
    page.get_by_label(f"Select run {str(run.id)[:8]}").check()
    expect(cancel).to_be_enabled()
    expect(page.locator("#selected-count")).to_have_text("1")

    questions: list[str] = []

    def say_no(dialog: Dialog) -> None:
        questions.append(dialog.message)
        dialog.dismiss()

    page.once("dialog", say_no)
    cancel.click()
    expect(page.locator("#selected-count")).to_have_text("1")
    assert questions == ["Cancel 1 run? Steps still running lose their results."]
    page.wait_for_timeout(300)  # had it been sent, the answer would be back by now
    expect(page.locator("#bulk-result")).to_be_empty()
    assert run_status(run.id) == "running"

    page.once("dialog", lambda dialog: dialog.accept())
    cancel.click()
    expect(page.locator("#bulk-result")).not_to_be_empty()
    expect(page.locator(f"#run-{run.id}")).to_have_attribute("data-status", "cancelled")
    assert run_status(run.id) == "cancelled"

    page.get_by_label(f"Select run {str(run.id)[:8]}").uncheck()
    expect(cancel).to_be_disabled()
