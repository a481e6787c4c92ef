"""GateProjection: the inbox's rows, derived from the event log.

Why a projection and not queries over RunSummary: the inbox, its filters (decided, timed
out), the navigation count on every page and the live count pushed on every run change
all need "the gates this person may decide" across a workspace. RunSummary knows which
runs wait but not on what, for whom, or what was decided; answering from it means folding
every waiting run per request. One indexed row per gate answers in one query.

How it stays true to the log:
- a row is a pure function of the run's folded state (`gate_row`), and which rows an
  event changes is a pure function of the event and the state (`touched`);
- `GATES` is registered with the event log: every append that touches a gate writes its
  rows (`project`) inside the append's transaction, so they commit with the events or
  not at all; an append that touches none keeps its single statement;
- each row keeps the seq of the last event that changed it, and an upsert never replaces
  a newer row with an older one;
- `rebuild()` folds the log event by event with the same two functions, and must produce
  identical rows (tested).
Approvers of a gate that opened or escalated are emailed after the append commits
(`notify_opened`, an after-commit hook).
"""

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from django.db import connection

from vectorbea.engine import (
    ApprovalDenied,
    ApprovalEscalated,
    ApprovalGranted,
    ApprovalReassigned,
    ApprovalRequested,
    ApprovalTimedOut,
    Definition,
    Recorded,
    RetryScheduled,
    RunCancelled,
    RunCompleted,
    RunFailed,
    RunPaused,
    RunResumed,
    RunState,
    apply,
)
from vectorbea.engine.state import STEP_WAITING
from vectorbea.eventlog.hooks import Change

GATE_EVENTS = (
    ApprovalRequested,
    ApprovalGranted,
    ApprovalDenied,
    ApprovalTimedOut,
    ApprovalEscalated,
    ApprovalReassigned,
)
# Events that can open or close every undecided gate of a run at once.
RUN_EVENTS = (RunCompleted, RunFailed, RunCancelled, RetryScheduled, RunPaused, RunResumed)
# The ones that notify approvers: a gate opened, or went to other people.
OPENING_EVENTS = (ApprovalRequested, ApprovalEscalated, ApprovalReassigned)


def touched(event: Any, state: RunState) -> set[str]:
    """The steps whose gate row `event` changes, given the state after it."""
    if isinstance(event, GATE_EVENTS):
        return {event.step_id}
    if isinstance(event, RUN_EVENTS):
        return {
            step_id
            for step_id, step in state.steps.items()
            if step.gate is not None and step.decision is None
        }
    return set()


def gate_status(state: RunState, step_id: str) -> str:
    step = state.step(step_id)
    decision = step.decision
    if decision is not None:
        if decision.get("timed_out"):
            return "timed_out"
        return "approved" if decision.get("approved") else "denied"
    if state.is_terminal or step.status != STEP_WAITING:
        return "closed"
    return "waiting"


def gate_row(state: RunState, definition: Definition, step_id: str) -> dict[str, Any]:
    """The Gate columns (except run, workspace, workflow and updated_seq) for the step's
    current gate."""
    step = state.step(step_id)
    gate = step.gate or {}
    approvers = gate.get("approvers") or {}
    decision = step.decision or {}
    step_def = definition.steps.get(step_id)
    return {
        "step_id": step_id,
        "attempt": gate.get("attempt", step.attempt),
        "key": gate.get("key", f"{step_id}:{step.attempt}"),
        "step_name": ((step_def.name if step_def else "") or step_id)[:200],
        "title": str(gate.get("title", ""))[:300],
        "instructions": gate.get("instructions", ""),
        "payload": gate.get("payload"),
        "form": gate.get("form", []),
        "run_input": state.input,
        "status": gate_status(state, step_id),
        "approved": None if not decision else bool(decision.get("approved")),
        "approver_roles": list(approvers.get("roles", [])),
        "approver_users": list(approvers.get("users", [])),
        "required": gate.get("required", 1),
        "granted_by": [grant["by"] for grant in gate.get("grants", [])],
        "allow_self_approval": bool(gate.get("allow_self_approval", False)),
        "initiator": state.started_by or "",
        "level": gate.get("level", 0),
        "escalation": gate.get("escalate") or None,
        "requested_at": step.started_at,
        "timeout_at": _parse(step.wait_until) if not decision else None,
        "decided_at": _parse(decision.get("at")),
        "decided_by": decision.get("by") or "",
        "reason": decision.get("reason") or "",
    }


