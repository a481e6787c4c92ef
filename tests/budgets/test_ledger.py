"""Budget reservations: admission, refusals in plain words, settling, charging calls whose
answer was never read (in the ledger and in the run's log at once), thresholds given once,
the sweeper, and the overspend bound under concurrency across threads and processes.
Real Postgres; threads each have their own connection."""

import threading
import time
import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.db.models import F
from django.utils import timezone

from tests.budgets import in_processes
from tests.support.workflows import chain, publish
from vectorbea.budgets import ledger
from vectorbea.budgets.ledger import Caps, Held, Refused
from vectorbea.budgets.models import Reservation, SpendLedger, WorkflowLimits, WorkspaceLimits
from vectorbea.budgets.usage import current_spend
from vectorbea.engine import CallCharged
from vectorbea.eventlog import store
from vectorbea.eventlog.models import RunSummary, StepLease
from vectorbea.runs.commands import start_run

D = Decimal
NO_CAPS = Caps(run=None, day=None, month=None, soft_percent=80)


def run_cap(cap: str, soft_percent: int = 80) -> Caps:
    return Caps(run=D(cap), day=None, month=None, soft_percent=soft_percent)


def row(workspace, scope: str, key: str) -> SpendLedger:
    return SpendLedger.objects.get(workspace=workspace, scope=scope, key=key)


def amounts(workspace, scope: str, key: str) -> tuple[Decimal, Decimal]:
    ledger_row = row(workspace, scope, key)
    return ledger_row.spent_usd, ledger_row.reserved_usd


def today_and_month() -> tuple[str, str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD'), "
            "to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM')"
        )
        return cursor.fetchone()


def spend(workspace, run_id, amount: str, caps: Caps, actual: str | None = None):
    held = ledger.reserve(workspace.id, run_id, "s0", 1, D(amount), caps)
    assert isinstance(held, Held), held
    return ledger.settle(held.reservation_id, D(actual or amount), caps)


def test_it_admits_calls_while_the_run_has_headroom_then_refuses(acme):
    caps = run_cap("0.07")
    run_id = uuid.uuid4()
    spend(acme, run_id, "0.03", caps)
    spend(acme, run_id, "0.03", caps)
    spend(acme, run_id, "0.03", caps, actual="0.01")  # 0.06 < 0.07: admitted

    refused = ledger.reserve(acme.id, run_id, "s1", 1, D("0.03"), caps)

    assert refused == Refused(
        scope="run",
        cap=D("0.07"),
        spent=D("0.07"),
        reserved=D(0),
        pending=False,
        message="This run has spent $0.0700 of its $0.0700 budget.",
    )
    assert ledger.run_spent(run_id) == D("0.07")
    assert row(acme, "run", str(run_id)).reserved_usd == 0


def test_it_says_the_refusal_is_pending_while_calls_in_flight_hold_the_rest(acme):
    caps = Caps(run=None, day=D("5.00"), month=None, soft_percent=80)
    spend(acme, uuid.uuid4(), "4.10", caps)
    in_flight = ledger.reserve(acme.id, uuid.uuid4(), "s0", 1, D("0.90"), caps)
    assert isinstance(in_flight, Held)

    refused = ledger.reserve(acme.id, uuid.uuid4(), "s0", 1, D("0.01"), caps)

    assert isinstance(refused, Refused)
    assert (refused.scope, refused.pending) == ("day", True)
    assert (refused.spent, refused.reserved) == (D("4.10"), D("0.90"))
    assert refused.message == (
        "The workspace has spent $4.10 of its $5.00 daily budget; "
        "other calls in flight hold the rest."
    )

    ledger.release(in_flight.reservation_id)
    assert isinstance(ledger.reserve(acme.id, uuid.uuid4(), "s0", 1, D("0.01"), caps), Held)


