"""The main pages at a laptop's width (1366 px) and a phone's (390 px).

At 390 px nothing scrolls sideways, the workspace nav collapses behind a menu button, lists
become cards and the run page is one column. Every main page is photographed at both widths
into test-artifacts/screenshots/ for a person to look at.
"""

import re

import pytest
from playwright.sync_api import Page, expect

from tests.approvals.support import gated
from tests.browser.conftest import ARTIFACTS, sign_in
from tests.conftest import make_member
from tests.support.workflows import chain, publish
from vectorbea.accounts.models import Role
from vectorbea.runs.commands import cancel_run, start_run
from vectorbea.workflows.examples import install_examples

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SCREENSHOTS = ARTIFACTS / "screenshots"
WIDE = {"width": 1366, "height": 900}
PHONE = {"width": 390, "height": 844}
LONG_NAME = "Quarterly supplier reconciliation and escalation for overdue invoices"


@pytest.fixture
def busy_workspace(acme, alice):
    """Acme with the example workflows, a long-named gated workflow and runs in several
    states: one waiting at its gate (in the inbox), one queued, one cancelled."""
    install_examples(acme, alice)
    make_member("omar", acme, Role.APPROVER)  # the gate's approver
    refunds = publish(acme, gated(), name=LONG_NAME)
    waiting = start_run(refunds, {"amount": 40, "customer": "Ada"}, started_by=alice)
    steps = publish(acme, chain(3), name="Three quick steps")
    start_run(steps, {}, started_by=alice)
    cancelled = start_run(steps, {}, started_by=alice)
    cancel_run(cancelled.id, actor="alice")
    return {"waiting": waiting, "refunds": refunds}


def main_pages(busy_workspace) -> list[tuple[str, str]]:
    run = busy_workspace["waiting"]
    workflow = busy_workspace["refunds"]
    return [
        ("workflows", "/w/acme/workflows/"),
        ("runs", "/w/acme/runs/"),
        ("run", f"/w/acme/runs/{run.id}/"),
        ("inbox", "/w/acme/inbox/"),
        ("settings", "/w/acme/settings/"),
        ("members", "/w/acme/settings/members/"),
        ("provider-keys", "/w/acme/settings/keys/"),
        ("secrets", "/w/acme/settings/secrets/"),
        ("api-tokens", "/w/acme/settings/api-tokens/"),
        ("limits", "/w/acme/settings/limits/"),
        ("usage", "/w/acme/usage/"),
        ("operations", "/w/acme/operations/"),
        ("builder", f"/w/acme/workflows/{workflow.id}/"),
        ("not-found", "/w/acme/nothing-here/"),
    ]


def horizontal_overflow(page: Page) -> int:
    """How many CSS pixels the page is wider than the window (0 when nothing scrolls sideways)."""
    return page.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )


def wider_than_the_window(page: Page) -> list[str]:
    """The outermost elements that reach past the window's right edge, for the failure message."""
    return page.evaluate(
        """() => {
          const limit = document.documentElement.clientWidth;
          const wide = [...document.querySelectorAll("body *")].filter(
            el => el.getBoundingClientRect().right > limit + 0.5);
          return wide.filter(el => !wide.includes(el.parentElement)).slice(0, 8).map(
            el => el.tagName.toLowerCase() + (el.id ? "#" + el.id : "")
              + (el.className && el.className.baseVal === undefined
                 ? "." + el.className.trim().split(/\\s+/).join(".") : "")
              + " right=" + Math.round(el.getBoundingClientRect().right));
        }"""
    )


def test_it_photographs_every_main_page_at_both_widths(page: Page, busy_workspace):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    sign_in(page, "alice")
    expect(page).to_have_url(re.compile(r"/w/acme/workflows/$"))
    for width, viewport in (("1366", WIDE), ("390", PHONE)):
        page.set_viewport_size(viewport)
        for name, path in main_pages(busy_workspace):
            page.goto(path)
            page.wait_for_load_state("networkidle")
            page.screenshot(path=SCREENSHOTS / f"{name}-{width}.png", full_page=True)

    page.context.clear_cookies()
    sign_in(page, "omar")  # the inbox of the person the gate waits for
    expect(page).to_have_url(re.compile(r"/w/acme/workflows/$"))
    for width, viewport in (("1366", WIDE), ("390", PHONE)):
        page.set_viewport_size(viewport)
        page.goto("/w/acme/inbox/")
        expect(page.locator(".gate")).to_have_count(1)
        page.screenshot(path=SCREENSHOTS / f"inbox-approver-{width}.png", full_page=True)


@pytest.mark.parametrize(
    "name",
    [
        "workflows",
        "runs",
        "run",
        "inbox",
        "settings",
        "members",
        "provider-keys",
        "secrets",
        "api-tokens",
        "limits",
        "usage",
        "operations",
        "not-found",
    ],
)
def test_a_main_page_does_not_scroll_sideways_on_a_phone(page: Page, busy_workspace, name):
    path = dict(main_pages(busy_workspace))[name]
    page.set_viewport_size(PHONE)
    sign_in(page, "alice")
    expect(page).to_have_url(re.compile(r"/w/acme/workflows/$"))

    page.goto(path)
    page.wait_for_load_state("networkidle")

    overflow = horizontal_overflow(page)
    assert overflow <= 0, f"{path} is {overflow} px too wide: {wider_than_the_window(page)}"


