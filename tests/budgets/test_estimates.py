"""Cost estimates: the worst case from prompts, max_tokens and retry policies; the typical
cost from past runs; and what a run still may cost while it goes on."""

from decimal import Decimal

import pytest
from django.utils import timezone

from tests.support.workflows import chain, publish
from vectorbea.budgets import estimates
from vectorbea.budgets.estimates import estimate_run, estimate_to_finish
from vectorbea.eventlog.models import RunSummary
from vectorbea.llm.pricing import cost_of
from vectorbea.runs.commands import start_run

pytestmark = pytest.mark.django_db

D = Decimal
LLM = {"provider": "openai", "model": "gpt-4o-mini", "prompt": "x" * 400, "max_tokens": 1000}
THREE_ATTEMPTS = {"maximum_attempts": 3}


def llm_workflow(acme, steps: int = 2, config: dict | None = None, retry=THREE_ATTEMPTS):
    definition = chain(steps, kind="llm", config=config or LLM, retry=retry)
    return publish(acme, definition, name="Summarise")


def finish(run_id, cost: str, minutes_ago: int = 0) -> None:
    """Test data for the read side: a completed run that cost `cost`."""
    at = timezone.now() - timezone.timedelta(minutes=minutes_ago)
    RunSummary.objects.filter(run_id=run_id).update(
        status="completed", cost_usd=D(cost), finished_at=at
    )


def test_input_tokens_are_a_quarter_of_the_characters_rounded_up_plus_a_margin():
    # 401 characters: 101 tokens (rounded up); +25 % rounded up: 127; + 256 for framing.
    assert estimates.input_tokens({"system": "s", "prompt": "x" * 400}) == 127 + 256
    assert estimates.input_tokens({"prompt": ""}) == 256


def test_max_tokens_falls_back_to_the_step_default_when_missing_or_templated():
    assert estimates.max_tokens({"max_tokens": 50}) == 50
    assert estimates.max_tokens({}) == 1024
    assert estimates.max_tokens({"max_tokens": "{{ input.n }}"}) == 1024


def test_worst_case_is_every_attempt_of_every_llm_step_with_the_longest_answer(acme):
    workflow = llm_workflow(acme)
    # 400 characters: 100 tokens, 125 with the margin, + 256 = 381 input tokens.
    per_call = D(str(cost_of("gpt-4o-mini", 381, 1000).usd))
    assert per_call == D("0.00065715")  # 381 × $0.15/M + 1000 × $0.60/M

    estimate = estimate_run(workflow.latest_version())

    assert estimate.worst_usd == D("0.003943")  # 2 steps × 3 attempts × 0.00065715, rounded up
    assert estimate.worst_usd >= per_call * 6
    # No past runs: each step once, with a quarter of max_tokens as its answer.
    typical_call = D(str(cost_of("gpt-4o-mini", 381, 250).usd))
    assert estimate.typical_usd == (typical_call * 2).quantize(D("0.000001"))
    assert estimate.basis == "from the prompts and answer limits of 2 LLM steps"
    assert estimate.past_runs == 0 and not estimate.unlisted_model


def test_non_llm_steps_cost_nothing_and_the_default_retry_policy_counts(acme):
    steps = chain(1, kind="llm", config=LLM)["steps"] + chain(1)["steps"]
    steps[1]["id"] = "noop"
    definition = {"input_schema": {"type": "object"}, "steps": steps, "edges": []}
    version = publish(acme, definition).latest_version()

    estimate = estimate_run(version)

    assert estimate.worst_usd == D("0.001972")  # 3 attempts (the default) × 0.00065715
    assert "1 LLM step" in estimate.basis


def test_a_workflow_without_llm_steps_is_free(acme):
    estimate = estimate_run(publish(acme, chain(3)).latest_version())
    assert estimate.worst_usd == estimate.typical_usd == 0
    assert estimate.basis == "this workflow has no LLM steps"