def test_a_refusal_holds_nothing_on_any_row(acme):
    run_id = uuid.uuid4()
    day, month = today_and_month()
    spend(acme, run_id, "12.00", NO_CAPS)
    caps = Caps(run=D(100), day=D(100), month=D("12.00"), soft_percent=80)

    refused = ledger.reserve(acme.id, run_id, "s1", 1, D("1.00"), caps)

    assert isinstance(refused, Refused)
    assert refused.scope == "month"
    assert refused.message == "The workspace has spent $12.00 of its $12.00 monthly budget."
    rows = [("run", str(run_id)), ("day", day), ("month", month)]
    assert [row(acme, scope, key).reserved_usd for scope, key in rows] == [0, 0, 0]
    assert not Reservation.objects.exists()


def test_a_reservation_holds_on_all_three_rows_until_it_settles(acme):
    run_id = uuid.uuid4()
    day, month = today_and_month()

    held = ledger.reserve(acme.id, run_id, "s0", 2, D("0.50"), NO_CAPS)

    assert isinstance(held, Held)
    reservation = Reservation.objects.get(pk=held.reservation_id)
    assert (reservation.run_id, reservation.step_id, reservation.attempt) == (run_id, "s0", 2)
    assert (reservation.day, reservation.month) == (day, month)
    assert reservation.expires_at - reservation.created_at == timedelta(seconds=900)
    rows = [("run", str(run_id)), ("day", day), ("month", month)]
    assert [amounts(acme, scope, key) for scope, key in rows] == [(0, D("0.5"))] * 3

    ledger.settle(held.reservation_id, D("0.20"), NO_CAPS)

    assert [amounts(acme, scope, key) for scope, key in rows] == [(D("0.2"), 0)] * 3
    assert ledger.spent(acme.id, "day", day) == D("0.2")
    assert ledger.spent(acme.id, "month", month) == D("0.2")
    assert ledger.spent(acme.id, "day", "1999-01-01") == 0
    assert ledger.run_spent(uuid.uuid4()) == 0


def test_settling_twice_or_releasing_after_settling_changes_nothing(acme):
    run_id = uuid.uuid4()
    caps = run_cap("1.00")
    held = ledger.reserve(acme.id, run_id, "s0", 1, D("0.90"), caps)

    assert ledger.settle(held.reservation_id, D("0.85"), caps)[0].percent == 80
    assert ledger.settle(held.reservation_id, D("0.85"), caps) == []
    ledger.release(held.reservation_id)

    assert ledger.run_spent(run_id) == D("0.85")
    assert row(acme, "run", str(run_id)).reserved_usd == 0


def test_release_gives_the_reservation_back_and_spends_nothing(acme):
    run_id = uuid.uuid4()
    held = ledger.reserve(acme.id, run_id, "s0", 1, D("0.07"), run_cap("0.07"))

    ledger.release(held.reservation_id)

    assert amounts(acme, "run", str(run_id)) == (0, 0)
    assert not Reservation.objects.exists()


def test_each_threshold_is_reported_once_per_ledger_row(acme):
    caps = Caps(run=D("1.00"), day=D("10.00"), month=None, soft_percent=80)
    run_id = uuid.uuid4()

    assert spend(acme, run_id, "0.50", caps) == []
    [soft] = spend(acme, run_id, "0.35", caps)
    assert spend(acme, run_id, "0.10", caps) == []  # 95%: past 80, already told
    [full] = spend(acme, run_id, "0.10", caps)

    assert (soft.scope, soft.percent, soft.spent, soft.cap) == ("run", 80, D("0.85"), D("1.00"))
    assert soft.message == "This run has spent $0.8500 of its $1.00 budget (85%)."
    assert (full.scope, full.percent, full.spent) == ("run", 100, D("1.05"))
    assert full.message == "This run has spent $1.05 of its $1.00 budget."
    assert row(acme, "run", str(run_id)).warned_percent == 100


