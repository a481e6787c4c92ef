"""Calls sent but never answered (cancelled in flight, timed out, their worker killed) are
charged what was reserved for them, never $0: in the ledger, in the run's cost and on the
usage page alike, so the budget cannot be walked past by starting and cancelling runs.
Real worker processes against the scripted provider."""

from decimal import Decimal

import pytest
from django.db.models import F
from django.urls import reverse
from django.utils import timezone

from tests.support.fake_llm import FakeLLM, ok, stall
from tests.support.live import (
    Live,
    event_rows,
    flush_own_redis,
    prepare_side_effects,
    run_status,
    wait_for,
)
from tests.support.workflows import FAST_RETRY, chain, publish
from vectorbea.budgets import ledger, usage
from vectorbea.budgets.guard import estimated_tokens, worst_case_usd
from vectorbea.budgets.models import Reservation, SpendLedger, WorkspaceLimits
from vectorbea.budgets.templatetags.budgets import money
from vectorbea.eventlog.models import RunSummary
from vectorbea.llm.pricing import cost_of
from vectorbea.runs.commands import cancel_run, start_run

MODEL = "gpt-4"
MAX_TOKENS = 100
PROMPT = "Hi"


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
        VECTORBEA_OPENAI_API_KEY="sk-test-unanswered-0123456789",
    )
    yield live
    live.stop_all()


def llm_config(**extra) -> dict:
    return {
        "provider": "openai",
        "model": MODEL,
        "prompt": PROMPT,
        "max_tokens": MAX_TOKENS,
        **extra,
    }


def fan_out(n: int) -> dict:
    """A start step, then n LLM steps in parallel."""
    steps = [{"id": "start", "kind": "noop", "config": {}}]
    steps += [
        {"id": f"ask{i}", "kind": "llm", "config": llm_config(), "retry": FAST_RETRY}
        for i in range(n)
    ]
    edges = [{"source": "start", "target": f"ask{i}"} for i in range(n)]
    return {"input_schema": {"type": "object"}, "steps": steps, "edges": edges}


def estimate() -> Decimal:
    """What is reserved for one call: its worst case, which an unanswered call costs."""
    return worst_case_usd(MODEL, estimated_tokens("", PROMPT), MAX_TOKENS)


def answered(input_tokens: int, output_tokens: int) -> Decimal:
    return Decimal(str(cost_of(MODEL, input_tokens, output_tokens).usd))


def charges(run_id) -> list[dict]:
    return [payload for _, kind, payload in event_rows(run_id) if kind == "CallCharged"]


def day_spent(workspace) -> tuple[Decimal, Decimal]:
    """Today's spent and reserved, summed over the day's stripes."""
    key = usage.day_key(usage.utc_today(timezone.now()))
    rows = SpendLedger.objects.filter(workspace=workspace, scope="day", key=key)
    return sum((r.spent_usd for r in rows), Decimal(0)), sum(
        (r.reserved_usd for r in rows), Decimal(0)
    )


def run_cost(run_id) -> Decimal:
    return RunSummary.objects.get(run_id=run_id).cost_usd


def finished(run_id) -> bool:
    return run_status(run_id) in ("completed", "failed", "needs_attention", "cancelled")


