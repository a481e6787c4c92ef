"""The tokens page and the API's reference page in Chromium, under the site's CSP: no
console errors, the new token shown once and copyable, gone after a reload."""

import re

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import screenshot_path, sign_in
from tests.conftest import make_member
from vectorbea.accounts.models import Role, Workspace
from vectorbea.api.models import ApiToken
from vectorbea.api.tokens import TOKEN_SHAPE

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_an_owner_creates_a_token_and_sees_it_once(page: Page):
    acme = Workspace.objects.create(slug="acme", name="Acme")
    make_member("alice", acme, Role.OWNER)
    sign_in(page, "alice")
    page.get_by_role("navigation", name="Workspace").get_by_role("link", name="Settings").click()
    page.get_by_role("navigation", name="Settings").get_by_role("link", name="API tokens").click()
    expect(page).to_have_url(re.compile(r"/w/acme/settings/api-tokens/$"))

    page.get_by_label("Name").fill("CI deploys")
    page.get_by_label("Role").select_option("editor")
    page.get_by_role("button", name="Create token").click()

    expect(page.get_by_role("heading", name="Copy your new token now")).to_be_visible()
    value = page.get_by_label("API token (Editor)").input_value()
    assert TOKEN_SHAPE.fullmatch(value)
    token = ApiToken.objects.get()
    expect(page.locator(f"#token-{token.prefix}")).to_contain_text("CI deploys")
    page.screenshot(path="test-artifacts/api-tokens-created.png", full_page=True)

    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.get_by_role("button", name="Copy").click()
    expect(page.get_by_role("status").filter(has_text="Copied")).to_have_text(
        "Copied to the clipboard."
    )
    assert page.evaluate("() => navigator.clipboard.readText()") == value

    page.goto("/w/acme/settings/api-tokens/")
    expect(page.get_by_role("heading", name="Copy your new token now")).to_have_count(0)
    assert value not in page.content()


def test_the_api_reference_page_renders_under_the_csp(page: Page):
    page.goto("/api/docs")

    expect(page.get_by_role("heading", name="Vectorbea API")).to_be_visible()
    expect(page.get_by_text("POST /api/workflows/{workflow_id}/runs")).to_be_visible()


@pytest.mark.parametrize("width", [1366, 390])
def test_the_tokens_page_shows_when_each_token_expires(page: Page, width):
    from datetime import timedelta

    from django.utils import timezone

    from vectorbea.api.tokens import create_token, revoke_token

    acme = Workspace.objects.create(slug="acme", name="Acme")
    alice = make_member("alice", acme, Role.OWNER)
    create_token(acme, "CI deploys", Role.EDITOR, alice)
    create_token(acme, "Zapier", Role.VIEWER, alice, lifetime=None)
    old, _ = create_token(acme, "Old script", Role.VIEWER, alice)
    ApiToken.objects.filter(pk=old.pk).update(expires_at=timezone.now() - timedelta(days=2))
    gone, _ = create_token(acme, "Bob's bot", Role.ADMIN, alice)
    revoke_token(gone, "bob, who created it, left the workspace")
    page.set_viewport_size({"width": width, "height": 900})
    sign_in(page, "alice")

    page.goto("/w/acme/settings/api-tokens/")

    expect(page.get_by_label("Expires after")).to_have_value("90")
    row = page.locator("#api-tokens tr", has_text="CI deploys")
    expires = timezone.localtime(timezone.now() + timedelta(days=90))
    expect(row).to_contain_text(f"{expires:%b} {expires.day}, {expires.year}")
    expect(page.locator("#api-tokens tr", has_text="Zapier")).to_contain_text("Never")
    expect(page.locator("#api-tokens tr", has_text="Old script")).to_contain_text("Expired")
    expect(page.locator("#revoked-tokens")).to_contain_text(
        "bob, who created it, left the workspace"
    )
    page.screenshot(path=screenshot_path(f"api-tokens-expiry-{width}"), full_page=True)