def test_an_unlisted_model_is_priced_at_the_dearest_rates_and_says_so(acme):
    workflow = llm_workflow(acme, 1, {**LLM, "model": "my-local-llama"}, {"maximum_attempts": 1})
    estimate = estimate_run(workflow.latest_version())
    assert estimate.unlisted_model
    assert estimate.worst_usd == D(str(cost_of("my-local-llama", 381, 1000).usd)).quantize(
        D("0.000001"), rounding="ROUND_CEILING"
    )


def test_typical_is_the_median_of_the_last_completed_runs_once_there_are_three(acme):
    workflow = llm_workflow(acme)
    version = workflow.latest_version()
    runs = [start_run(workflow, {}) for _ in range(4)]
    finish(runs[0].id, "0.010")
    finish(runs[1].id, "0.030")
    assert estimate_run(version).past_runs == 0  # two are not enough

    finish(runs[2].id, "0.020")
    estimate = estimate_run(version)
    assert (estimate.typical_usd, estimate.past_runs) == (D("0.020000"), 3)
    assert estimate.basis == "based on 3 past runs"
    assert estimate.worst_usd == D("0.030000")  # at least the dearest past run

    RunSummary.objects.filter(run_id=runs[3].id).update(status="failed", cost_usd=D("9"))
    assert estimate_run(version).typical_usd == D("0.020000")  # only completed runs count


def test_a_past_run_dearer_than_the_worst_case_raises_it(acme):
    workflow = llm_workflow(acme)
    runs = [start_run(workflow, {}) for _ in range(3)]
    for run, cost in zip(runs, ["0.001", "0.002", "0.25"], strict=True):
        finish(run.id, cost)  # the last one had a very long input
    estimate = estimate_run(workflow.latest_version())
    assert (estimate.typical_usd, estimate.worst_usd) == (D("0.002000"), D("0.250000"))


def test_typical_uses_only_the_last_fifty_completed_runs(acme, monkeypatch):
    workflow = llm_workflow(acme)
    runs = [start_run(workflow, {}) for _ in range(5)]
    for minutes_ago, (run, cost) in enumerate(zip(runs, ["1", "1", "5", "5", "5"], strict=True)):
        finish(run.id, cost, minutes_ago=minutes_ago)
    monkeypatch.setattr(estimates, "PAST_RUNS", 3)
    # The three newest finished runs cost 1, 1 and 5.
    assert estimate_run(workflow.latest_version()).typical_usd == D("1.000000")


def test_to_finish_adds_the_llm_steps_still_to_run_to_what_was_spent(acme):
    workflow = llm_workflow(acme)
    run = start_run(workflow, {})
    summary = RunSummary.objects.get(run=run)
    per_call = D("0.00065715")

    fresh = estimate_to_finish(run, summary)
    assert fresh.worst_usd == (per_call * 6).quantize(D("0.000001"), rounding="ROUND_CEILING")

    summary.cost_usd = D("0.5")
    summary.status = "retrying"
    summary.steps = {
        "s0": {"status": "completed", "attempt": 2},
        "s1": {"status": "retry_scheduled", "attempt": 1},
    }
    later = estimate_to_finish(run, summary)
    # s0 is done; s1 failed once and may try twice more.
    assert later.worst_usd == D("0.5") + (per_call * 2).quantize(D("0.000001"), "ROUND_CEILING")
    assert later.typical_usd > D("0.5")
    assert later.basis == "spent so far and 1 LLM step still to run"


def test_the_attempt_under_way_counts_and_a_finished_run_costs_what_it_cost(acme):
    workflow = llm_workflow(acme, 1)
    run = start_run(workflow, {})
    summary = RunSummary.objects.get(run=run)
    summary.steps = {"s0": {"status": "running", "attempt": 3}}
    assert estimate_to_finish(run, summary).worst_usd == D("0.000658")  # the last attempt

    summary.status, summary.cost_usd = "completed", D("0.25")
    done = estimate_to_finish(run, summary)
    assert done.worst_usd == done.typical_usd == D("0.25")
