"""Provider keys in the browser: a key saved through the settings page is never sent back
to the browser, in any response; only its last four characters show."""

import re

import pytest
from playwright.sync_api import Page, Response, expect

from tests.browser.conftest import sign_in
from tests.conftest import make_member
from tests.keys.support import assert_no_leak, canary
from vectorbea.accounts.models import Role
from vectorbea.keys.models import ProviderKey

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def record_responses(page: Page) -> list[Response]:
    responses: list[Response] = []
    page.on("response", lambda response: responses.append(response))
    return responses


def everything_sent(page: Page, responses: list[Response], snapshots: list[str]) -> str:
    """What the server sent the browser: the pages as shown at each stage (POST answers
    included), every GET fetched again with the same session, and every header."""
    texts = list(snapshots)
    for response in responses:
        texts.append(f"{response.url} {response.status} {response.all_headers()}")
        if response.request.method == "GET":
            texts.append(page.request.get(response.url).text())
    return "\n".join(texts)


def open_keys_page(page: Page) -> None:
    page.get_by_role("navigation", name="Workspace").get_by_role("link", name="Settings").click()
    page.get_by_role("navigation", name="Settings").get_by_role("link", name="Providers").click()
    expect(page).to_have_url(re.compile(r"/w/acme/settings/keys/$"))
    expect(page.get_by_role("heading", name="Providers", exact=True)).to_be_visible()


def test_an_owner_saves_a_key_and_the_browser_only_ever_sees_its_last_four(page: Page, alice):
    key, wrong = canary(), canary("sk-ant-")
    responses = record_responses(page)
    sign_in(page, "alice")
    open_keys_page(page)

    # A mistake first: an Anthropic key under OpenAI. The form says why and is empty again.
    page.get_by_label("Provider").select_option("openai")
    page.get_by_label("API key").fill(wrong)
    page.get_by_role("button", name="Save key").click()
    expect(page.get_by_text("That is an Anthropic key")).to_be_visible()
    expect(page.get_by_label("API key")).to_have_value("")
    snapshots = [page.content()]

    page.get_by_label("Label (optional)").fill("Production")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Save key").click()

    expect(page.get_by_role("status")).to_contain_text(f"Saved the OpenAI key ending …{key[-4:]}")
    row = page.locator("#key-openai")
    expect(row).to_contain_text(f"…{key[-4:]}")
    expect(row).to_contain_text("Production")
    expect(row).to_contain_text("by alice")
    expect(page.get_by_label("API key")).to_have_value("")
    snapshots.append(page.content())
    assert ProviderKey.objects.filter(last_four=key[-4:], revoked_at__isnull=True).exists()

    page.reload()
    snapshots.append(page.content())
    sent = everything_sent(page, responses, snapshots)
    assert "/w/acme/settings/keys/" in sent
    for secret in (key, wrong):
        assert_no_leak(sent, secret, "what the browser was sent")


def test_an_owner_replaces_and_revokes_a_key(page: Page, alice):
    first, second = canary(), canary()
    sign_in(page, "alice")
    page.goto("/w/acme/settings/keys/")
    page.get_by_label("API key").fill(first)
    page.get_by_role("button", name="Save key").click()
    expect(page.locator("#key-openai")).to_contain_text(f"…{first[-4:]}")

    page.locator("#key-openai").get_by_role("link", name="Replace").click()
    expect(page.get_by_label("Provider")).to_have_value("openai")
    page.get_by_label("API key").fill(second)
    page.get_by_role("button", name="Save key").click()
    expect(page.get_by_role("status")).to_contain_text(f"Replaced the OpenAI key …{first[-4:]}")
    expect(page.locator("#key-openai")).to_contain_text(f"…{second[-4:]}")
    expect(page.locator("#revoked-keys")).to_contain_text(f"…{first[-4:]}")

    page.once("dialog", lambda dialog: dialog.accept())
    page.locator("#key-openai").get_by_role("button", name="Revoke").click()
    expect(page.get_by_role("status")).to_contain_text(f"Revoked the OpenAI key …{second[-4:]}")
    expect(page.locator("#key-openai")).to_contain_text("No key.")
    assert not ProviderKey.objects.filter(revoked_at__isnull=True).exists()


def test_an_owner_requires_the_workspaces_own_keys(page: Page, alice):
    sign_in(page, "alice")
    page.goto("/w/acme/settings/keys/")
    page.get_by_label("Fail the step: this workspace uses only its own keys").check()
    page.locator("#key-policy").get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_contain_text("only this workspace's keys")
    expect(page.locator("#key-anthropic")).to_contain_text("steps fail until you add one")


@pytest.mark.parametrize("role", [Role.VIEWER, Role.EDITOR, Role.APPROVER])
def test_other_roles_see_no_keys_link_and_are_refused(page: Page, acme, role):
    make_member("casey", acme, role)
    sign_in(page, "casey")
    page.goto("/w/acme/settings/")
    subnav = page.get_by_role("navigation", name="Settings")
    expect(subnav.get_by_role("link", name="Members")).to_be_visible()
    expect(subnav.get_by_role("link", name="Providers")).to_have_count(0)
    response = page.goto("/w/acme/settings/keys/")
    assert response is not None and response.status == 403
