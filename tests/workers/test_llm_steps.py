"""LLM steps on real worker processes: the engine, not the SDK, retries a provider's
failures, honours Retry-After, records what each answer cost, and never records the key.

The scripted fake provider runs in this test process; the workers reach it through
VECTORBEA_OPENAI_BASE_URL / VECTORBEA_ANTHROPIC_BASE_URL in their environment."""

import json
import os

import pytest

from tests.support.fake_llm import FakeLLM, ok, ok_json, stall, status
from tests.support.live import (
    Live,
    event_rows,
    event_rows_at,
    flush_own_redis,
    prepare_side_effects,
    run_status,
    wait_for,
)
from tests.support.workflows import FAST_RETRY, chain, publish
from vectorbea.eventlog.models import RunSummary
from vectorbea.llm.pricing import FALLBACK
from vectorbea.runs.commands import start_run

KEY = "sk-live-test-KEY-0123456789abcdefXYZ"


@pytest.fixture
def fake():
    with FakeLLM() as server:
        yield server


@pytest.fixture
def live(transactional_db, fake):
    """Workers and a scheduler that call the fake provider with a known key."""
    prepare_side_effects()
    flush_own_redis()
    services = Live(
        VECTORBEA_OPENAI_BASE_URL=fake.openai_url,
        VECTORBEA_ANTHROPIC_BASE_URL=fake.anthropic_url,
        VECTORBEA_OPENAI_API_KEY=KEY,
        VECTORBEA_ANTHROPIC_API_KEY=KEY,
    )
    services.scheduler()
    services.worker()
    yield services
    services.stop_all()


def llm_run(acme, provider="openai", **config):
    step_config = {"provider": provider, "model": "gpt-4o-mini", "prompt": "Hi", **config}
    workflow = publish(acme, chain(1, "llm", step_config, retry=FAST_RETRY))
    run = start_run(workflow, {})
    wait_for(lambda: run_status(run.id) in ("completed", "failed", "needs_attention"), timeout=60)
    return run


def steps(run_id):
    shown = ("RetryScheduled", "CorrectionAttempted", "RunNeedsAttention")
    return [(t, p) for _, t, p in event_rows(run_id) if t.startswith("Step") or t in shown]


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_an_overloaded_provider_is_retried_by_the_engine_then_completes(live, acme, fake, provider):
    fake.script(status(529), ok("Hello", usage=(1000, 200), model="gpt-4o-mini-2024-07-18"))
    run = llm_run(acme, provider)
    assert run_status(run.id) == "completed"
    assert [t for t, _ in steps(run.id)] == [
        "StepStarted",
        "StepFailed",
        "RetryScheduled",
        "StepStarted",
        "StepCompleted",
    ]
    failed = next(p for t, p in steps(run.id) if t == "StepFailed")
    assert failed["error_class"] == "transient" and "529" in failed["message"]
    completed = next(p for t, p in steps(run.id) if t == "StepCompleted")
    assert completed["attempt"] == 2
    assert completed["output"]["text"] == "Hello"
    assert completed["usage"] == {
        "provider": provider,
        "model": "gpt-4o-mini-2024-07-18",
        "input_tokens": 1000,
        "output_tokens": 200,
        "cost_usd": pytest.approx((1000 * 0.15 + 200 * 0.60) / 1e6),
        "cost_estimated": False,
    }
    assert len(fake.requests) == 2  # one per attempt: the SDK itself never retried


def test_a_rate_limited_call_waits_as_long_as_retry_after_says(live, acme, fake):
    fake.script(status(429, headers={"Retry-After": "1"}), ok("done"))
    run = llm_run(acme)
    assert run_status(run.id) == "completed"
    retry = next(p for t, p in steps(run.id) if t == "RetryScheduled")
    assert retry["reason"] == "rate_limited"
    assert retry["backoff_seconds"] == pytest.approx(1.0)  # not FAST_RETRY's 0.1
    first, second = fake.requests
    assert second.at - first.at >= 0.9


def test_a_rejected_key_needs_attention_at_once_without_retrying_or_recording_the_key(
    live, acme, fake
):
    echo = f"Incorrect API key provided: {KEY}. You can find your API key at example.com"
    fake.script(status(401, body={"error": {"message": echo, "type": "invalid_request_error"}}))
    run = llm_run(acme)
    assert run_status(run.id) == "needs_attention"
    assert [t for t, _ in steps(run.id)] == ["StepStarted", "StepFailed", "RunNeedsAttention"]
    failed = steps(run.id)[1][1]
    assert failed["error_class"] == "permanent"
    assert "HTTP 401" in failed["message"] and "[redacted]" in failed["message"]
    assert len(fake.requests) == 1
    # The key is nowhere in the log: not in any event, output or message.
    everything = json.dumps(event_rows(run.id))
    assert KEY not in everything and KEY[:12] not in everything and KEY[-8:] not in everything
    # ...nor in what the worker processes wrote.
    logs = list(live.logs.glob(f"*-{os.getpid()}-*.log"))
    assert logs
    for log in logs:
        assert KEY not in log.read_text(errors="replace")


def test_a_provider_that_stalls_past_the_timeout_is_transient(live, acme, fake):
    fake.script(stall(3), ok("after the stall"))
    run = llm_run(acme, timeout_seconds=0.5)
    assert run_status(run.id) == "completed"
    failed = next(p for t, p in steps(run.id) if t == "StepFailed")
    assert failed["error_class"] == "transient"
    assert "did not answer in time" in failed["message"]
    completed = next(p for t, p in steps(run.id) if t == "StepCompleted")
    assert completed["output"]["text"] == "after the stall"


