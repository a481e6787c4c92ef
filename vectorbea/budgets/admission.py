"""Concurrent-run limits: how many runs of a workspace, and of one workflow, go on at once.

A run goes on from its start until it ends (paused and waiting runs, and runs that need
attention, hold their place). Under a limit, a run that finds no room starts queued
(RunQueued): it makes no attempt and holds no worker until it is admitted (RunAdmitted),
oldest first, when a run of its workspace ends, when the limits change, or at the sweeper's
next look. Nothing polls: a queued run is woken by what frees a place.

Who goes on is read from the run summaries (status not ended and not queued), which the
appends that start, admit and end runs keep up to date in their own transactions. Every
decision about one workspace (a start under a limit, an admission) takes the workspace's
admission lock first and holds it until its append commits, so two can never both take
the last place.
"""

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from uuid import UUID

from django.db import connection, transaction

from vectorbea.budgets.guard import CACHE
from vectorbea.engine import Event, RunAdmitted
from vectorbea.engine.state import TERMINAL_RUN_STATUSES
from vectorbea.eventlog import store
from vectorbea.eventlog.hooks import Change
from vectorbea.eventlog.record import record

QUEUED = "queued"  # the summary's status of a run waiting for a place
NOT_GOING = sorted({*TERMINAL_RUN_STATUSES, QUEUED})
ADMIT_AT_ONCE = 100  # admissions per call; the next ended run or sweep admits more


def _limits(workspace_id: UUID) -> tuple[int | None, int | None]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT max_concurrent_runs, max_concurrent_runs_per_workflow "
            "FROM budgets_workspacelimits WHERE workspace_id = %s",
            [workspace_id],
        )
        row = cursor.fetchone()
    return (None, None) if row is None else (row[0], row[1])


def _lock(workspace_id: UUID) -> None:
    """The workspace's admission lock, held until the caller's transaction ends."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended('runs.admission:' || %s, 0))",
            [str(workspace_id)],
        )


def _going(workspace_id: UUID, workflow_id: UUID) -> tuple[int, int]:
    """Runs going on now: in the workspace, and of the workflow."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*), count(*) FILTER (WHERE workflow_id = %s) "
            "FROM eventlog_runsummary WHERE workspace_id = %s AND NOT status = ANY(%s)",
            [workflow_id, workspace_id, NOT_GOING],
        )
        return cursor.fetchone()


def _why_not(
    workspace_id: UUID, workflow_id: UUID, limits: tuple[int | None, int | None]
) -> str | None:
    """Why a run of `workflow_id` may not go on now (None: it may). Under the lock."""
    per_workspace, per_workflow = limits
    in_workspace, in_workflow = _going(workspace_id, workflow_id)
    if per_workspace is not None and in_workspace >= per_workspace:
        return (
            f"Waiting for a free place: the workspace runs at most {per_workspace} at once, "
            f"and {in_workspace} are going on."
        )
    if per_workflow is not None and in_workflow >= per_workflow:
        return (
            f"Waiting for a free place: this workflow runs at most {per_workflow} at once, "
            f"and {in_workflow} are going on."
        )
    return None


@contextmanager
def place_for_start(workspace_id: UUID, workflow_id: UUID) -> Iterator[str | None]:
    """Around a run's first append: yields None when the run may go on, or why it must
    queue (it then starts with RunQueued). Under a limit the append is made inside this
    block's transaction, which holds the workspace's admission lock until it commits;
    without limits no lock is taken and nothing is counted."""
    if not limited(workspace_id):
        yield None
        return
    with transaction.atomic():
        _lock(workspace_id)
        limits = _limits(workspace_id)
        yield None if limits == (None, None) else _why_not(workspace_id, workflow_id, limits)


def admit_queued(workspace_id: UUID) -> int:
    """Admit the workspace's queued runs, oldest first, while there is room; returns how
    many. Each admission is its own transaction under the admission lock. A workspace
    whose kill switch is on admits nothing (its runs would only be paused)."""
    if store.stop_of(workspace_id) is not None:
        return 0
    admitted = 0
    passed_over: set[UUID] = set()  # workflows at their own limit in this call
    while admitted < ADMIT_AT_ONCE:
        with transaction.atomic():
            _lock(workspace_id)
            limits = _limits(workspace_id)
            candidate = _oldest_queued(workspace_id, passed_over)
            if candidate is None:
                return admitted
            run_id, workflow_id = candidate
            why = None if limits == (None, None) else _why_not(workspace_id, workflow_id, limits)
            if why is not None:
                per_workspace, _ = limits
                in_workspace, _ = _going(workspace_id, workflow_id)
                if per_workspace is not None and in_workspace >= per_workspace:
                    return admitted  # the workspace is full: nobody goes on
                passed_over.add(workflow_id)  # its workflow is full: look further
                continue
            record(run_id, _admission)
        admitted += 1
    return admitted


def _admission(loaded: store.Loaded) -> Sequence[Event]:
    return [RunAdmitted()] if loaded.state.queued and not loaded.state.is_terminal else []


def _oldest_queued(workspace_id: UUID, passed_over: set[UUID]) -> tuple[UUID, UUID] | None:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT run_id, workflow_id FROM eventlog_runsummary "
            "WHERE workspace_id = %s AND status = %s AND NOT workflow_id = ANY(%s) "
            "ORDER BY started_at, run_id LIMIT 1",
            [workspace_id, QUEUED, list(passed_over)],
        )
        return cursor.fetchone()


def queued_workspaces() -> list[UUID]:
    """Workspaces with a run waiting for a place (for the sweeper's look)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT DISTINCT workspace_id FROM eventlog_runsummary WHERE status = %s", [QUEUED]
        )
        return [row[0] for row in cursor.fetchall()]


def admit_everywhere() -> int:
    """The sweeper's look: admit what fits in every workspace with queued runs (what frees
    a place admits at once; this catches a wake-up that was lost)."""
    return sum(admit_queued(workspace_id) for workspace_id in queued_workspaces())


def limited(workspace_id: UUID) -> bool:
    """Whether the workspace limits how many runs go on at once (as read within the last
    few seconds: a limit set or lifted reaches every process within LIMITS_TTL_SECONDS)."""
    limits = CACHE.limits(workspace_id)
    return limits.max_concurrent_runs is not None or (
        limits.max_concurrent_runs_per_workflow is not None
    )


def admit_after_ended(change: Change) -> None:
    """After-commit hook: a run that ended frees a place in its workspace."""
    if change.state.is_terminal and not change.before.is_terminal and not change.before.queued:
        if limited(change.workspace_id):
            admit_queued(change.workspace_id)