def test_a_settle_that_jumps_past_both_thresholds_reports_only_the_full_one(acme):
    caps = Caps(run=None, day=D("2.00"), month=D("100"), soft_percent=50)

    [reached] = spend(acme, uuid.uuid4(), "2.50", caps)

    assert (reached.scope, reached.percent) == ("day", 100)
    assert reached.message == "The workspace has spent $2.50 of its $2.00 daily budget."
    month_only = Caps(run=None, day=None, month=D("100"), soft_percent=50)
    assert spend(acme, uuid.uuid4(), "48.00", month_only) == [
        ledger.Threshold(
            "month",
            50,
            D("50.5"),
            D("100"),
            "The workspace has spent $50.50 of its $100.00 monthly budget (50%).",
        )
    ]


def test_the_sweeper_charges_expired_reservations_only_at_what_was_reserved(acme):
    run_id = uuid.uuid4()
    died = ledger.reserve(acme.id, run_id, "s0", 1, D("0.30"), NO_CAPS)
    alive = ledger.reserve(acme.id, run_id, "s1", 1, D("0.20"), NO_CAPS)
    Reservation.objects.filter(pk=died.reservation_id).update(
        expires_at=F("expires_at") - timedelta(minutes=16)
    )

    assert ledger.sweep_expired() == 1
    assert ledger.sweep_expired() == 0

    assert list(Reservation.objects.values_list("pk", flat=True)) == [alive.reservation_id]
    # Its worker died mid-call: the provider may have billed it, so it is not given back.
    assert amounts(acme, "run", str(run_id)) == (D("0.30"), D("0.20"))
    assert ledger.spent(acme.id, "day", today_and_month()[0]) == D("0.30")
    assert ledger.settle(died.reservation_id, D("0.01"), NO_CAPS) == []
    assert ledger.run_spent(run_id) == D("0.30")


def running_llm_step(workspace) -> uuid.UUID:
    """A run whose first step (an LLM call) has started and holds its lease."""
    config = {"provider": "openai", "model": "gpt-4", "prompt": "Hi", "max_tokens": 100}
    run = start_run(publish(workspace, chain(2, kind="llm", config=config)), {})
    assert StepLease.objects.filter(run_id=run.id, step_id="s0", attempt=1).exists()
    return run.id


def charged_events(run_id) -> list[dict]:
    return [e.event for e in store.read_events(run_id) if isinstance(e.event, CallCharged)]


def test_an_unanswered_call_costs_what_was_reserved_in_the_ledger_and_the_run(acme):
    run_id = running_llm_step(acme)
    caps = Caps(run=None, day=D("0.40"), month=None, soft_percent=50)
    held = ledger.reserve(acme.id, run_id, "s0", 1, D("0.30"), caps)

    [warning] = ledger.charge(
        held.reservation_id, caps, {"provider": "openai", "model": "gpt-4"}, "timed_out"
    )

    assert ledger.run_spent(run_id) == D("0.30")
    assert (warning.scope, warning.percent) == ("day", 50)
    assert charged_events(run_id) == [
        CallCharged(
            "s0",
            1,
            {"provider": "openai", "model": "gpt-4", "cost_usd": 0.3, "cost_estimated": True},
            "timed_out",
        )
    ]
    summary = RunSummary.objects.get(run_id=run_id)
    assert summary.cost_usd == D("0.30")  # the run's cost is the ledger's charge
    assert summary.status == "running"  # nothing else about the run changed
    assert ledger.charge(held.reservation_id, caps, {}, "timed_out") == []  # once only
    assert len(charged_events(run_id)) == 1


def test_a_swept_reservation_is_charged_to_its_runs_cost(acme):
    run_id = running_llm_step(acme)
    held = ledger.reserve(acme.id, run_id, "s0", 1, D("0.25"), NO_CAPS)
    Reservation.objects.filter(pk=held.reservation_id).update(
        expires_at=F("expires_at") - timedelta(minutes=16)
    )

    assert ledger.sweep_expired() == 1

    [charged] = charged_events(run_id)
    assert (charged.step_id, charged.attempt, charged.reason) == ("s0", 1, "worker_lost")
    assert charged.usage == {"cost_usd": 0.25, "cost_estimated": True}
    assert RunSummary.objects.get(run_id=run_id).cost_usd == ledger.run_spent(run_id) == D("0.25")


