"""Concurrent-run limits: how many runs of a workspace, and of one workflow, go on at once.

A run holds a `RunSlot` row while it goes on. Claimers of one workspace take a
transaction-scoped advisory lock first, so two processes can never both take the last
slot; a slot whose run has finished (by its RunSummary) counts for nothing and is deleted
by the next claim, so a release that never came (a worker that died) frees its slot anyway.
A slot whose run has no RunSummary yet counts as going on.

Call these outside a transaction of your own: inside one, the workspace's lock is held
(and every other claimer of the workspace waits) until it commits.
"""

from uuid import UUID

from django.db import connection, transaction

from vectorbea.engine.state import TERMINAL_RUN_STATUSES

FINISHED = sorted(TERMINAL_RUN_STATUSES)


def claim_slot(
    run_id: UUID,
    workspace_id: UUID,
    workflow_id: UUID,
    *,
    workspace_limit: int | None,
    workflow_limit: int | None,
) -> bool:
    """Take a slot for the run if there is room under both limits (None: no limit).

    True if the run holds a slot now (it may have held it already: claiming twice is
    harmless); False if the workspace or the workflow has as many runs going on as its
    limit allows. With both limits None the slot is recorded without waiting for the
    workspace's lock, so that a limit set later counts the runs already going."""
    with transaction.atomic(), connection.cursor() as cursor:
        if workspace_limit is not None or workflow_limit is not None:
            cursor.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended('budgets.runslot:' || %s, 0))",
                [str(workspace_id)],
            )
            cursor.execute("SELECT 1 FROM budgets_runslot WHERE run_id = %s", [run_id])
            if cursor.fetchone():
                return True
            cursor.execute(
                "DELETE FROM budgets_runslot AS slot USING eventlog_runsummary AS summary "
                "WHERE slot.workspace_id = %s AND summary.run_id = slot.run_id "
                "AND summary.status = ANY(%s)",
                [workspace_id, FINISHED],
            )
            cursor.execute(
                "SELECT count(*), count(*) FILTER (WHERE workflow_id = %s) "
                "FROM budgets_runslot WHERE workspace_id = %s",
                [workflow_id, workspace_id],
            )
            in_workspace, in_workflow = cursor.fetchone()
            if workspace_limit is not None and in_workspace >= workspace_limit:
                return False
            if workflow_limit is not None and in_workflow >= workflow_limit:
                return False
        cursor.execute(
            "INSERT INTO budgets_runslot (run_id, workspace_id, workflow_id, created_at) "
            "VALUES (%s, %s, %s, now()) ON CONFLICT (run_id) DO NOTHING",
            [run_id, workspace_id, workflow_id],
        )
    return True


def release_slot(run_id: UUID) -> None:
    """Free the run's slot (it finished). Releasing a slot not held does nothing."""
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM budgets_runslot WHERE run_id = %s", [run_id])