def test_calls_cancelled_in_flight_cost_their_estimate_and_the_cap_then_refuses_the_next_run(
    services, fake, acme, client, alice
):
    per_call = estimate()
    WorkspaceLimits.objects.create(workspace=acme, daily_cap_usd=3 * per_call)
    fake.default = stall(60)  # the provider takes the calls and is slow to answer
    services.scheduler()
    services.worker(threads=4)

    run = start_run(publish(acme, fan_out(3), name="Start and cancel"), {})
    wait_for(lambda: len(fake.requests) == 3, timeout=60)
    assert cancel_run(run.id, actor="alice")
    wait_for(lambda: not Reservation.objects.exists(), timeout=30)

    # Each abandoned call costs what was reserved for it: in the ledger...
    assert day_spent(acme) == (3 * per_call, 0)
    assert ledger.run_spent(run.id) == 3 * per_call
    # ...in the run's cost, from its log...
    assert run_cost(run.id) == 3 * per_call
    assert {(c["step_id"], c["attempt"], c["reason"]) for c in charges(run.id)} == {
        ("ask0", 1, "cancelled"),
        ("ask1", 1, "cancelled"),
        ("ask2", 1, "cancelled"),
    }
    assert all(c["usage"]["cost_usd"] == float(per_call) for c in charges(run.id))
    assert all(c["usage"]["cost_estimated"] for c in charges(run.id))
    assert run_status(run.id) == "cancelled"
    # ...and on the usage page: today's bar and the run's row.
    client.force_login(alice)
    html = client.get(reverse("usage", args=["acme"])).content.decode()
    today = usage.utc_today(timezone.now())
    assert f'data-day="{today:%Y-%m-%d}" data-spent="{3 * per_call:.6f}"' in html
    row = html[html.index(f'data-run="{run.id}"') :]
    assert money(3 * per_call) in row[: row.index("</tr>")]

    # The day's cap is spent that way: the next run's call is refused, never sent.
    fake.default = ok("too late", usage=(10, 5))
    refused = start_run(publish(acme, fan_out(1), name="After the cap"), {})
    wait_for(lambda: finished(refused.id), timeout=60)
    assert run_status(refused.id) == "needs_attention"
    [failed] = [p for _, kind, p in event_rows(refused.id) if kind == "StepFailed"]
    assert failed["error_class"] == "budget_exceeded"
    assert "daily budget" in failed["message"]
    assert len(fake.requests) == 3


def test_a_call_that_times_out_costs_its_estimate_in_the_ledger_and_the_run(services, fake, acme):
    fake.script(stall(5), ok("second try", usage=(10, 5)))
    services.scheduler()
    services.worker()

    definition = chain(1, "llm", llm_config(timeout_seconds=0.5), retry=FAST_RETRY)
    run = start_run(publish(acme, definition), {})
    wait_for(lambda: finished(run.id), timeout=60)

    assert run_status(run.id) == "completed"
    spent = estimate() + answered(10, 5)  # the timed-out call, then the answered one
    assert ledger.run_spent(run.id) == run_cost(run.id) == spent
    assert day_spent(acme) == (spent, 0)
    [charged] = charges(run.id)
    assert (charged["step_id"], charged["attempt"], charged["reason"]) == ("s0", 1, "timed_out")
    assert charged["usage"]["cost_usd"] == float(estimate())
    [failed] = [p for _, kind, p in event_rows(run.id) if kind == "StepFailed"]
    assert "did not answer in time" in failed["message"]


def test_a_killed_workers_reservation_is_charged_when_swept_not_released(services, fake, acme):
    fake.script(stall(60))  # the first call never comes back to its worker
    services.scheduler()
    worker = services.worker()
    run = start_run(publish(acme, chain(1, "llm", llm_config(), retry=FAST_RETRY)), {})
    wait_for(
        lambda: len(fake.requests) == 1 and Reservation.objects.filter(run_id=run.id).exists(),
        timeout=60,
    )

    services.kill(worker)
    # A reservation outlasts any call it holds for; let its time run out now.
    Reservation.objects.filter(run_id=run.id).update(
        expires_at=F("created_at") - timezone.timedelta(seconds=1)
    )
    wait_for(lambda: not Reservation.objects.exists(), timeout=30)

    assert ledger.run_spent(run.id) == run_cost(run.id) == estimate()
    assert day_spent(acme) == (estimate(), 0)
    [charged] = charges(run.id)
    assert (charged["step_id"], charged["attempt"], charged["reason"]) == ("s0", 1, "worker_lost")

    # Another worker makes the attempt again; its answer's real cost adds to the charge.
    services.worker()
    wait_for(lambda: finished(run.id), timeout=60)
    assert run_status(run.id) == "completed"
    spent = estimate() + answered(10, 5)  # the fake's default answer uses (10, 5) tokens
    assert ledger.run_spent(run.id) == run_cost(run.id) == spent