def test_a_call_answered_after_its_attempt_lost_the_lease_is_logged_with_its_real_cost(acme):
    run_id = running_llm_step(acme)
    usage = {"provider": "openai", "model": "gpt-4", "input_tokens": 10, "cost_usd": 0.012}
    held = ledger.reserve(acme.id, run_id, "s0", 1, D("0.30"), NO_CAPS)
    ledger.settle(held.reservation_id, D("0.012"), NO_CAPS, usage)
    assert charged_events(run_id) == []  # the attempt's own outcome will carry the usage

    StepLease.objects.filter(run_id=run_id).delete()  # the run was cancelled meanwhile
    held = ledger.reserve(acme.id, run_id, "s0", 1, D("0.30"), NO_CAPS)
    ledger.settle(held.reservation_id, D("0.012"), NO_CAPS, usage)

    [charged] = charged_events(run_id)
    assert (charged.reason, charged.usage) == ("outcome_refused", usage)
    assert ledger.run_spent(run_id) == D("0.024")
    assert RunSummary.objects.get(run_id=run_id).cost_usd == D("0.012")  # the late one


def test_a_charge_for_a_run_that_is_gone_still_spends(acme):
    run_id = uuid.uuid4()
    held = ledger.reserve(acme.id, run_id, "s0", 1, D("0.05"), NO_CAPS)

    ledger.charge(held.reservation_id, NO_CAPS, {}, "cancelled")

    assert amounts(acme, "run", str(run_id)) == (D("0.05"), 0)


def test_caps_come_from_the_workspace_with_the_workflows_run_cap_first(acme):
    workflow = publish(acme, chain(1))
    assert ledger.caps_for(acme.id, workflow.id) == Caps(None, None, None, 80)
    assert not WorkspaceLimits.objects.exists()

    limits = ledger.limits_for(acme.id)
    assert (limits.soft_threshold_percent, limits.run_cap_usd) == (80, None)
    WorkspaceLimits.objects.filter(pk=acme.id).update(
        run_cap_usd=D(1), daily_cap_usd=D(5), monthly_cap_usd=D(50), soft_threshold_percent=90
    )
    assert ledger.caps_for(acme.id, workflow.id) == Caps(D(1), D(5), D(50), 90)

    WorkflowLimits.objects.create(workflow=workflow, run_cap_usd=D("0.25"))
    assert ledger.caps_for(acme.id, workflow.id).run == D("0.25")
    assert ledger.limits_for(acme.id).daily_cap_usd == D(5)


def at_once(count: int, caller) -> list:
    """`caller()` on `count` threads released together, each with its own connection;
    their results."""
    barrier = threading.Barrier(count)
    results = []

    def run() -> None:
        try:
            barrier.wait()
            results.append(caller())
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(results) == count
    return results


def reserve_until_refused(workspace_id, run_id, amount: Decimal, caps: Caps, name: str):
    """One caller: retry while the refusal is pending, settle what is admitted.
    Returns (admitted, thresholds)."""
    admitted, reached = 0, []
    while True:
        result = ledger.reserve(workspace_id, run_id, name, 1, amount, caps)
        if isinstance(result, Held):
            time.sleep(0.002)  # the call
            reached += ledger.settle(result.reservation_id, amount, caps)
            admitted += 1
            return admitted, reached
        if not result.pending:
            return admitted, reached
        time.sleep(0.001)


@pytest.mark.django_db(transaction=True)
def test_twenty_threads_overspend_a_run_cap_by_at_most_one_call(acme):
    amount = D("0.01")
    caps = run_cap("0.07")  # 7 calls
    run_id = uuid.uuid4()
    results = at_once(20, lambda: reserve_until_refused(acme.id, run_id, amount, caps, "s"))

    spent = ledger.run_spent(run_id)
    assert 7 * amount <= spent <= 7 * amount + amount
    assert sum(admitted for admitted, _ in results) == 7  # equal amounts: the bound is exact
    assert row(acme, "run", str(run_id)).reserved_usd == 0
    reached = sorted(t.percent for _, thresholds in results for t in thresholds)
    assert reached == [80, 100]


