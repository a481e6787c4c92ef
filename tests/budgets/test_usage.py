"""Usage numbers: today and this month from the ledger against the caps, spend per day, per
workflow and per run, and the chart's geometry."""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from tests.support.workflows import chain, publish
from vectorbea.budgets import usage
from vectorbea.budgets.models import SpendLedger, WorkspaceLimits
from vectorbea.eventlog.models import RunSummary
from vectorbea.runs.commands import start_run

pytestmark = pytest.mark.django_db

D = Decimal
NOW = datetime(2026, 11, 21, 23, 30, tzinfo=UTC)


def ledger(workspace, scope: str, key: str, spent: str, reserved: str = "0") -> None:
    SpendLedger.objects.create(
        workspace=workspace, scope=scope, key=key, spent_usd=D(spent), reserved_usd=D(reserved)
    )


def costing(workflow, cost: str, started_at: datetime = NOW) -> RunSummary:
    """A run of `workflow` that cost `cost` (read-side test data)."""
    run = start_run(workflow, {})
    RunSummary.objects.filter(run=run).update(cost_usd=D(cost), started_at=started_at)
    return RunSummary.objects.get(run=run)


def test_keys_are_utc_days_and_months():
    late_in_new_york = datetime(2026, 11, 30, 20, 0, tzinfo=ZoneInfo("America/New_York"))
    assert usage.day_key(usage.utc_today(late_in_new_york)) == "2026-12-01"
    assert usage.month_key(date(2026, 1, 5)) == "2026-01"


def test_today_and_this_month_come_from_the_ledger_against_the_caps(acme, globex):
    limits = WorkspaceLimits(
        workspace=acme, daily_cap_usd=D("10"), monthly_cap_usd=D("100"), soft_threshold_percent=80
    )
    ledger(acme, "day", "2026-11-21", "8.5", reserved="0.25")
    ledger(acme, "day", "2026-11-20", "99")  # yesterday
    ledger(acme, "month", "2026-11", "40")
    ledger(acme, "run", "2026-11-21", "1000")  # a run row is not a day, whatever its key
    ledger(globex, "day", "2026-11-21", "1000")  # another workspace

    today, month = usage.current_spend(acme.id, limits, NOW)

    assert (today.spent_usd, today.reserved_usd, today.cap_usd) == (D("8.5"), D("0.25"), D(10))
    assert (today.percent, today.level, today.left_usd) == (85, "warn", D("1.25"))
    assert (month.spent_usd, month.percent, month.level) == (D(40), 40, "ok")


def test_nothing_recorded_is_zero_and_a_missing_cap_is_no_cap(acme):
    today, month = usage.current_spend(acme.id, WorkspaceLimits(workspace=acme), NOW)
    assert today.spent_usd == month.spent_usd == 0
    assert today.percent is None and today.level == "ok" and today.left_usd is None


def test_a_spent_cap_is_over_like_the_ledger_refuses_at_it():
    spent = usage.Period("today", D(10), D(0), D(10), 80)
    assert (spent.level, spent.percent, spent.bar_percent) == ("over", 100, 100)
    way_over = usage.Period("today", D(25), D(0), D(10), 80)
    assert (way_over.percent, way_over.bar_percent, way_over.left_usd) == (250, 100, 0)
    assert usage.Period("today", D(0), D(0), D(0), 80).level == "over"  # a $0 cap stops all


def test_daily_spend_covers_thirty_days_oldest_first_with_gaps_as_zero(acme):
    ledger(acme, "day", "2026-11-21", "3")
    ledger(acme, "day", "2026-11-01", "2")
    ledger(acme, "day", "2026-10-23", "1")  # the first of the 30 days
    ledger(acme, "day", "2026-10-22", "50")  # 30 days ago: not shown

    days = usage.daily_spend(acme.id, NOW)

    assert len(days) == 30
    assert (days[0].day, days[0].spent_usd) == (date(2026, 10, 23), D(1))
    assert (days[-1].day, days[-1].spent_usd) == (date(2026, 11, 21), D(3))
    assert sum(day.spent_usd for day in days) == D(6)


