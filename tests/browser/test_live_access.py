"""An open page follows the person's access as it changes: the run page of a member made
viewer loses its stop buttons at the next push, and a removed member's socket closes."""

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import sign_in
from tests.conftest import make_member
from tests.support.workflows import chain, publish
from tests.ws.test_run_timeline import note
from vectorbea.accounts.models import Membership, Role
from vectorbea.runs.commands import start_run
from vectorbea.runs.consumers import ACCESS_GONE

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Each closed socket as "<element id> <close code>": the run page has two sockets, the
# timeline's (#live) and the workspace's (#workspace-live).
RECORD_CLOSE = """window.__closed = [];
document.addEventListener("htmx:wsClose", (event) => {
  window.__closed.push(event.detail.elt.id + " " + event.detail.event.code);
});"""


def test_the_run_page_follows_a_downgrade_then_a_removal(page: Page, acme, alice):
    erin = make_member("erin", acme, Role.EDITOR)
    run = start_run(publish(acme, chain(2)), {})
    sign_in(page, "erin")
    page.add_init_script(RECORD_CLOSE)
    page.goto(f"/w/acme/runs/{run.id}/")
    rows = page.locator("#timeline [data-seq]")
    expect(rows).to_have_count(2)
    expect(page.get_by_role("button", name="Cancel run")).to_be_visible()
    expect(page.get_by_role("button", name="Pause")).to_be_visible()

    Membership.objects.filter(user=erin, workspace=acme).update(role=Role.VIEWER)
    note(run.id, "after the downgrade")
    expect(rows).to_have_count(3)
    expect(page.get_by_role("button", name="Cancel run")).to_have_count(0)
    expect(page.get_by_role("button", name="Pause")).to_have_count(0)

    Membership.objects.filter(user=erin, workspace=acme).delete()
    note(run.id, "after the removal")
    gone = [f"live {ACCESS_GONE}", f"workspace-live {ACCESS_GONE}"]
    page.wait_for_function("(gone) => gone.every((s) => window.__closed.includes(s))", arg=gone)
    expect(rows).to_have_count(3)  # the event appended after the removal never came
    assert sorted(page.evaluate("window.__closed")) == gone  # and neither reconnected
