"""Budgets, runaway guards, rate limits and concurrency limits, enforced by real worker
processes against the scripted provider."""

from collections import Counter
from decimal import Decimal

import pytest
from django.db import connection

from tests.support.fake_llm import FakeLLM, ok
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
from vectorbea.budgets.guard import estimated_tokens, worst_case_usd
from vectorbea.budgets.models import SpendLedger, WorkspaceLimits
from vectorbea.eventlog.models import RunSummary
from vectorbea.runs.commands import start_run

MODEL = "gpt-4"  # a dear model: whole-cent figures, nothing lost to rounding
MAX_TOKENS = 100


@pytest.fixture
def fake():
    with FakeLLM() as server:
        yield server


@pytest.fixture
def services(transactional_db, fake):
    prepare_side_effects()
    flush_own_redis()
    live = Live(
        VECTORBEA_OPENAI_BASE_URL=fake.openai_url,
        VECTORBEA_OPENAI_API_KEY="sk-test-budget-0123456789",
        VECTORBEA_RATE_LIMIT_WINDOW_SECONDS="5",
        # Dozens of threads on two busy cores: leases long enough that no attempt is taken
        # for lost while its worker is merely slow (lost leases have their own tests).
        VECTORBEA_LEASE_SECONDS="15",
    )
    yield live
    live.stop_all()


def llm_step(step_id: str) -> dict:
    config = {"provider": "openai", "model": MODEL, "prompt": "Hi", "max_tokens": MAX_TOKENS}
    return {"id": step_id, "kind": "llm", "config": config, "retry": FAST_RETRY}


def fan_out(n: int) -> dict:
    """A start step, then n LLM steps in parallel."""
    steps = [{"id": "start", "kind": "noop", "config": {}}]
    steps += [llm_step(f"ask{i}") for i in range(n)]
    edges = [{"source": "start", "target": f"ask{i}"} for i in range(n)]
    return {"input_schema": {"type": "object"}, "steps": steps, "edges": edges}


def per_call() -> tuple[int, Decimal]:
    """The prompt's estimated tokens and the worst case reserved per call; the fake answers
    with exactly that usage, so a call costs what was reserved for it."""
    tokens = estimated_tokens("", "Hi")
    return tokens, worst_case_usd(MODEL, tokens, MAX_TOKENS)


def finished(run_id) -> bool:
    return run_status(run_id) in ("completed", "failed", "needs_attention")


def test_parallel_calls_across_two_workers_never_spend_past_the_budget(services, fake, acme):
    tokens, cost = per_call()
    fake.default = ok("fine", usage=(tokens, MAX_TOKENS))
    WorkspaceLimits.objects.create(workspace=acme, run_cap_usd=7 * cost)
    services.scheduler()
    services.worker(threads=4)
    services.worker(threads=4)

    run = start_run(publish(acme, fan_out(20)), {})
    wait_for(
        lambda: finished(run.id) and not RunSummary.objects.get(run=run).current_steps,
        timeout=90,
    )

    rows = event_rows(run.id)
    charged = [p for _, t, p in rows if t == "StepCompleted" and p["step_id"] != "start"]
    refused = [p for _, t, p in rows if t == "StepFailed"]
    assert 7 <= len(charged) <= 8  # at most one call's worst case over
    assert len(fake.requests) == len(charged)
    assert {p["error_class"] for p in refused} == {"budget_exceeded"}
    assert len(charged) + len(refused) == 20
    assert "of its $" in refused[0]["message"] and "budget" in refused[0]["message"]
    ledger = SpendLedger.objects.get(workspace=acme, scope="run", key=str(run.id))
    assert ledger.spent_usd == len(charged) * cost <= 8 * cost
    assert ledger.reserved_usd == 0
    assert run_status(run.id) == "needs_attention"  # the default policy: a person decides
    summary = RunSummary.objects.get(run=run)
    assert "budget" in summary.error


def test_a_step_that_always_fails_stops_at_max_attempts_and_its_cost_counts(services, acme):
    WorkspaceLimits.objects.create(workspace=acme, max_attempts_per_step=3)
    definition = chain(
        1,
        "tool",
        {"tool": "with_usage", "args": {"fail": True, "error_class": "transient"}},
        retry={**FAST_RETRY, "maximum_attempts": 50},
    )
    services.scheduler()
    services.worker()

    run = start_run(publish(acme, definition), {})
    wait_for(lambda: finished(run.id), timeout=60)

    types = Counter(t for _, t, _ in event_rows(run.id))
    assert types["StepStarted"] == 3 and types["StepFailed"] == 3
    assert run_status(run.id) == "needs_attention"
    summary = RunSummary.objects.get(run=run)
    assert "at most 3 failed attempts per step" in summary.error
    assert summary.cost_usd == Decimal("0.0012")  # 3 × 0.0004: failed attempts are paid for


