"""Read models derived from the event log, written in the same transaction as the events.

RunSummaryProjection is the only writer of RunSummary rows; `rebuild_projections`
recomputes them from the log with the same function and must produce identical rows.
"""

import json
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any
from uuid import UUID

from vectorbea.engine import Definition, RunState, next_wake_at
from vectorbea.eventlog.sql import Statement


def display_status(state: RunState) -> str:
    """One word for lists and badges: the engine's run status, refined while running."""
    if state.status != "running":
        return state.status
    if state.queued:  # counted apart by the concurrency limits: before paused and the rest
        return "queued"
    if state.attention:
        return "needs_attention"
    if state.paused:
        return "paused"
    statuses = {step.status for step in state.steps.values()}
    if "running" in statuses:
        return "running"
    if "retry_scheduled" in statuses:
        return "retrying"
    if "waiting" in statuses:
        return "waiting"
    return "running"


SEARCH_TEXT_CHARS = 2000
CURRENT_LABEL_CHARS = 200
CURRENT = ("running", "retry_scheduled", "waiting")


def current_label(state: RunState, definition: Definition) -> str:
    """What the run is doing now, in words for the run list: the steps it is on (or the step
    it failed at)."""

    def name(step_id: str) -> str:
        step = definition.steps.get(step_id)
        return (step.name if step else "") or step_id

    def said(step_id: str) -> str:
        step = state.step(step_id)
        if step.status == "retry_scheduled":
            return f"{name(step_id)} (retrying, attempt {step.attempt + 1})"
        if step.status == "waiting":
            return f"{name(step_id)} (waiting: {step.wait_reason or 'timer'})"
        if step.attempt > 1:
            return f"{name(step_id)} (attempt {step.attempt})"
        return name(step_id)

    if state.is_terminal:
        # An ended run is on no step: it names only the step it failed (or was denied) at.
        ended_at = state.failed_step_id if state.status in ("failed", "denied") else None
        return name(ended_at)[:CURRENT_LABEL_CHARS] if ended_at else ""
    if state.queued:
        return state.queued[:CURRENT_LABEL_CHARS]
    if state.attention:
        return ", ".join(f"{name(step_id)} (needs attention)" for step_id in state.attention)[
            :CURRENT_LABEL_CHARS
        ]
    current = [step_id for step_id, step in state.steps.items() if step.status in CURRENT]
    return ", ".join(said(step_id) for step_id in current)[:CURRENT_LABEL_CHARS]


def attention_summary(state: RunState) -> str:
    """Why the run needs a person, in plain language ("" when it does not)."""
    return " ".join(str(info.get("summary", "")) for info in state.attention.values())


def search_text(state: RunState) -> str:
    """The run's input, lower-cased, for free-text search (a trigram index covers it)."""
    if not state.input:
        return ""
    text = json.dumps(state.input, sort_keys=True, ensure_ascii=False, default=str)
    return text.lower()[:SEARCH_TEXT_CHARS]


def _version_id(state: RunState) -> UUID | None:
    try:
        return UUID(state.version_id) if state.version_id else None
    except ValueError:  # hand-made logs in tests name versions "v1"
        return None


def summary_fields(
    state: RunState,
    definition: Definition,
    at: datetime,
    columns: tuple[str, ...] | None = None,
    *,
    decided: bool = False,
) -> dict[str, Any]:
    """The RunSummary columns for `state`, whose last event was recorded at `at` (only
    `columns`, when given). `decided`: `state` holds decide()'s consequences at `at` (see
    next_wake_at)."""
    wanted = columns or COLUMNS
    fields = {c: FIELDS[c](state, definition, at) for c in wanted if c != "wake_at"}
    if "wake_at" in wanted:
        fields["wake_at"] = next_wake_at(state, definition, at, decided=decided)
    return fields


@lru_cache(maxsize=4096)
def _cost(usd: float) -> Decimal:
    return Decimal(f"{usd:.6f}")


def cost_usd(state: RunState) -> Decimal:
    return _cost(state.cost_usd)


Field = Callable[[RunState, Definition, datetime], Any]
# Every column but wake_at, which summary_fields computes (it can skip a second decide).
FIELDS: dict[str, Field] = {
    "version_id": lambda state, definition, at: _version_id(state),
    "status": lambda state, definition, at: display_status(state),
    "last_seq": lambda state, definition, at: state.last_seq,
    "steps": lambda state, definition, at: {
        step_id: {"status": step.status, "attempt": step.attempt}
        for step_id, step in state.steps.items()
    },
    "current_steps": lambda state, definition, at: [
        step_id
        for step_id, step in state.steps.items()
        if step.status in CURRENT and not state.is_terminal
    ],
    "attempts": lambda state, definition, at: state.attempts_total,
    "error": lambda state, definition, at: state.error or attention_summary(state),
    "started_at": lambda state, definition, at: state.started_at,
    "finished_at": lambda state, definition, at: state.finished_at,
    "updated_at": lambda state, definition, at: at,
    "cost_usd": lambda state, definition, at: cost_usd(state),
    "current_label": lambda state, definition, at: current_label(state, definition),
    "search_text": lambda state, definition, at: search_text(state),
}


