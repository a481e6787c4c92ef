"""An admin sets a budget, a run goes over it and is stopped with the reason in plain
language; a viewer can read the limits but not change them."""

from collections.abc import Iterator

import pytest
from django.urls import reverse
from playwright.sync_api import Page, expect

from tests.browser.conftest import screenshot_path, sign_in
from tests.conftest import make_member
from tests.support.fake_llm import FakeLLM, ok
from tests.support.live import Live, flush_own_redis, prepare_side_effects, run_status, wait_for
from tests.support.workflows import chain, publish
from vectorbea.accounts.models import Role
from vectorbea.eventlog.models import Run

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def fake() -> Iterator[FakeLLM]:
    with FakeLLM() as server:
        server.default = ok("An answer", usage=(200, 200))  # $0.018 a call with gpt-4
        yield server


@pytest.fixture
def workers(fake) -> Iterator[Live]:
    prepare_side_effects()
    flush_own_redis()
    live = Live(
        VECTORBEA_OPENAI_BASE_URL=fake.openai_url,
        VECTORBEA_OPENAI_API_KEY="sk-test-browser-budget-0123",
    )
    live.scheduler()
    live.worker()
    yield live
    live.stop_all()


def test_a_run_over_its_budget_is_stopped_with_the_reason_and_viewers_cannot_change_it(
    page: Page, workers, alice, acme
):
    config = {"provider": "openai", "model": "gpt-4", "prompt": "Summarise", "max_tokens": 200}
    workflow = publish(acme, chain(3, "llm", config), name="Costly summary")
    sign_in(page, "alice")

    page.goto(reverse("limits", kwargs={"ws": "acme"}))
    page.get_by_label("Budget per run (USD)").first.fill("0.01")
    page.get_by_role("button", name="Save limits").click()
    expect(page.get_by_text("Budget per run").first).to_be_visible()
    expect(page.locator("body")).to_contain_text("$0.01")

    page.goto(reverse("workflow-run", kwargs={"ws": "acme", "workflow_id": workflow.id}))
    page.get_by_role("button", name="Start run").click()
    page.wait_for_url("**/runs/*/")
    run = Run.objects.get(workflow=workflow)
    wait_for(lambda: run_status(run.id) == "needs_attention", timeout=60)

    expect(page.locator("body")).to_contain_text("Needs attention", timeout=15_000)
    expect(page.locator("body")).to_contain_text("This run has spent $0.0180 of its $0.0100")
    expect(page.locator("body")).to_contain_text("Raise the budget on the Limits page")
    page.screenshot(path=screenshot_path("budget-run-stopped"), full_page=True)

    make_member("vera", acme, Role.VIEWER)
    page.context.clear_cookies()
    sign_in(page, "vera")
    page.goto(reverse("limits", kwargs={"ws": "acme"}))
    expect(page.locator("body")).to_contain_text("$0.01")
    expect(page.get_by_role("button", name="Save limits")).to_have_count(0)
    expect(page.get_by_role("button", name="Stop everything")).to_have_count(0)
    page.screenshot(path=screenshot_path("budget-viewer-limits"), full_page=True)
