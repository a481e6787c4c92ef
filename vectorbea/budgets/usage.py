"""What a workspace spent: today and this month against its caps (the spend ledger), per day
for a chart, per workflow and per run (the run summaries).

Days and months are UTC, keyed as the ledger keys them ("2026-11-21", "2026-11"). `now` is
passed in, never read here.
"""

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from uuid import UUID

from django.db.models import Count, Sum

from vectorbea.budgets.models import LedgerScope, SpendLedger, WorkspaceLimits
from vectorbea.eventlog.models import RunSummary

CHART_DAYS = 30
TOP_WORKFLOWS = 20
TOP_RUNS = 10


def day_key(day: date) -> str:
    return day.isoformat()


def month_key(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def utc_today(now: datetime) -> date:
    return now.astimezone(UTC).date()


@dataclass(frozen=True)
class Period:
    """Spending in one ledger period against its cap."""

    name: str  # "today", "this month"
    spent_usd: Decimal
    reserved_usd: Decimal  # held by calls still in flight
    cap_usd: Decimal | None
    soft_threshold_percent: int

    @property
    def percent(self) -> int | None:
        """Spent as a share of the cap, in whole percent (None: no cap; a $0 cap: 100)."""
        if self.cap_usd is None:
            return None
        return int(self.spent_usd * 100 / self.cap_usd) if self.cap_usd else 100

    @property
    def level(self) -> str:
        """ "over" at the cap (as the ledger refuses calls), "warn" past the soft threshold."""
        if self.cap_usd is None:
            return "ok"
        if self.spent_usd >= self.cap_usd:
            return "over"
        if self.spent_usd * 100 >= self.cap_usd * self.soft_threshold_percent:
            return "warn"
        return "ok"

    @property
    def bar_percent(self) -> int:
        return min(self.percent or 0, 100)

    @property
    def left_usd(self) -> Decimal | None:
        if self.cap_usd is None:
            return None
        return max(self.cap_usd - self.spent_usd - self.reserved_usd, Decimal(0))


def current_spend(workspace_id: UUID, limits: WorkspaceLimits, now: datetime) -> list[Period]:
    """Today and this month, from the ledger's day and month rows (summed over their
    stripes): one query."""
    today = utc_today(now)
    rows = {
        (row["scope"], row["key"]): row
        for row in SpendLedger.objects.filter(
            workspace_id=workspace_id,
            scope__in=(LedgerScope.DAY, LedgerScope.MONTH),
            key__in=(day_key(today), month_key(today)),
        )
        .values("scope", "key")
        .annotate(spent=Sum("spent_usd"), reserved=Sum("reserved_usd"))
    }

    def period(name: str, scope: str, key: str, cap: Decimal | None) -> Period:
        row = rows.get((scope, key))
        return Period(
            name=name,
            spent_usd=row["spent"] if row else Decimal(0),
            reserved_usd=row["reserved"] if row else Decimal(0),
            cap_usd=cap,
            soft_threshold_percent=limits.soft_threshold_percent,
        )

    return [
        period("today", LedgerScope.DAY, day_key(today), limits.daily_cap_usd),
        period("this month", LedgerScope.MONTH, month_key(today), limits.monthly_cap_usd),
    ]


@dataclass(frozen=True)
class DaySpend:
    day: date
    spent_usd: Decimal


def daily_spend(workspace_id: UUID, now: datetime, days: int = CHART_DAYS) -> list[DaySpend]:
    """Spent per UTC day (summed over its stripes) for the last `days` days, oldest first,
    today last: one query."""
    today = utc_today(now)
    span = [today - timedelta(days=n) for n in range(days - 1, -1, -1)]
    spent = dict(
        SpendLedger.objects.filter(
            workspace_id=workspace_id,
            scope=LedgerScope.DAY,
            key__in=[day_key(day) for day in span],
        )
        .values("key")
        .annotate(spent=Sum("spent_usd"))
        .values_list("key", "spent")
    )
    return [DaySpend(day, spent.get(day_key(day), Decimal(0))) for day in span]


@dataclass(frozen=True)
class WorkflowSpend:
    workflow_id: UUID
    name: str
    runs: int
    cost_usd: Decimal


def spend_by_workflow(
    workspace_id: UUID, since: datetime, limit: int = TOP_WORKFLOWS
) -> list[WorkflowSpend]:
    """What each workflow's runs started since `since` cost, dearest first: one query."""
    rows = (
        RunSummary.objects.filter(workspace_id=workspace_id, started_at__gte=since)
        .values("workflow_id", "workflow__name")
        .annotate(cost=Sum("cost_usd"), runs=Count("run_id"))
        .filter(cost__gt=0)
        .order_by("-cost", "workflow__name")[:limit]
    )
    return [
        WorkflowSpend(row["workflow_id"], row["workflow__name"], row["runs"], row["cost"])
        for row in rows
    ]


def expensive_runs(workspace_id: UUID, since: datetime, limit: int = TOP_RUNS) -> list[RunSummary]:
    """The dearest runs started since `since`: one query."""
    return list(
        RunSummary.objects.filter(workspace_id=workspace_id, started_at__gte=since, cost_usd__gt=0)
        .select_related("workflow", "run__version")
        .only(
            "run_id",
            "status",
            "cost_usd",
            "started_at",
            "workflow__name",
            "run__version__number",
        )
        .order_by("-cost_usd", "-started_at")[:limit]
    )


# --- the chart -----------------------------------------------------------------------------

CHART_WIDTH = 1040  # about its width on a laptop screen, so text is drawn near 11 px
CHART_HEIGHT = 220
PLOT_LEFT = 56  # room for the axis labels
PLOT_TOP = 12
PLOT_BOTTOM = 24  # room for the date labels
BAR_GAP = 4
NICE_STEPS = (1, 2, 2.5, 5, 10)
GRID_SHARES = (Decimal(0), Decimal("0.5"), Decimal(1))


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    day: date
    spent_usd: Decimal
    label: str  # under the bar, every week; "" otherwise
    label_x: float
    label_anchor: str  # "middle" under the bar; "end" for the last, so it is not cut off
    is_today: bool
    over_cap: bool


@dataclass(frozen=True)
class GridLine:
    y: float
    label: str


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    plot_left: int
    plot_right: int
    baseline: float
    bars: list[Bar]
    grid: list[GridLine]
    cap_y: float | None  # the daily cap as a line, when it fits the scale
    total_usd: Decimal


def nice_ceiling(value: Decimal) -> Decimal:
    """The smallest of 1, 2, 2.5, 5 × 10ⁿ at or above `value` (an axis's top)."""
    if value <= 0:
        return Decimal(1)
    power = Decimal(10) ** (value.adjusted())
    for step in NICE_STEPS:
        top = power * Decimal(str(step))
        if top >= value:
            return top.normalize()
    return (power * 10).normalize()


def axis_label(value: Decimal) -> str:
    if value == 0:
        return "$0"
    if value >= 1:
        return f"${value:,.0f}" if value == value.to_integral_value() else f"${value:,.2f}"
    return f"${value.normalize():f}"


def bar_chart(days: list[DaySpend], cap_usd: Decimal | None = None) -> Chart:
    """Bars for `days` (oldest first), scaled to a round top; the cap as a line when it is
    within a quarter above the highest bar, so a far-off cap does not flatten the bars."""
    highest = max((d.spent_usd for d in days), default=Decimal(0))
    show_cap = cap_usd is not None and cap_usd > 0 and cap_usd <= highest * Decimal("1.25")
    top = nice_ceiling(max(highest, cap_usd if show_cap and cap_usd else Decimal(0)))
    plot_right = CHART_WIDTH - 8
    plot_height = CHART_HEIGHT - PLOT_TOP - PLOT_BOTTOM
    baseline = PLOT_TOP + plot_height
    slot = (plot_right - PLOT_LEFT) / max(len(days), 1)

    def y_of(amount: Decimal) -> float:
        return round(baseline - float(amount / top) * plot_height, 1)

    bars = []
    for index, day in enumerate(days):
        y = y_of(day.spent_usd)
        if day.spent_usd > 0:  # a cent shows as a sliver, not as nothing
            y = min(y, baseline - 2)
        weekly = (len(days) - 1 - index) % 7 == 0
        x = PLOT_LEFT + index * slot + BAR_GAP / 2
        width = slot - BAR_GAP
        last = index == len(days) - 1
        bars.append(
            Bar(
                x=round(x, 1),
                y=y,
                width=round(width, 1),
                height=round(baseline - y, 1),
                day=day.day,
                spent_usd=day.spent_usd,
                label=day.day.strftime("%b %-d") if weekly else "",
                label_x=round(x + width if last else x + width / 2, 1),
                label_anchor="end" if last else "middle",
                is_today=last,
                over_cap=bool(cap_usd is not None and day.spent_usd > cap_usd),
            )
        )
    grid = [GridLine(y_of(top * share), axis_label(top * share)) for share in GRID_SHARES]
    return Chart(
        width=CHART_WIDTH,
        height=CHART_HEIGHT,
        plot_left=PLOT_LEFT,
        plot_right=plot_right,
        baseline=baseline,
        bars=bars,
        grid=grid,
        cap_y=y_of(cap_usd) if show_cap and cap_usd else None,
        total_usd=sum((d.spent_usd for d in days), Decimal(0)),
    )