def test_an_unknown_model_records_an_estimated_cost(live, acme, fake):
    fake.script(ok("hi", usage=(100, 100), model="llama3.2:3b"))
    run = llm_run(acme, model="llama3.2:3b")
    assert run_status(run.id) == "completed"
    usage = next(p for t, p in steps(run.id) if t == "StepCompleted")["usage"]
    assert usage["cost_estimated"] is True
    assert usage["cost_usd"] == pytest.approx(
        (100 * FALLBACK.input_per_million + 100 * FALLBACK.output_per_million) / 1e6
    )


def test_an_answer_that_fails_its_schema_is_corrected_once_and_completes(live, acme, fake):
    fake.script(ok("{label: seven", usage=(40, 10)), ok_json({"label": "seven"}, usage=(60, 5)))
    schema = {"type": "object", "properties": {"label": {"type": "string"}}}
    run = llm_run(acme, output_schema=schema)

    assert run_status(run.id) == "completed"
    assert [t for t, _ in steps(run.id)] == [
        "StepStarted",
        "StepFailed",
        "CorrectionAttempted",
        "StepStarted",
        "StepCompleted",
    ]
    failed = next(p for t, p in steps(run.id) if t == "StepFailed")
    assert failed["error_class"] == "invalid_output"
    correction = next(p for t, p in steps(run.id) if t == "CorrectionAttempted")
    assert (correction["correction"], correction["of"]) == (1, 2)
    assert correction["answer"] == "{label: seven"
    # The second request shows the model its answer and the exact error, after the prompt.
    messages = fake.requests[1].body["messages"]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[2]["content"] == "{label: seven"
    assert "The model's answer is not JSON" in messages[3]["content"]
    assert "Expecting property name enclosed in double quotes" in messages[3]["content"]
    completed = next(p for t, p in steps(run.id) if t == "StepCompleted")
    assert completed["output"]["json"] == {"label": "seven"}
    # Both calls are paid for: the refused answer's cost stays with the step and the run.
    assert (failed["usage"]["input_tokens"], completed["usage"]["input_tokens"]) == (40, 60)
    both = failed["usage"]["cost_usd"] + completed["usage"]["cost_usd"]
    assert float(RunSummary.objects.get(run_id=run.id).cost_usd) == pytest.approx(both, abs=1e-6)


def test_an_answer_that_never_fits_stops_after_its_corrections_and_needs_attention(
    live, acme, fake
):
    fake.script(*[ok_json({"label": 7}, usage=(40, 10))] * 3)
    schema = {"type": "object", "properties": {"label": {"type": "string"}}}
    run = llm_run(acme, output_schema=schema)

    assert run_status(run.id) == "needs_attention"
    kinds = [t for t, _ in steps(run.id)]
    assert kinds.count("CorrectionAttempted") == 2 and kinds.count("StepStarted") == 3
    assert kinds[-1] == "RunNeedsAttention"
    assert len(fake.requests) == 3
    assert "label: 7 is not of type 'string'" in fake.requests[2].body["messages"][-1]["content"]
    stopped = next(p for t, p in steps(run.id) if t == "RunNeedsAttention")
    assert "correct its answer 2 times" in stopped["summary"]
    failed = next(p for t, p in steps(run.id) if t == "StepFailed")
    assert failed["error_class"] == "invalid_output"
    assert "label: 7 is not of type 'string'" in failed["message"]
    assert failed["usage"]["input_tokens"] == 40


def test_the_steps_own_timeout_abandons_a_stalled_call_and_retries(live, acme, fake):
    """The step's timeout (not only the LLM request's): an attempt running longer fails as
    transient at the timeout and is retried, as the builder says."""
    fake.script(stall(12), ok("on time"))
    config = {"provider": "openai", "model": "gpt-4o-mini", "prompt": "Hi", "timeout_seconds": 60}
    workflow = publish(acme, chain(1, "llm", config, retry=FAST_RETRY, timeout_seconds=2))
    live.wait_until_booted()  # the step's 2 s are timed from its start
    run = start_run(workflow, {})
    wait_for(lambda: run_status(run.id) == "completed", timeout=30)

    rows = event_rows_at(run.id)
    (started, failed) = [(at, p) for _, t, p, at in rows if t in ("StepStarted", "StepFailed")][:2]
    assert failed[1]["error_class"] == "transient" and "timeout (2 seconds)" in failed[1]["message"]
    assert (failed[0] - started[0]).total_seconds() < 10  # abandoned near 2 s, not after 12 s
    completed = [p for _, t, p, _ in rows if t == "StepCompleted"]
    assert completed[0]["attempt"] == 2 and completed[0]["output"]["text"] == "on time"


def test_the_steps_timeout_stops_waiting_for_a_slow_tool(live, acme):
    tool = {"tool": "record", "args": {"sleep": 10}}
    workflow = publish(
        acme, chain(1, "tool", tool, retry={"maximum_attempts": 0}, timeout_seconds=2)
    )
    live.wait_until_booted()  # the step's 2 s are timed from its start
    run = start_run(workflow, {})
    wait_for(lambda: run_status(run.id) in ("failed", "needs_attention"), timeout=30)

    rows = event_rows_at(run.id)
    (started,) = [at for _, t, _, at in rows if t == "StepStarted"]
    (failed,) = [(at, p) for _, t, p, at in rows if t == "StepFailed"]
    assert failed[1]["error_class"] == "transient" and "timeout (2 seconds)" in failed[1]["message"]
    assert (failed[0] - started).total_seconds() < 9  # not after the tool's 10 s
