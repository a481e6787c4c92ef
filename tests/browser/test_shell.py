import re

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import screenshot_path, sign_in
from tests.conftest import make_member
from vectorbea.accounts.models import Membership, Role

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_it_signs_in_and_shows_the_shell(page: Page, alice):
    sign_in(page, "alice")

    expect(page).to_have_url(re.compile(r"/w/acme/workflows/$"))
    nav = page.get_by_role("navigation", name="Workspace")
    for name in ("Workflows", "Runs", "Inbox", "Settings"):
        expect(nav.get_by_role("link", name=name)).to_be_visible()
    expect(nav.get_by_role("link", name="Workflows")).to_have_attribute("aria-current", "page")
    expect(page.locator(".switcher-name")).to_have_text("Acme")
    expect(page.get_by_role("heading", name="No workflows in Acme yet")).to_be_visible()


def test_it_switches_workspace_with_the_switcher(page: Page, alice, globex):
    Membership.objects.create(workspace=globex, user=alice, role=Role.EDITOR)
    sign_in(page, "alice")
    expect(page.locator(".switcher-name")).to_have_text("Acme")

    page.get_by_label("Switch workspace").click()
    page.get_by_role("link", name=re.compile("Globex")).click()

    expect(page).to_have_url(re.compile(r"/w/globex/workflows/$"))
    expect(page.locator(".switcher-name")).to_have_text("Globex")
    page.get_by_role("navigation", name="Workspace").get_by_role("link", name="Runs").click()
    expect(page).to_have_url(re.compile(r"/w/globex/runs/$"))

    page.goto("/")  # the last used workspace is remembered
    expect(page).to_have_url(re.compile(r"/w/globex/workflows/$"))


def test_it_shows_an_error_for_a_wrong_password(page: Page, alice):
    sign_in(page, "alice", "not the password")

    expect(page.get_by_role("alert")).to_contain_text("That username and password don’t match")
    expect(page).to_have_url(re.compile(r"/login/$"))
    expect(page.get_by_label("Username")).to_have_value("alice")


def test_it_signs_out_from_the_user_menu(page: Page, alice):
    sign_in(page, "alice")

    page.get_by_label("Account menu for alice").click()
    page.get_by_role("button", name="Sign out").click()

    expect(page).to_have_url(re.compile(r"/login/$"))
    page.goto("/w/acme/workflows/")
    expect(page).to_have_url(re.compile(r"/login/\?next="))


def test_an_owner_changes_a_role_in_place_with_htmx(page: Page, alice, acme):
    make_member("vera", acme, Role.VIEWER)
    sign_in(page, "alice")
    page.goto("/w/acme/settings/members/")

    with page.expect_response(re.compile(r"/role/$")) as swap:
        page.get_by_label("Role for vera").select_option("approver")

    assert swap.value.status == 200
    row = page.locator('tr[data-username="vera"]')
    expect(row.get_by_label("Role for vera")).to_have_value("approver")
    assert Membership.objects.get(user__username="vera").role == Role.APPROVER


def test_it_renders_key_pages_for_review(page: Page, alice, acme, globex):
    """Screenshots at 1280×800 of the pages people see first."""
    make_member("vera", acme, Role.EDITOR)
    make_member("omar", acme, Role.APPROVER)
    Membership.objects.create(workspace=globex, user=alice, role=Role.ADMIN)

    page.goto("/login/")
    page.screenshot(path=screenshot_path("review-login"))

    sign_in(page, "alice", "wrong")
    expect(page.get_by_role("alert")).to_be_visible()
    page.screenshot(path=screenshot_path("review-login-error"))

    sign_in(page, "alice")
    expect(page).to_have_url(re.compile(r"/w/acme/workflows/$"))
    page.screenshot(path=screenshot_path("review-workflows-empty"))

    page.get_by_label("Switch workspace").click()
    page.screenshot(path=screenshot_path("review-switcher-open"))
    page.keyboard.press("Escape")

    for path, name in [
        ("/w/acme/runs/", "review-runs-empty"),
        ("/w/acme/inbox/", "review-inbox-empty"),
        ("/w/acme/settings/", "review-settings"),
        ("/w/acme/settings/members/", "review-members"),
        ("/workspaces/new/", "review-workspace-create"),
        ("/w/nope/workflows/", "review-404"),
    ]:
        page.goto(path)
        page.screenshot(path=screenshot_path(name), full_page=True)

    page.set_viewport_size({"width": 1024, "height": 768})
    page.goto("/w/acme/settings/members/")
    page.screenshot(path=screenshot_path("review-members-1024"), full_page=True)