def test_a_workflow_that_loops_forever_is_stopped_by_max_steps(services, acme):
    WorkspaceLimits.objects.create(workspace=acme, max_steps_per_run=30)
    definition = {
        "input_schema": {"type": "object"},
        "steps": [
            {"id": "work", "kind": "noop", "config": {}},
            {
                "id": "again",
                "kind": "branch",
                "config": {
                    "conditions": [{"port": "again", "when": "true"}],
                    "default_port": "done",
                },
            },
            {"id": "done", "kind": "noop", "config": {}},
        ],
        "edges": [
            {"source": "work", "target": "again"},
            {"source": "again", "target": "work", "port": "again", "loop": True},
            {"source": "again", "target": "done", "port": "done"},
        ],
    }
    services.worker()

    run = start_run(publish(acme, definition), {})
    wait_for(lambda: finished(run.id), timeout=60)

    assert run_status(run.id) == "failed"
    rows = event_rows(run.id)
    assert [t for _, t, _ in rows].count("StepStarted") == 30
    assert [t for _, t, _ in rows].count("LoopRestarted") == 14
    (failed,) = [p for _, t, p in rows if t == "RunFailed"]
    assert failed["reason"].startswith("Stopped by the runaway guard: the run has started 30")


def test_a_rate_limit_admits_exactly_its_quota_in_a_burst_and_the_rest_wait(services, fake, acme):
    WorkspaceLimits.objects.create(workspace=acme, requests_per_minute=10)
    services.scheduler()
    services.worker(threads=8)
    services.worker(threads=8)
    window = 5.0  # VECTORBEA_RATE_LIMIT_WINDOW_SECONDS for these workers

    calls = 40
    run = start_run(publish(acme, fan_out(calls)), {})
    wait_for(lambda: finished(run.id), timeout=120)

    assert run_status(run.id) == "completed"
    assert len(fake.requests) == calls
    rows = event_rows(run.id)
    assert not [p for _, t, p in rows if t == "StepFailed"]  # waiting is not failing
    # The burst: every step's first outcome falls within one window; exactly 10 of them
    # are StepCompleted, the other 30 StepDeferred.
    outcomes = [
        (t, p["step_id"], at)
        for _, t, p, at in event_rows_at(run.id)
        if t in ("StepCompleted", "StepDeferred") and p["step_id"] != "start"
    ]
    firsts = list({step_id: (t, step_id, at) for t, step_id, at in reversed(outcomes)}.values())
    firsts.sort(key=lambda outcome: outcome[2])
    assert len(firsts) == calls
    assert (firsts[-1][2] - firsts[0][2]).total_seconds() < window
    assert sum(1 for t, _, _ in firsts if t == "StepCompleted") == 10
    deferred = [p for _, t, p in rows if t == "StepDeferred"]
    assert {p["reason"] for p in deferred} == {"rate_limited"}
    assert "rate limit for openai (10 requests a minute)" in deferred[0]["message"]
    # Waiting is not trying: a deferred attempt is made again under its own number.
    started = [p for _, t, p in rows if t == "StepStarted" and p["step_id"] != "start"]
    assert {p["attempt"] for p in started} == {1}
    assert RunSummary.objects.get(run=run).attempts == calls + 1
    # And the rate held all along: 40 calls at 10 a window are spread over 3 more windows
    # (at the provider, a call lands a little after the limiter admits it: some slack).
    arrivals = sorted(request.at for request in fake.requests)
    assert arrivals[-1] - arrivals[0] >= 2 * window


def test_a_concurrency_limit_lets_only_so_many_runs_go_at_once(services, acme):
    WorkspaceLimits.objects.create(workspace=acme, max_concurrent_runs=2)
    workflow = publish(acme, chain(3, "tool", {"tool": "record", "args": {"sleep": 0.3}}))
    services.worker(threads=8)  # no scheduler: only a run that ends can admit a queued one

    runs = [start_run(workflow, {}) for _ in range(5)]
    wait_for(lambda: all(run_status(r.id) == "completed" for r in runs), timeout=90)

    # Replay the side effects in the order they happened: never more than 2 runs between
    # their first step's start and their last step's end.
    with connection.cursor() as cursor:
        cursor.execute("SELECT run_id, step_id, phase FROM test_side_effect ORDER BY id")
        effects = cursor.fetchall()
    going, most = set(), 0
    for run_id, step_id, phase in effects:
        if step_id == "s0" and phase == "start":
            going.add(run_id)
        most = max(most, len(going))
        if step_id == "s2" and phase == "end":
            going.discard(run_id)
    assert most == 2
    # Waiting for a place is a wait, not an attempt: each queued run waited once and made
    # one attempt per step; with no scheduler to look, each was admitted by a run's end.
    queued = [r for r in runs if "RunQueued" in [t for _, t, _ in event_rows(r.id)]]
    assert len(queued) == 3
    for run in runs:
        rows = event_rows_at(run.id)
        assert [t for _, t, _, _ in rows].count("RunQueued") <= 1
        assert sorted(p["step_id"] for _, t, p, _ in rows if t == "StepStarted") == [
            "s0",
            "s1",
            "s2",
        ]
        assert {p["attempt"] for _, t, p, _ in rows if t == "StepStarted"} == {1}
        assert RunSummary.objects.get(run=run).attempts == 3