def test_the_workspace_nav_collapses_behind_a_menu_button_on_a_phone(page: Page, busy_workspace):
    page.set_viewport_size(PHONE)
    sign_in(page, "alice")
    expect(page).to_have_url(re.compile(r"/w/acme/workflows/$"))
    nav = page.get_by_role("navigation", name="Workspace")
    menu = page.get_by_role("button", name="Menu")

    expect(nav.get_by_role("link", name="Runs")).to_be_hidden()
    expect(menu).to_have_attribute("aria-expanded", "false")
    menu.click()
    expect(menu).to_have_attribute("aria-expanded", "true")
    expect(nav.get_by_role("link", name="Runs")).to_be_visible()
    page.keyboard.press("Escape")  # closes it, focus back on the button
    expect(nav.get_by_role("link", name="Runs")).to_be_hidden()
    expect(menu).to_be_focused()

    page.keyboard.press("Enter")  # the button works from the keyboard too
    nav.get_by_role("link", name="Runs").click()
    expect(page).to_have_url(re.compile(r"/w/acme/runs/$"))
    expect(nav).to_be_hidden()
    expect(menu).to_have_attribute("aria-expanded", "false")

    page.set_viewport_size(WIDE)  # a laptop shows the tabs, not the button
    expect(menu).to_be_hidden()
    expect(nav.get_by_role("link", name="Inbox")).to_be_visible()


def test_lists_are_cards_on_a_phone_and_names_wrap_between_words(page: Page, busy_workspace):
    page.set_viewport_size(PHONE)
    sign_in(page, "alice")
    expect(page).to_have_url(re.compile(r"/w/acme/workflows/$"))

    name = page.get_by_role("link", name=LONG_NAME)
    cell = page.locator("td", has=name)
    assert cell.bounding_box()["width"] > 200, "the workflow name is squeezed into a narrow column"
    lines = page.evaluate(
        "el => Math.round(el.getBoundingClientRect().height / parseFloat("
        "getComputedStyle(el).lineHeight))",
        name.element_handle(),
    )
    assert lines <= 4, f"{LONG_NAME!r} took {lines} lines at 390 px"
    row = page.locator(f'tr[data-workflow="{busy_workspace["refunds"].id}"]')
    expect(row.locator('td[data-label="Last run"]')).to_contain_text("Waiting")

    page.goto("/w/acme/runs/")
    run = busy_workspace["waiting"]
    card = page.locator(f"#run-{run.id}")
    cost = card.locator('td[data-label="Cost"]')
    expect(cost).to_be_visible()
    card_box = card.bounding_box()
    assert card_box["x"] >= 0 and card_box["x"] + card_box["width"] <= PHONE["width"]
    cost_box = cost.bounding_box()
    assert cost_box["x"] + cost_box["width"] <= card_box["x"] + card_box["width"]


def test_the_run_list_shows_every_column_at_1366(page: Page, busy_workspace):
    page.set_viewport_size(WIDE)
    sign_in(page, "alice")
    page.goto("/w/acme/runs/")

    results = page.locator("#run-results")
    cost = page.get_by_role("columnheader", name="Cost")
    expect(cost).to_be_visible()
    assert page.locator(".table-scroll").evaluate("el => el.scrollWidth <= el.clientWidth")
    cost_box, card = cost.bounding_box(), results.bounding_box()
    assert cost_box["x"] + cost_box["width"] <= card["x"] + card["width"]


def test_the_run_page_and_the_inbox_are_one_column_on_a_phone(page: Page, busy_workspace):
    run = busy_workspace["waiting"]
    page.set_viewport_size(PHONE)
    sign_in(page, "omar")
    expect(page).to_have_url(re.compile(r"/w/acme/workflows/$"))

    page.goto(f"/w/acme/runs/{run.id}/")
    steps = page.locator(".run-side").bounding_box()
    timeline = page.locator(".timeline-card").bounding_box()
    assert timeline["y"] > steps["y"] + steps["height"] - 1, "the timeline is beside the steps"
    assert timeline["width"] > PHONE["width"] - 60
    expect(page.locator("#timeline")).to_contain_text("waits for approval")

    page.goto("/w/acme/inbox/")
    gate = page.locator(f'.gate[data-run="{run.id}"]')
    expect(gate.get_by_role("button", name="Approve")).to_be_visible()
    approve = gate.get_by_role("button", name="Approve").bounding_box()
    deny = gate.get_by_role("button", name="Deny").bounding_box()
    assert approve["x"] + approve["width"] <= PHONE["width"]
    assert deny["x"] + deny["width"] <= PHONE["width"]


def test_the_builder_asks_for_a_larger_screen_but_shows_the_graph(page: Page, busy_workspace):
    workflow = busy_workspace["refunds"]
    page.set_viewport_size(PHONE)
    sign_in(page, "alice")
    expect(page).to_have_url(re.compile(r"/w/acme/workflows/$"))

    page.goto(f"/w/acme/workflows/{workflow.id}/")
    note = page.get_by_role("note")
    expect(note).to_contain_text("needs a larger screen")
    canvas = page.locator("#canvas")
    expect(canvas).to_be_visible()
    assert canvas.bounding_box()["height"] >= 300
    expect(page.locator("#nodes > *")).to_have_count(2)
    assert horizontal_overflow(page) <= 0

    page.set_viewport_size(WIDE)
    expect(note).to_be_hidden()


@pytest.mark.parametrize("viewport", [WIDE, PHONE], ids=["1366", "390"])
def test_a_flash_message_is_not_hidden_under_the_sticky_top_bar(page: Page, acme, alice, viewport):
    page.set_viewport_size(viewport)
    sign_in(page, "alice")
    page.goto("/w/acme/settings/limits/")

    page.get_by_role("button", name="Save limits").click()  # back to the page's "#main"

    expect(page).to_have_url(re.compile(r"/w/acme/settings/limits/#main$"))
    message = page.locator(".messages")
    expect(message).to_be_visible()
    bar = page.locator(".topbar").bounding_box()
    assert message.bounding_box()["y"] >= bar["y"] + bar["height"]
