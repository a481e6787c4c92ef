"""The run list: a page of RunSummary rows by keyset on (sort column, run_id).

Everything here reads the summary projection and its indexes (migration eventlog 0003);
nothing scans the events table. A cursor is the last row's (sort value, run id), so a page
costs the same at row 50 and at row 50,000, and rows that change while someone pages do
not shift the pages after them.
"""

import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from uuid import UUID

from django.db.models import BooleanField, Q, QuerySet
from django.db.models.expressions import RawSQL
from django.utils import timezone

from vectorbea.eventlog.models import RunSummary

PAGE_SIZE = 50
NEEDS_ATTENTION = ("needs_attention",)
STATUSES = (
    ("needs_attention", "Needs attention"),
    ("queued", "Queued"),
    ("running", "Running"),
    ("retrying", "Retrying"),
    ("waiting", "Waiting"),
    ("paused", "Paused"),
    ("completed", "Completed"),
    ("failed", "Failed"),
    ("denied", "Denied"),
    ("cancelled", "Cancelled"),
)
# sort key -> (column, descending)
SORTS = {
    "-updated": ("updated_at", True),
    "updated": ("updated_at", False),
    "-started": ("started_at", True),
    "started": ("started_at", False),
}
DEFAULT_SORT = "-updated"
RUN_ID_PREFIX = re.compile(r"^[0-9a-f-]{4,36}$")


@dataclass(frozen=True)
class Filters:
    status: str = ""  # one of STATUSES, or "attention"
    workflow: UUID | None = None
    started_by: int | None = None
    since: datetime | None = None
    until: datetime | None = None
    q: str = ""
    sort: str = DEFAULT_SORT

    @property
    def active(self) -> bool:
        return bool(
            self.status or self.workflow or self.started_by or self.since or self.until or self.q
        )


@dataclass(frozen=True)
class Page:
    rows: list[RunSummary]
    next_cursor: str


def day_start(day) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


def filtered(workspace_id: UUID, filters: Filters) -> QuerySet[RunSummary]:
    runs = RunSummary.objects.filter(workspace_id=workspace_id)
    if filters.status == "attention":
        runs = runs.filter(status__in=NEEDS_ATTENTION)
    elif filters.status:
        runs = runs.filter(status=filters.status)
    if filters.workflow:
        runs = runs.filter(workflow_id=filters.workflow)
    if filters.started_by:
        runs = runs.filter(run__started_by_id=filters.started_by)
    if filters.since:
        runs = runs.filter(started_at__gte=filters.since)
    if filters.until:
        runs = runs.filter(started_at__lt=filters.until + timedelta(days=1))
    if filters.q:
        runs = runs.filter(search(filters.q))
    return runs


def search(text: str) -> Q:
    """The input contains the text (trigram index), or the run id starts with it (a range
    of the primary key)."""
    text = text.strip().lower()
    match = Q(search_text__contains=text)
    if RUN_ID_PREFIX.match(text):
        hex_prefix = text.replace("-", "")
        if len(hex_prefix) <= 32:
            low = UUID(hex_prefix.ljust(32, "0"))
            high = UUID(hex_prefix.ljust(32, "f"))
            match |= Q(run_id__gte=low, run_id__lte=high)
    return match


def encode_cursor(row: RunSummary, column: str) -> str:
    value = getattr(row, column)
    return f"{value.isoformat()}_{row.run_id}"


def decode_cursor(cursor: str) -> tuple[datetime, UUID] | None:
    try:
        at, run_id = cursor.rsplit("_", 1)
        return datetime.fromisoformat(at), UUID(run_id)
    except ValueError:
        return None


def run_page(workspace_id: UUID, filters: Filters, cursor: str = "", size: int = PAGE_SIZE) -> Page:
    column, descending = SORTS.get(filters.sort, SORTS[DEFAULT_SORT])
    runs = filtered(workspace_id, filters)
    after = decode_cursor(cursor) if cursor else None
    if after is not None:
        # A row comparison, so the index range starts at the cursor (column is a constant).
        op = "<" if descending else ">"
        runs = runs.filter(
            RawSQL(  # noqa: S611 (column and op are constants above)
                f"(eventlog_runsummary.{column}, eventlog_runsummary.run_id) {op} (%s, %s)",
                after,
                output_field=BooleanField(),
            )
        )
    order = (f"-{column}", "-run_id") if descending else (column, "run_id")
    rows = list(with_row_columns(runs).order_by(*order)[: size + 1])
    next_cursor = encode_cursor(rows[size - 1], column) if len(rows) > size else ""
    return Page(rows[:size], next_cursor)


def with_row_columns(runs: QuerySet[RunSummary]) -> QuerySet[RunSummary]:
    """What a row shows, in one query (and not the definitions' JSON)."""
    return runs.select_related("run__version", "run__started_by", "workflow", "version").only(
        "run_id",
        "version__number",
        "status",
        "last_seq",
        "attempts",
        "error",
        "started_at",
        "finished_at",
        "updated_at",
        "cost_usd",
        "current_label",
        "workflow__name",
        "run__version__number",
        "run__started_by__username",
    )


def row_for(workspace_id: UUID, run_id: UUID) -> RunSummary | None:
    return (
        with_row_columns(RunSummary.objects.filter(workspace_id=workspace_id))
        .filter(run_id=run_id)
        .first()
    )