def _parse(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


COLUMNS = (
    "step_id",
    "attempt",
    "key",
    "step_name",
    "title",
    "instructions",
    "payload",
    "form",
    "run_input",
    "status",
    "approved",
    "approver_roles",
    "approver_users",
    "required",
    "granted_by",
    "allow_self_approval",
    "initiator",
    "level",
    "escalation",
    "requested_at",
    "timeout_at",
    "decided_at",
    "decided_by",
    "reason",
)
JSON_COLUMNS = frozenset(
    {
        "payload",
        "form",
        "run_input",
        "approver_roles",
        "approver_users",
        "granted_by",
        "escalation",
    }
)
_UPDATABLE = [c for c in COLUMNS if c not in ("step_id", "attempt")] + ["updated_seq"]
# Column names are the constants above, never input.
UPSERT = (
    "INSERT INTO approvals_gate (run_id, workspace_id, workflow_id, "  # noqa: S608
    + ", ".join(COLUMNS)
    + ", updated_seq) SELECT id, workspace_id, workflow_id, "
    + ", ".join("%s::jsonb" if c in JSON_COLUMNS else "%s" for c in COLUMNS)
    + ", %s FROM eventlog_run WHERE id = %s "
    "ON CONFLICT (run_id, step_id, attempt) DO UPDATE SET "
    + ", ".join(f"{c} = EXCLUDED.{c}" for c in _UPDATABLE)
    + " WHERE approvals_gate.updated_seq < EXCLUDED.updated_seq"
)


def _write(run_id: UUID, rows: Iterable[tuple[dict[str, Any], int]]) -> None:
    with connection.cursor() as cursor:
        for row, seq in rows:
            values = [json.dumps(row[c]) if c in JSON_COLUMNS else row[c] for c in COLUMNS]
            cursor.execute(UPSERT, [*values, seq, run_id])


def _touched_steps(events: Sequence[Recorded], state: RunState) -> dict[str, int]:
    """The steps whose gate rows `events` change, with the seq of the last that does."""
    last: dict[str, int] = {}
    for recorded in events:
        for step_id in touched(recorded.event, state):
            last[step_id] = recorded.seq
    return last


def project(
    run_id: UUID, state: RunState, events: Sequence[Recorded], definition: Definition
) -> list[str]:
    """Bring the gate rows of `run_id` up to date after an append of `events` that led to
    `state`. Returns the steps whose rows changed."""
    last = _touched_steps(events, state)
    if not last:
        return []
    rows = [
        (gate_row(state, definition, step_id), seq)
        for step_id, seq in last.items()
        if state.step(step_id).gate is not None
    ]
    _write(run_id, rows)
    return list(last)


class GateProjection:
    """The inbox's rows, as a projection of the event log (registered in AppConfig)."""

    name = "gates"

    def touches(self, events: Sequence[Recorded], state: RunState) -> bool:
        return any(touched(recorded.event, state) for recorded in events)

    def write(self, change: Change) -> None:
        project(change.run_id, change.state, change.events, change.definition)

    def rebuild(self, run_id: UUID, events: Sequence[Recorded], definition: Definition) -> int:
        rows = rows_from_log(events, definition)
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM approvals_gate WHERE run_id = %s", [run_id])
        _write(run_id, rows.values())
        return len(rows)


GATES = GateProjection()


def notify_opened(change: Change) -> None:
    """After-commit hook: email the approvers of the gates the append opened or escalated
    (never raises: notify_approvers logs its failures)."""
    opened = [r.event for r in change.events if isinstance(r.event, OPENING_EVENTS)]
    if opened:
        from vectorbea.approvals.notifications import notify_approvers

        notify_approvers(change.run_id, [(event.step_id, event.gate) for event in opened])


def rows_from_log(
    events: Iterable[Recorded], definition: Definition
) -> dict[tuple[str, int], tuple[dict[str, Any], int]]:
    """Every gate row of a run, by (step_id, attempt), as folding its log one event at a
    time with the same rules as `project` gives them."""
    state = RunState.initial()
    rows: dict[tuple[str, int], tuple[dict[str, Any], int]] = {}
    for recorded in events:
        state = apply(state, recorded)
        for step_id in touched(recorded.event, state):
            if state.step(step_id).gate is None:
                continue
            row = gate_row(state, definition, step_id)
            rows[(step_id, row["attempt"])] = (row, recorded.seq)
    return rows


def rebuild(run_ids: Iterable[UUID] | None = None) -> int:
    """Recompute the gate rows of these runs (default: every run) from their logs."""
    from vectorbea.eventlog.rebuild import rebuild_projections

    return rebuild_projections(run_ids, [GATES])["gates"]
