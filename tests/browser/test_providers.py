"""Providers in the browser, with real worker and scheduler processes: the demo's "Ask a
model" stops with a link to Settings → Providers while the workspace has none; an owner adds
an OpenAI-compatible server (the scripted fake provider, which the operator's allowlist lets
the installation call), tests the connection, and the same workflow then completes. A server
the allowlist refuses says which exact setting the operator adds."""

from collections.abc import Iterator

import pytest
from django.urls import reverse
from playwright.sync_api import Page, expect

from tests.browser.conftest import daphne_server, screenshot_path, sign_in
from tests.support.fake_llm import FakeLLM, ok
from tests.support.live import Live, flush_own_redis, prepare_side_effects, run_status, wait_for
from vectorbea.eventlog.models import Run
from vectorbea.workflows.examples import install_examples

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

WIDE = {"width": 1366, "height": 900}
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeLLM]:
    with FakeLLM() as server:
        yield server


@pytest.fixture(scope="module")
def allowlist(fake) -> str:
    """What the operator allows here: the fake provider's address and port, nothing more."""
    return f"127.0.0.1:{fake.port}"


@pytest.fixture(scope="module")
def live_server_url(django_db_setup, django_db_blocker, allowlist) -> Iterator[str]:
    """This module's own server: the web process tests connections, so it needs the
    operator's allowlist too."""
    with daphne_server("daphne-providers", VECTORBEA_HTTP_ALLOWLIST=allowlist) as url:
        yield url


@pytest.fixture
def workers(allowlist) -> Iterator[Live]:
    prepare_side_effects()
    flush_own_redis()
    live = Live(VECTORBEA_HTTP_ALLOWLIST=allowlist)
    live.scheduler()
    live.worker()
    yield live
    live.stop_all()


def start_run(page: Page, workflow, question: str) -> Run:
    page.goto(reverse("workflow-run", kwargs={"ws": "acme", "workflow_id": workflow.id}))
    page.get_by_label("question").fill(question)
    before = set(Run.objects.filter(workflow=workflow).values_list("id", flat=True))
    page.get_by_role("button", name="Start run").click()
    page.wait_for_url("**/runs/*/")
    [run] = Run.objects.filter(workflow=workflow).exclude(id__in=before)
    return run


def test_an_owner_adds_a_local_model_tests_it_and_the_demo_runs(
    page: Page, workers, fake, alice, acme
):
    examples = {workflow.name: workflow for workflow in install_examples(acme, alice)}
    ask = examples["Ask a model"]
    page.set_viewport_size(WIDE)
    sign_in(page, "alice")

    # No provider yet: the run stops at the step and says where to add one.
    stopped = start_run(page, ask, "What is durable execution?")
    wait_for(lambda: run_status(stopped.id) == "needs_attention", timeout=60)
    panel = page.locator("#attention-panel")
    expect(panel).to_be_visible(timeout=15_000)
    expect(panel).to_contain_text("No LLM provider is set up for this workspace")
    page.screenshot(path=screenshot_path("providers-demo-needs-attention"), full_page=True)
    panel.get_by_role("link", name="Open Settings → Providers").click()
    expect(page.get_by_role("heading", name="Providers", exact=True)).to_be_visible()

    # An OpenAI-compatible server: the fake provider, on an address the operator allows.
    form = page.locator("#add-server")
    form.get_by_label("Name").fill("Local model")
    form.get_by_label("Base URL").fill(fake.openai_url)
    form.get_by_label("Default model").fill("llama3.2")
    form.get_by_role("button", name="Save provider").click()
    expect(page.get_by_role("status").first).to_contain_text("Added the provider Local model")
    server = page.locator(".provider", has_text="Local model")
    expect(server).to_contain_text("Default")
    expect(server).to_contain_text("No key: it is called without one.")

    fake.script(ok("OK"))
    server.get_by_role("button", name="Test connection").click()
    expect(server.locator(".test-result")).to_have_text(
        "Connected. Local model answered with model llama3.2: “OK”"
    )
    assert fake.requests[-1].body["max_tokens"] == 1

    # One the operator has not allowed: the page says which exact setting to add.
    form.get_by_label("Name").fill("Other box")
    form.get_by_label("Base URL").fill("http://127.0.0.1:9/v1")
    form.get_by_label("Default model").fill("qwen2.5")
    form.get_by_role("button", name="Save provider").click()
    refused = page.locator(".provider", has_text="Other box")
    setting = "the operator adds 127.0.0.1:9 to VECTORBEA_HTTP_ALLOWLIST."
    expect(refused.locator(".provider-warning")).to_contain_text(setting)
    refused.get_by_role("button", name="Test connection").click()
    expect(refused.locator(".test-result")).to_contain_text("Failed.")
    expect(refused.locator(".test-result")).to_contain_text(setting)

    page.screenshot(path=screenshot_path("providers-page-1366"), full_page=True)
    page.set_viewport_size(PHONE)
    page.reload()
    # Each provider's card fits its width: long URLs and the test's answer wrap.
    fits = "[...document.querySelectorAll('.provider')].every(e => e.scrollWidth <= e.clientWidth)"
    assert page.evaluate(fits)
    page.screenshot(path=screenshot_path("providers-page-390"), full_page=True)
    page.set_viewport_size(WIDE)

    # The demo workflow now completes, answered by the provider just added.
    fake.script(ok("Durable execution resumes work where it stopped."))
    done = start_run(page, ask, "What is durable execution?")
    wait_for(lambda: run_status(done.id) == "completed", timeout=60)
    expect(page.locator("#run-status")).to_have_text("Completed", timeout=15_000)
    request = fake.requests[-1]
    assert request.body["model"] == "llama3.2"
    assert request.body["messages"][-1]["content"] == "What is durable execution?"
    page.screenshot(path=screenshot_path("providers-demo-completed"), full_page=True)