def test_spend_per_workflow_sums_run_costs_dearest_first(acme, globex):
    nightly = publish(acme, chain(1), name="Nightly")
    triage = publish(acme, chain(1), name="Triage")
    costing(nightly, "0.5")
    costing(nightly, "0.25")
    costing(triage, "2")
    costing(triage, "0")
    costing(triage, "100", started_at=NOW - timedelta(days=40))  # before the period
    costing(publish(globex, chain(1), name="Theirs"), "7")

    rows = usage.spend_by_workflow(acme.id, NOW - timedelta(days=30))

    assert [(r.name, r.runs, r.cost_usd) for r in rows] == [
        ("Triage", 2, D(2)),
        ("Nightly", 2, D("0.75")),
    ]


def test_expensive_runs_are_the_dearest_recent_runs_with_a_cost(acme, globex):
    workflow = publish(acme, chain(1), name="Nightly")
    cheap, dear, _free = costing(workflow, "0.1"), costing(workflow, "3"), costing(workflow, "0")
    costing(workflow, "50", started_at=NOW - timedelta(days=31))
    costing(publish(globex, chain(1)), "9")

    runs = usage.expensive_runs(acme.id, NOW - timedelta(days=30))

    assert [r.run_id for r in runs] == [dear.run_id, cheap.run_id]
    assert runs[0].workflow.name == "Nightly" and runs[0].run.version.number == 1


def test_the_chart_scales_bars_to_a_round_top_and_marks_today():
    days = [usage.DaySpend(date(2026, 11, d), D(v)) for d, v in [(19, "0"), (20, "3"), (21, "7")]]

    chart = usage.bar_chart(days)

    assert [line.label for line in chart.grid] == ["$0", "$5", "$10"]
    zero, three, seven = chart.bars
    assert zero.height == 0 and not zero.is_today and seven.is_today
    plot = chart.baseline - usage.PLOT_TOP
    assert three.height == pytest.approx(plot * 0.3, abs=0.1)
    assert seven.height == pytest.approx(plot * 0.7, abs=0.1)
    assert chart.cap_y is None and chart.total_usd == D(10)
    assert seven.label == "Nov 21"  # today and every seventh day before it are labelled


def test_the_chart_draws_the_cap_only_when_it_is_near_the_bars():
    days = [usage.DaySpend(date(2026, 11, 21), D(8))]
    near = usage.bar_chart(days, cap_usd=D(9))
    assert near.cap_y is not None and near.grid[-1].label == "$10"
    assert usage.bar_chart(days, cap_usd=D(1000)).cap_y is None  # would flatten the bars
    over = usage.bar_chart(days, cap_usd=D(5))
    assert over.bars[0].over_cap and over.cap_y is not None


def test_a_tiny_spend_still_shows_as_a_sliver_and_an_empty_chart_has_a_scale():
    days = [
        usage.DaySpend(date(2026, 11, 20), D("0.0001")),
        usage.DaySpend(date(2026, 11, 21), D(5)),
    ]
    assert usage.bar_chart(days).bars[0].height >= 2
    empty = usage.bar_chart([usage.DaySpend(date(2026, 11, 21), D(0))])
    assert [line.label for line in empty.grid] == ["$0", "$0.5", "$1"]


@pytest.mark.parametrize(
    ("value", "top"),
    [
        ("0.003", "0.005"),
        ("0.9", "1"),
        ("1", "1"),
        ("1.2", "2"),
        ("2.2", "2.5"),
        ("7", "10"),
        ("42", "50"),
        ("1234", "2000"),
    ],
)
def test_nice_ceiling(value, top):
    assert usage.nice_ceiling(D(value)) == D(top)
