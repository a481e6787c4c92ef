"""Hundreds of slow calls in flight on one worker process, and everything that holds for a
step holds for them: SIGKILL (each lost attempt recorded worker_lost, retried once, nothing
completed twice), cancel and the kill switch (every call cancelled at once: the provider
sees its connection closed; each charged its estimate; nothing starts after), SIGTERM
(each handed back within the grace period, then finished by another worker)."""

import signal
import time
from collections import Counter
from decimal import Decimal

import pytest

from tests.support.fake_llm import FakeLLM
from tests.support.live import (
    Live,
    event_rows,
    flush_own_redis,
    prepare_side_effects,
    run_status,
    wait_for,
)
from tests.support.workflows import FAST_RETRY, chain, publish
from vectorbea.budgets import killswitch, ledger
from vectorbea.budgets.guard import estimated_tokens, worst_case_usd
from vectorbea.eventlog.models import RunSummary
from vectorbea.runs.commands import cancel_run, start_run

IN_FLIGHT = 500
MODEL = "gpt-4o-mini"
MAX_TOKENS = 16


@pytest.fixture
def fake():
    with FakeLLM(delay_seconds=60) as server:  # every call waits until the test moves on
        yield server


@pytest.fixture
def live(transactional_db, fake):
    prepare_side_effects()
    flush_own_redis()
    services = Live(
        VECTORBEA_OPENAI_BASE_URL=fake.openai_url,
        VECTORBEA_OPENAI_API_KEY="sk-test-in-flight-0123456789",
        VECTORBEA_LEASE_SECONDS="4",
    )
    yield services
    services.stop_all()


def llm_workflow(workspace):
    config = {"provider": "openai", "model": MODEL, "prompt": "Hi", "max_tokens": MAX_TOKENS}
    return publish(workspace, chain(1, "llm", config, retry=FAST_RETRY, timeout_seconds=300))


def all_in_flight(fake, runs) -> list:
    wait_for(lambda: fake.in_flight >= len(runs), timeout=120, interval=0.2)
    return runs


def counts(run) -> Counter:
    return Counter(t for _, t, _ in event_rows(run.id))


def estimate() -> Decimal:
    return worst_case_usd(MODEL, estimated_tokens("", "Hi"), MAX_TOKENS)


def test_sigkill_with_hundreds_of_calls_in_flight_loses_no_run_and_repeats_none(live, fake, acme):
    workflow = llm_workflow(acme)
    worker = live.worker(processes=1, threads=4)
    runs = all_in_flight(fake, [start_run(workflow, {}) for _ in range(IN_FLIGHT)])
    assert fake.peak_in_flight >= IN_FLIGHT  # one process held them all, on 4 threads

    live.kill(worker)
    fake.delay_seconds = 0.05  # the provider answers the retries at once
    live.scheduler()
    live.worker(processes=1, threads=4)
    wait_for(lambda: all(run_status(r.id) == "completed" for r in runs), timeout=180, interval=0.5)

    for run in runs:
        rows = event_rows(run.id)
        failed = [p for _, t, p in rows if t == "StepFailed"]
        assert [(p["attempt"], p["error_class"]) for p in failed] == [(1, "worker_lost")]
        completed = [p for _, t, p in rows if t == "StepCompleted"]
        assert [p["attempt"] for p in completed] == [2]  # once, by the new worker


def test_cancel_stops_hundreds_of_calls_at_once_and_charges_each_its_estimate(live, fake, acme):
    workflow = llm_workflow(acme)
    live.worker(processes=1, threads=4)
    runs = all_in_flight(fake, [start_run(workflow, {}) for _ in range(IN_FLIGHT)])

    cancelled_at = time.monotonic()
    for run in runs:
        cancel_run(run.id, actor="alice", reason="enough")
    wait_for(lambda: fake.abandoned >= IN_FLIGHT, timeout=60, interval=0.2)
    closed_after = time.monotonic() - cancelled_at

    assert fake.in_flight == 0 and closed_after < 45  # cut off, not waited out (60 s)
    wait_for(lambda: all(counts(r)["CallCharged"] == 1 for r in runs), timeout=60)
    time.sleep(1)
    for run in runs:
        assert counts(run)["StepStarted"] == 1  # nothing started after the cancel
        assert ledger.run_spent(run.id) == estimate()  # the provider may have billed it
        assert RunSummary.objects.get(run=run).cost_usd == estimate()  # the run says so too


def test_the_kill_switch_stops_hundreds_of_calls_at_once(live, fake, acme):
    workflow = llm_workflow(acme)
    live.scheduler()
    live.worker(processes=1, threads=4)
    runs = all_in_flight(fake, [start_run(workflow, {}) for _ in range(IN_FLIGHT)])

    killswitch.stop_everything(acme.id, actor="alice", reason="runaway spend")
    wait_for(lambda: fake.abandoned >= IN_FLIGHT, timeout=60, interval=0.2)

    time.sleep(2)  # long enough for a wake-up or a retry to start something, were it able
    assert len(fake.requests) == IN_FLIGHT  # no call was made again
    for run in runs:
        assert counts(run)["StepStarted"] == 1 and counts(run)["StepInterrupted"] == 1
        assert run_status(run.id) == "paused"
    wait_for(lambda: all(ledger.run_spent(r.id) == estimate() for r in runs), timeout=60)


def test_sigterm_hands_back_hundreds_of_calls_within_the_grace_period(live, fake, acme):
    workflow = llm_workflow(acme)
    live.env["VECTORBEA_SHUTDOWN_GRACE_SECONDS"] = "2"
    live.scheduler()
    stopping = live.worker(processes=1, threads=4)
    runs = all_in_flight(fake, [start_run(workflow, {}) for _ in range(IN_FLIGHT)])

    stopping.send_signal(signal.SIGTERM)  # the main process only, as a deploy does
    sent = time.monotonic()
    stopping.wait(timeout=60)
    exited_after = time.monotonic() - sent
    fake.delay_seconds = 0.05
    live.worker(processes=1, threads=4)
    wait_for(lambda: all(run_status(r.id) == "completed" for r in runs), timeout=180, interval=0.5)

    assert exited_after < 20  # the grace period and the hand-backs, not the 60 s calls
    for run in runs:
        rows = event_rows(run.id)
        assert not [p for _, t, p in rows if t == "StepFailed"]  # a hand-back is no failure
        (interrupted,) = [p for _, t, p in rows if t == "StepInterrupted"]
        assert (interrupted["attempt"], interrupted["actor"]) == (1, "worker shutdown")
        completed = [p for _, t, p in rows if t == "StepCompleted"]
        assert [p["attempt"] for p in completed] == [2]
