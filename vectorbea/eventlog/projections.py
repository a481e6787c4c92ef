"""Read models derived from the event log, written in the same transaction as the events.

RunSummaryProjection is the only writer of RunSummary rows; `rebuild_projections`
recomputes them from the log with the same function and must produce identical rows.
"""

import json
from datetime import datetime
from typing import Any
from uuid import UUID

from vectorbea.engine import Definition, RunState, next_wake_at


def display_status(state: RunState) -> str:
    """One word for lists and badges: the engine's run status, refined while running."""
    if state.status != "running":
        return state.status
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


def summary_fields(state: RunState, definition: Definition, at: datetime) -> dict[str, Any]:
    """The RunSummary columns for `state`, whose last event was recorded at `at`."""
    return {
        "status": display_status(state),
        "last_seq": state.last_seq,
        "steps": {
            step_id: {"status": step.status, "attempt": step.attempt}
            for step_id, step in state.steps.items()
        },
        "current_steps": [
            step_id
            for step_id, step in state.steps.items()
            if step.status in ("running", "retry_scheduled", "waiting")
        ],
        "attempts": state.attempts_total,
        "error": state.error or "",
        "started_at": state.started_at,
        "finished_at": state.finished_at,
        "updated_at": at,
        "wake_at": next_wake_at(state, definition, at),
    }


COLUMNS = (
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
)
JSON_COLUMNS = ("steps", "current_steps")


class RunSummaryProjection:
    """The only writer of RunSummary rows."""

    # Column names are the constants above, never input.
    ON_CONFLICT = "ON CONFLICT (run_id) DO UPDATE SET " + ", ".join(
        f"{c} = EXCLUDED.{c}" for c in COLUMNS
    )

    @staticmethod
    def upsert(
        run_id: UUID, state: RunState, definition: Definition, at: datetime
    ) -> tuple[str, list[Any]]:
        """An INSERT ... SELECT for the summary row, open for more WHERE conditions; append
        ON_CONFLICT after them."""
        fields = summary_fields(state, definition, at)
        values = [json.dumps(fields[c]) if c in JSON_COLUMNS else fields[c] for c in COLUMNS]
        placeholders = ", ".join("%s::jsonb" if c in JSON_COLUMNS else "%s" for c in COLUMNS)
        sql = (
            "INSERT INTO eventlog_runsummary (run_id, workspace_id, workflow_id, "
            + ", ".join(COLUMNS)
            + f") SELECT id, workspace_id, workflow_id, {placeholders} "
            "FROM eventlog_run WHERE id = %s"
        )
        return sql, [*values, run_id]

    @classmethod
    def write(
        cls, cursor: Any, run_id: UUID, state: RunState, definition: Definition, at: datetime
    ) -> None:
        sql, params = cls.upsert(run_id, state, definition, at)
        cursor.execute(f"{sql} {cls.ON_CONFLICT}", params)