COLUMNS = (
    "version_id",
    "status",
    "last_seq",
    "steps",
    "current_steps",
    "attempts",
    "error",
    "started_at",
    "finished_at",
    "updated_at",
    "wake_at",
    "cost_usd",
    "current_label",
    "search_text",
)
# Set from the run's first event (RunStarted: its start and its input) and never changed:
# only the statement that writes a run's first events writes them.
SET_ONCE = ("started_at", "search_text")
CHANGING = tuple(column for column in COLUMNS if column not in SET_ONCE)
JSON_COLUMNS = ("steps", "current_steps")
# Each value's SQL type, written out: the append is a prepared statement with its
# parameters bound on the server, where an untyped NULL cannot become a timestamp.
CASTS = {
    "version_id": "uuid",
    "status": "text",
    "last_seq": "integer",
    "steps": "jsonb",
    "current_steps": "jsonb",
    "attempts": "integer",
    "error": "text",
    "started_at": "timestamptz",
    "finished_at": "timestamptz",
    "updated_at": "timestamptz",
    "wake_at": "timestamptz",
    "cost_usd": "numeric",
    "current_label": "text",
    "search_text": "text",
}


class RunSummaryProjection:
    """The only writer of RunSummary rows."""

    # Column names are the constants above, never input.
    ON_CONFLICT = "ON CONFLICT (run_id) DO UPDATE SET " + ", ".join(
        f"{c} = EXCLUDED.{c}" for c in COLUMNS
    )

    _INTO = "INSERT INTO eventlog_runsummary (run_id, workspace_id, workflow_id, " + ", ".join(
        COLUMNS
    )
    _VALUES = ", ".join(f"%s::{CASTS[c]}" for c in COLUMNS)

    # An INSERT ... SELECT for the summary row, open for more WHERE conditions: append
    # ON_CONFLICT after them. Its parameters are values(...).
    UPSERT = (
        f"{_INTO}) SELECT id, workspace_id, workflow_id, {_VALUES} "
        "FROM eventlog_run WHERE id = %s::uuid"
    )
    # The same for a run whose row is being inserted by the same statement (so not yet
    # visible to it): run_id, workspace_id and workflow_id are given, then values(...)
    # without its last (run_id), then more WHERE conditions after this "WHERE true".
    INSERT = f"{_INTO}) SELECT %s::uuid, %s::uuid, %s::uuid, {_VALUES} WHERE true"

    # Every later append of a run: the row its first append wrote, the columns that change
    # (open for more WHERE conditions). Its parameters are values(..., CHANGING).
    UPDATE = (
        "UPDATE eventlog_runsummary SET "
        + ", ".join(f"{c} = %s::{CASTS[c]}" for c in CHANGING)
        + " WHERE run_id = %s::uuid"
    )

    @staticmethod
    def values(
        run_id: UUID,
        state: RunState,
        definition: Definition,
        at: datetime,
        columns: tuple[str, ...] = COLUMNS,
        *,
        decided: bool = False,
    ) -> list[Any]:
        fields = summary_fields(state, definition, at, columns, decided=decided)
        return [
            *(json.dumps(fields[c]) if c in JSON_COLUMNS else fields[c] for c in columns),
            run_id,
        ]

    @classmethod
    def clause(
        cls,
        statement: Statement,
        run_id: UUID,
        old: RunState,
        new: RunState,
        definition: Definition,
        at: datetime,
        new_run: tuple[UUID, UUID] | None,
        *,
        decided: bool = False,
    ) -> None:
        """The append statement's summary clause: a run's first append inserts the row
        (`new_run`: its workspace and workflow, when the same statement inserts the run's
        row), every later one updates the columns that change. Written only when the
        events were (`wrote`). `decided`: `new` holds decide()'s consequences at `at`."""
        if new_run is not None:  # the run's row is not visible to this statement yet
            values = cls.values(run_id, new, definition, at, decided=decided)
            sql = f"{cls.INSERT} AND (SELECT wrote FROM wrote) {cls.ON_CONFLICT}"
            params = [run_id, *new_run, *values[:-1]]
        elif old.last_seq == 0:  # a run whose row was written apart (hand-made logs)
            params = cls.values(run_id, new, definition, at, decided=decided)
            sql = f"{cls.UPSERT} AND (SELECT wrote FROM wrote) {cls.ON_CONFLICT}"
        else:
            params = cls.values(run_id, new, definition, at, CHANGING, decided=decided)
            sql = f"{cls.UPDATE} AND (SELECT wrote FROM wrote)"
        statement.clause("summary", sql, params)

    @classmethod
    def write(
        cls, cursor: Any, run_id: UUID, state: RunState, definition: Definition, at: datetime
    ) -> None:
        """The row for `state` as a whole, e.g. rebuilt from the log."""
        params = cls.values(run_id, state, definition, at)
        cursor.execute(f"{cls.UPSERT} {cls.ON_CONFLICT}", params)
