"""A model's words stream into the run page as they arrive: daphne, a real worker and the
scripted fake provider answering a word at a time. The words show in the running step's
row before the step's outcome is recorded; the recorded outcome then replaces them; a
reload mid-call shows the words so far, and the timeline still equals the log."""

from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import screenshot_path, sign_in
from tests.support.fake_llm import FakeLLM, calls, ok, stall
from tests.support.live import Live, event_rows, flush_own_redis, prepare_side_effects
from tests.support.workflows import chain, publish
from vectorbea.runs.commands import start_run

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

WORDS = "Once upon a time a durable workflow streamed its words to a patient reader"
CONFIG = {"provider": "openai", "model": "gpt-4o-mini", "prompt": "Tell a story"}


@pytest.fixture
def fake() -> Iterator[FakeLLM]:
    with FakeLLM() as server:
        yield server


@pytest.fixture
def workers(fake) -> Iterator[Live]:
    prepare_side_effects()
    flush_own_redis()
    live = Live(
        VECTORBEA_OPENAI_BASE_URL=fake.openai_url,
        VECTORBEA_OPENAI_API_KEY="sk-test-browser-streaming-0123",
        VECTORBEA_ANTHROPIC_BASE_URL=fake.anthropic_url,
        VECTORBEA_ANTHROPIC_API_KEY="sk-test-browser-streaming-0123",
    )
    live.scheduler()
    live.worker()
    yield live
    live.stop_all()


def event_types(run_id) -> list[str]:
    return [type_ for _, type_, _ in event_rows(run_id)]


def dom_seqs(page: Page) -> list[int]:
    return page.eval_on_selector_all(
        "#timeline [data-seq]", "rows => rows.map(r => parseInt(r.dataset.seq, 10))"
    )


def a_story_run(acme, fake: FakeLLM, provider: str = "openai"):
    # The page is open before the first word (the call waits a moment), then a word
    # comes every 0.3 s: about 4 s of words in all.
    fake.script(stall(1.5, ok(WORDS, chunk_delay=0.3)))
    config = {**CONFIG, "provider": provider}
    workflow = publish(acme, chain(1, "llm", config, name="Story"), name="Storyteller")
    return start_run(workflow, {})


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_words_appear_in_the_running_step_before_its_outcome_which_then_replaces_them(
    page: Page, workers, fake, alice, acme, provider
):
    run = a_story_run(acme, fake, provider)
    sign_in(page, "alice")
    page.goto(f"/w/acme/runs/{run.id}/")
    row = page.locator("#step-s0")
    words = row.locator(".step-partial")

    expect(words).to_contain_text("Once upon a time", timeout=40_000)
    assert "StepCompleted" not in event_types(run.id)  # the words came first
    expect(row).to_have_attribute("data-status", "running")
    page.screenshot(path=screenshot_path(f"streaming-words-{provider}"), full_page=True)
    assert fake.requests[0].stream

    # The outcome is recorded: the row is rendered anew, without the streamed words.
    expect(page.locator('#timeline [data-type="StepCompleted"]')).to_have_count(1, timeout=20_000)
    expect(row).to_have_attribute("data-status", "completed")
    expect(row.locator(".step-partial")).to_have_count(0)
    expect(page.locator('#timeline [data-type="RunCompleted"]')).to_have_count(1)
    # The words were never events: the answer is in the log in the step's outcome (and
    # the run's, whose output it is), nowhere else.
    log = event_rows(run.id)
    assert [type_ for _, type_, _ in log] == [
        "RunStarted",
        "StepStarted",
        "StepCompleted",
        "RunCompleted",
    ]
    assert log[2][2]["output"]["text"] == WORDS
    assert dom_seqs(page) == [seq for seq, _, _ in log]


def test_a_reload_mid_call_shows_the_words_so_far_without_a_row_twice(
    page: Page, workers, fake, alice, acme
):
    run = a_story_run(acme, fake)
    sign_in(page, "alice")
    page.goto(f"/w/acme/runs/{run.id}/")
    words = page.locator("#step-s0 .step-partial")
    expect(words).to_contain_text("Once upon a time a", timeout=40_000)

    page.reload()
    # As rendered by the server, from Redis: before any push to the new page.
    shown = page.locator("#step-s0 .step-partial").text_content(timeout=1_000) or ""
    assert shown.startswith("Once upon a time a"), shown
    assert "StepCompleted" not in event_types(run.id)
    page.screenshot(path=screenshot_path("streaming-after-reload"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    page.screenshot(path=screenshot_path("streaming-after-reload-390"), full_page=True)
    expect(words).to_contain_text("patient", timeout=20_000)  # and it goes on live

    expect(page.locator('#timeline [data-type="RunCompleted"]')).to_have_count(1, timeout=20_000)
    expect(page.locator("#step-s0 .step-partial")).to_have_count(0)
    log = event_rows(run.id)
    assert dom_seqs(page) == [seq for seq, _, _ in log]


def test_an_agents_words_stream_into_its_open_turn_and_the_recorded_turn_replaces_them(
    page: Page, workers, fake, alice, acme
):
    # Turn 1 calls a tool; turn 2 answers, a word every 0.3 s, after a pause that lets the
    # page see turn 1 and the tool's result recorded first.
    fake.script(
        calls(("lookup_order", {"order_id": 7})),
        stall(1.5, ok(WORDS, chunk_delay=0.3)),
    )
    step = {
        "provider": "openai",
        "model": "gpt-4o-mini",
        "task": "Tell the story of order 7.",
        "tools": [{"type": "python", "name": "lookup_order"}],
    }
    workflow = publish(acme, chain(1, "agent", step, name="Agent"), name="Story agent")
    run = start_run(workflow, {})
    sign_in(page, "alice")
    page.goto(f"/w/acme/runs/{run.id}/")
    row = page.locator("#step-s0")

    expect(row.locator(".step-partial")).to_contain_text("Once upon a time", timeout=40_000)
    turns = [t for t in event_types(run.id) if t == "AgentTurnCompleted"]
    assert turns == ["AgentTurnCompleted"]  # only the tool-calling turn is recorded yet
    assert "ToolCallCompleted" in event_types(run.id)
    page.reload()  # mid-turn: the words so far come with the page
    shown = page.locator("#step-s0 .step-partial").text_content(timeout=1_000) or ""
    assert shown.startswith("Once upon a time"), shown
    page.screenshot(path=screenshot_path("streaming-agent-turn"), full_page=True)

    expect(page.locator('#timeline [data-type="RunCompleted"]')).to_have_count(1, timeout=30_000)
    expect(page.locator("#step-s0 .step-partial")).to_have_count(0)
    log = event_rows(run.id)
    answer_turns = [p for _, t, p in log if t == "AgentTurnCompleted"]
    assert len(answer_turns) == 2 and answer_turns[1]["message"]["text"] == WORDS
    assert dom_seqs(page) == [seq for seq, _, _ in log]
    assert len(fake.requests) == 2 and all(r.stream for r in fake.requests)