def reserve_in_child(workspace_id: str, run_id: str, amount: str, cap: str) -> list:
    """In another process: 10 callers at once, each retrying while pending."""
    caps = run_cap(cap)
    ids = uuid.UUID(workspace_id), uuid.UUID(run_id)
    results = at_once(10, lambda: reserve_until_refused(*ids, D(amount), caps, "s"))
    return [admitted for admitted, _ in results]


@pytest.mark.django_db(transaction=True)
def test_two_processes_overspend_a_run_cap_by_at_most_one_call(acme):
    amount = D("0.013")
    run_id = uuid.uuid4()
    argv = [str(acme.id), str(run_id), str(amount), "0.07"]

    results = in_processes("tests.budgets.test_ledger:reserve_in_child", argv, argv)

    spent = ledger.run_spent(run_id)
    assert D("0.07") <= spent <= D("0.07") + amount
    assert sum(map(sum, results)) == 6  # 5 × 0.013 = 0.065 < 0.07 admits a sixth
    assert all(len(admitted) == 10 for admitted in results)
    assert row(acme, "run", str(run_id)).reserved_usd == 0


@pytest.mark.django_db(transaction=True)
def test_twenty_threads_overspend_a_daily_cap_by_at_most_one_call(acme):
    amount = D("0.01")
    caps = Caps(run=None, day=D("0.07"), month=None, soft_percent=80)
    results = at_once(20, lambda: reserve_until_refused(acme.id, uuid.uuid4(), amount, caps, "s"))

    day = today_and_month()[0]
    assert ledger.spent(acme.id, "day", day) == 7 * amount
    assert sum(admitted for admitted, _ in results) == 7
    reached = sorted(t.percent for _, thresholds in results for t in thresholds)
    assert reached == [80, 100]


def day_held(workspace) -> Decimal:
    """What calls in flight hold on today's row, over all its stripes."""
    day = today_and_month()[0]
    rows = SpendLedger.objects.filter(workspace=workspace, scope="day", key=day)
    return sum((r.reserved_usd for r in rows), D(0))


@pytest.mark.django_db(transaction=True)
def test_a_cap_set_while_uncapped_calls_are_in_flight_counts_what_they_hold(acme):
    # Eight calls admitted without a cap, from eight sessions, on stripes drawn at random.
    in_flight = at_once(
        8, lambda: ledger.reserve(acme.id, uuid.uuid4(), "s0", 1, D("0.10"), NO_CAPS)
    )
    assert all(isinstance(held, Held) for held in in_flight)
    capped = Caps(run=None, day=D("1.00"), month=None, soft_percent=80)

    # Then the day gets a cap of $1.00: what they hold counts against it.
    first = ledger.reserve(acme.id, uuid.uuid4(), "s0", 1, D("0.10"), capped)
    second = ledger.reserve(acme.id, uuid.uuid4(), "s0", 1, D("0.10"), capped)
    refused = ledger.reserve(acme.id, uuid.uuid4(), "s0", 1, D("0.10"), capped)
    assert isinstance(first, Held) and isinstance(second, Held)
    assert isinstance(refused, Refused)
    assert (refused.scope, refused.spent, refused.reserved, refused.pending) == (
        "day",
        0,
        D("1.00"),
        True,
    )

    # They settle at what they cost, on the rows that hold them.
    for held in in_flight:
        assert ledger.settle(held.reservation_id, D("0.05"), NO_CAPS) == []
    for held in (first, second):
        assert ledger.settle(held.reservation_id, D("0.10"), capped) == []

    day = today_and_month()[0]
    assert ledger.spent(acme.id, "day", day) == D("0.60")
    assert day_held(acme) == 0
    assert isinstance(ledger.reserve(acme.id, uuid.uuid4(), "s0", 1, D("0.30"), capped), Held)
    [today, _month] = current_spend(acme.id, ledger.limits_for(acme.id), timezone.now())
    assert (today.spent_usd, today.reserved_usd) == (D("0.60"), D("0.30"))
