"""The sweeper: finds in Postgres what is due and rings the doorbell.

- runs whose `wake_at` has come (a retry's backoff ended, a ready step nobody started,
  a wake-up message that was lost): pushed back by a recheck interval (so a lost message
  is re-sent), and kicked;
- expired step leases: an unclaimed one (its dispatch message was lost) is dispatched
  again; a claimed one means its worker died or stalled, recorded as worker_lost;
- budget reservations of calls whose worker died: settled;
- due cron schedules fired, and webhook deliveries older than a day forgotten (triggers).

Several sweepers may run at once: SKIP LOCKED hands each row to one of them.
"""

import logging
from datetime import timedelta

from django.db import transaction

from vectorbea.eventlog import leases, store
from vectorbea.eventlog.models import Run
from workers import dispatch, runtime

log = logging.getLogger(__name__)

RECHECK = timedelta(seconds=5)


def wake_due_runs(limit: int = 500) -> int:
    with transaction.atomic():
        run_ids = leases.due_runs(limit, RECHECK)
        for run_id in run_ids:
            dispatch.kick(run_id)
    return len(run_ids)


def recover_expired_leases(limit: int = 200) -> int:
    recovered = 0
    while recovered < limit:
        with transaction.atomic():
            expired = leases.next_expired()
            if expired is None:
                break
            (run_id, step_id, attempt), worker = expired
            if worker:
                log.warning(
                    "Lease of %s/%s attempt %s (%s) expired", run_id, step_id, attempt, worker
                )
                runtime.mark_lost(run_id, step_id, attempt)
            else:
                # Unclaimed: its message was lost, or is still waiting behind a backlog
                # (Postgres cannot tell which). Send it again, later each time.
                leases.resend_later((run_id, step_id, attempt))
                definition = store.definition_for(Run.current_version_of(run_id))
                queue = dispatch.queue_of(definition, step_id)
                dispatch.dispatch(run_id, step_id, attempt, queue)
        recovered += 1
    return recovered


def release_lost_reservations() -> int:
    """Budget reservations whose worker died mid-call: settle them."""
    from vectorbea.budgets import ledger

    return ledger.sweep_expired()


def tick() -> int:
    from vectorbea.triggers import schedules, webhooks

    handled = recover_expired_leases() + wake_due_runs() + release_lost_reservations()
    return handled + schedules.fire_due_schedules() + webhooks.prune_deliveries()
