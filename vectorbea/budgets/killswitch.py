"""The kill switch: stop every run of a workspace within seconds, and let them go again.

Throwing it (1) marks the workspace stopped, under the workspace row's update lock. From
then on no append that starts work is written (the rule is the view
vectorbea_stopped_workspaces, eventlog migration 0011, checked by every such append): a
person's start, retry or resume is refused (their check takes a share lock on the same
row, so it cannot slip in beside the switch), and a worker's or the sweeper's append
records the run paused by the switch instead. Then (2) it appends to every active run a
RunPaused(stopped=True) and a StepInterrupted for each attempt in flight, each with the
actor: the interrupted attempts' leases are gone (their workers cancel the calls at once,
and late results are refused), and nothing in the run moves until it is resumed.
"""

from typing import Any
from uuid import UUID

from django.db import connection, transaction
from django.utils import timezone

from vectorbea.budgets.models import LimitsChange, WorkspaceLimits
from vectorbea.engine import Event, RunPaused, RunResumed, StepInterrupted, VectorbeaError
from vectorbea.engine.state import STEP_RUNNING, TERMINAL_RUN_STATUSES
from vectorbea.eventlog import store
from vectorbea.eventlog.record import record


class SwitchIsOn(VectorbeaError):
    """Resuming the runs the switch stopped is refused while it is on (said plainly)."""


class _Unchanged(Exception):
    """The run needs nothing from this action: nothing is appended."""


SWITCH_IS_ON = "Turn the kill switch off before resuming the runs it stopped."


def stop_everything(workspace_id: UUID, *, actor: str, reason: str, user: Any = None) -> int:
    """Throw the switch; returns how many runs it stopped."""
    reason = (reason or "").strip()[:500] or "Kill switch"
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT 1 FROM accounts_workspace WHERE id = %s FOR UPDATE", [workspace_id]
            )
        limits, _ = WorkspaceLimits.objects.select_for_update().get_or_create(
            workspace_id=workspace_id
        )
        if not limits.stopped:
            limits.stopped_at = timezone.now()
            limits.stopped_by = actor
            limits.stop_reason = reason
            limits.save(update_fields=["stopped_at", "stopped_by", "stop_reason", "updated_at"])
            _history(workspace_id, user, {"Kill switch": ["off", f"on: {reason}"]})
    stopped = 0
    for run_id in _active_runs(workspace_id):
        if _stop_run(run_id, actor, reason):
            stopped += 1
    return stopped


def allow_again(workspace_id: UUID, *, actor: str, user: Any = None) -> None:
    """Turn the switch off: runs may start again; stopped runs stay paused until resumed."""
    with transaction.atomic():
        limits, _ = WorkspaceLimits.objects.select_for_update().get_or_create(
            workspace_id=workspace_id
        )
        if limits.stopped:
            limits.stopped_at = None
            limits.stopped_by = ""
            limits.stop_reason = ""
            limits.save(update_fields=["stopped_at", "stopped_by", "stop_reason", "updated_at"])
            _history(workspace_id, user, {"Kill switch": ["on", f"off ({actor})"]})


def resume_stopped(workspace_id: UUID, *, actor: str) -> int:
    """Resume every run the switch paused; refused while the switch is on."""
    if store.stop_of(workspace_id) is not None:
        raise SwitchIsOn(SWITCH_IS_ON)
    resumed = 0
    for run_id in _active_runs(workspace_id):

        def facts(loaded: store.Loaded) -> list[Event]:
            if not loaded.state.stopped:
                raise _Unchanged  # not stopped by the switch
            return [RunResumed(actor)]

        try:
            record(run_id, facts, by_person=True)
        except _Unchanged:
            continue
        except store.KillSwitchOn:  # thrown again meanwhile
            raise SwitchIsOn(SWITCH_IS_ON) from None
        resumed += 1
    return resumed


def _stop_run(run_id: UUID, actor: str, reason: str) -> bool:
    def facts(loaded: store.Loaded) -> list[Event]:
        state = loaded.state
        if state.is_terminal:
            raise _Unchanged  # finished
        events: list[Event] = []
        if not state.paused:
            events.append(RunPaused(actor, reason, stopped=True))
        for step_id in state.steps_with_status(STEP_RUNNING):
            events.append(StepInterrupted(step_id, state.step(step_id).attempt, actor, reason))
        if not events:
            raise _Unchanged  # already paused, nothing running
        return events

    try:
        record(run_id, facts, by_person=True)
    except _Unchanged:
        return False
    return True


def _active_runs(workspace_id: UUID) -> list[UUID]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT run_id FROM eventlog_runsummary WHERE workspace_id = %s "
            "AND NOT status = ANY(%s)",
            [workspace_id, sorted(TERMINAL_RUN_STATUSES)],
        )
        return [row[0] for row in cursor.fetchall()]


def _history(workspace_id: UUID, user: Any, changes: dict[str, list[str]]) -> None:
    LimitsChange.objects.create(
        workspace_id=workspace_id,
        actor=user if getattr(user, "pk", None) else None,
        changes=changes,
    )
