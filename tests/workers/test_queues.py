"""A step kind's own queue: LLM calls go to "llm", so operators can size a pool for them
apart from quick steps; inline continuation never sneaks one past its pool."""

import pytest

from tests.support.fake_llm import FakeLLM
from tests.support.live import (
    BIN,
    Live,
    event_types,
    flush_own_redis,
    prepare_side_effects,
    run_status,
    wait_for,
)
from tests.support.workflows import chain, publish
from vectorbea.runs.commands import start_run


@pytest.fixture
def fake():
    with FakeLLM() as server:
        yield server


def test_an_llm_step_runs_only_on_workers_of_the_llm_queue(transactional_db, acme, fake):
    prepare_side_effects()
    flush_own_redis()
    live = Live(VECTORBEA_OPENAI_BASE_URL=fake.openai_url, VECTORBEA_OPENAI_API_KEY="sk-q-0123456")
    definition = chain(3)
    definition["steps"][1] = {
        "id": "s1",
        "kind": "llm",
        "config": {"provider": "openai", "model": "gpt-4o-mini", "prompt": "Hi"},
    }
    try:
        live.scheduler()
        live._spawn("quick", [str(BIN / "dramatiq"), "workers.actors", "--queues", "steps", "runs"])
        run = start_run(publish(acme, definition), {})
        wait_for(lambda: "StepCompleted" in event_types(run.id), timeout=30)  # s0, quick pool
        wait_for(lambda: event_types(run.id).count("StepStarted") == 2, timeout=30)
        with pytest.raises(AssertionError):  # s1 waits for a worker of its queue
            wait_for(lambda: fake.requests, timeout=3)

        live._spawn("llm", [str(BIN / "dramatiq"), "workers.actors", "--queues", "llm"])
        wait_for(lambda: run_status(run.id) == "completed", timeout=60)
    finally:
        live.stop_all()

    assert len(fake.requests) == 1
    assert event_types(run.id).count("StepCompleted") == 3
