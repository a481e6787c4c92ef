"""The scheduler: finds in Postgres what is due and rings the doorbell.

- runs whose `wake_at` has come (a retry's backoff ended, a ready step nobody started,
  a wake-up message that was lost): claimed with FOR UPDATE SKIP LOCKED, pushed back by
  a recheck interval (so a lost message is re-sent), and kicked;
- expired step leases: an unclaimed one (its dispatch message was lost) is dispatched
  again; a claimed one means its worker died or stalled, recorded as worker_lost;
- budget reservations of calls whose worker died: charged at what was reserved;
- due cron schedules fired, and webhook deliveries older than a day forgotten (triggers).

Several schedulers may run at once: SKIP LOCKED hands each row to one of them.
"""

import logging
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction

from vectorbea.eventlog import store
from vectorbea.eventlog.models import Run
from vectorbea.runs import executor, scheduling

log = logging.getLogger(__name__)

RECHECK = timedelta(seconds=5)
# An unclaimed attempt is sent again after 2, 4, 8, ... 32 leases (16 min at 30 s).
MAX_RESEND_DOUBLINGS = 5


def wake_due_runs(limit: int = 500) -> int:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "UPDATE eventlog_runsummary SET wake_at = now() + %s WHERE run_id IN ("
            "  SELECT run_id FROM eventlog_runsummary WHERE wake_at <= now() "
            "  ORDER BY wake_at LIMIT %s FOR UPDATE SKIP LOCKED) RETURNING run_id",
            [RECHECK, limit],
        )
        run_ids = [row[0] for row in cursor.fetchall()]
        for run_id in run_ids:
            scheduling.kick(run_id)
    return len(run_ids)


def recover_expired_leases(limit: int = 200) -> int:
    recovered = 0
    ttl = timedelta(seconds=settings.VECTORBEA_LEASE_SECONDS)
    while recovered < limit:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                "SELECT run_id, step_id, attempt, worker FROM eventlog_steplease "
                "WHERE expires_at <= now() ORDER BY expires_at LIMIT 1 FOR UPDATE SKIP LOCKED"
            )
            row = cursor.fetchone()
            if row is None:
                break
            run_id, step_id, attempt, worker = row
            if worker:
                log.warning(
                    "Lease of %s/%s attempt %s (%s) expired", run_id, step_id, attempt, worker
                )
                executor.mark_lost(run_id, step_id, attempt)
            else:
                # Unclaimed: its message was lost, or is still waiting behind a backlog
                # (Postgres cannot tell which). Send it again, and wait twice as long
                # before the next resend, so a long queue is not flooded with copies.
                cursor.execute(
                    "UPDATE eventlog_steplease SET resends = resends + 1, "
                    "expires_at = now() + %s * power(2, LEAST(resends + 1, %s)) "
                    "WHERE run_id = %s AND step_id = %s AND attempt = %s",
                    [ttl, MAX_RESEND_DOUBLINGS, run_id, step_id, attempt],
                )
                definition = store.definition_for(Run.current_version_of(run_id))
                queue = scheduling.queue_of(definition, step_id)
                scheduling.dispatch(run_id, step_id, attempt, queue)
        recovered += 1
    return recovered


def release_lost_reservations() -> int:
    """Budget reservations whose worker died mid-call: charge them (the provider may have
    billed the call) at what was reserved."""
    from vectorbea.budgets import ledger

    return ledger.sweep_expired()


def tick() -> int:
    from vectorbea.triggers import schedules, webhooks

    handled = recover_expired_leases() + wake_due_runs() + release_lost_reservations()
    return handled + schedules.fire_due_schedules() + webhooks.prune_deliveries()
