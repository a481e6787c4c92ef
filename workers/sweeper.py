"""The sweeper: finds in Postgres what is due and rings the doorbell.

- runs whose `wake_at` has come (a retry's backoff ended, a ready step nobody started,
  a wake-up message that was lost): pushed back by a recheck interval (so a lost message
  is re-sent), and kicked;
- expired step leases: an unclaimed one (its dispatch message was lost) is dispatched
  again; a claimed one means its worker died or stalled, recorded as worker_lost;
- runs queued for a place that a lost wake-up left waiting: admitted;
- budget reservations of calls whose worker died: charged at what was reserved;
- due cron schedules fired, and webhook deliveries older than a day forgotten (triggers).

Several sweepers may run at once: SKIP LOCKED hands each row to one of them.
"""

import logging
from collections.abc import Callable
from datetime import timedelta

from django.db import DatabaseError, transaction
from prometheus_client import Counter

from vectorbea.eventlog import leases, store
from vectorbea.eventlog.models import Run
from workers import dispatch, runtime

log = logging.getLogger(__name__)

RECHECK = timedelta(seconds=5)
# An item the sweeper failed on is looked at again this much later: the items behind it
# go first, and a bug in one cannot hold up the others.
FAILED_ITEM_BACKOFF = timedelta(seconds=30)

SWEEPER_FAILURES = Counter(
    "vectorbea_sweeper_failures",
    "Items the sweeper failed on (logged, and tried again later), by task.",
    ["task"],
)


def wake_due_runs(limit: int = 500) -> int:
    with transaction.atomic():
        run_ids = leases.due_runs(limit, RECHECK)
        for run_id in run_ids:
            dispatch.kick(run_id)
    return len(run_ids)


def recover_expired_leases(limit: int = 200) -> int:
    recovered = 0
    while recovered < limit:
        key = None
        try:
            with transaction.atomic():
                expired = leases.next_expired()
                if expired is None:
                    break
                key, worker = expired
                _recover(key, worker)
        except Exception:
            if key is None:
                raise  # the database itself: the scheduler's loop waits and tries again
            _failed("leases", f"the expired lease of {key[0]}/{key[1]} attempt {key[2]}")
            leases.postpone(key, FAILED_ITEM_BACKOFF)
        recovered += 1
    return recovered


def _recover(key: leases.Key, worker: str) -> None:
    run_id, step_id, attempt = key
    if worker:
        log.warning("Lease of %s/%s attempt %s (%s) expired", run_id, step_id, attempt, worker)
        runtime.mark_lost(run_id, step_id, attempt)
    else:
        # Unclaimed: its message was lost, or is still waiting behind a backlog (Postgres
        # cannot tell which). Send it again, later each time.
        leases.resend_later(key)
        definition = store.definition_for(Run.current_version_of(run_id))
        dispatch.dispatch(run_id, step_id, attempt, dispatch.queue_of(definition, step_id))


def _failed(task: str, item: str) -> None:
    """Log and count an item the sweeper failed on (its exception is being handled)."""
    log.exception("The sweeper failed on %s; it goes on with the rest", item)
    SWEEPER_FAILURES.labels(task).inc()


def release_lost_reservations() -> int:
    """Budget reservations whose worker died mid-call: charge them (the provider may have
    answered, and billed, the call)."""
    from vectorbea.budgets import ledger

    return ledger.sweep_expired()


def tasks() -> tuple[tuple[str, Callable[[], int]], ...]:
    from vectorbea.budgets import admission
    from vectorbea.triggers import schedules, webhooks

    return (
        ("leases", recover_expired_leases),
        ("wake-ups", wake_due_runs),
        ("admissions", admission.admit_everywhere),
        ("reservations", release_lost_reservations),
        ("schedules", schedules.fire_due_schedules),
        ("webhooks", webhooks.prune_deliveries),
    )


def tick() -> int:
    """One pass over everything due. A task that fails is logged and counted, and the
    others still run: one bad item never stalls timers and cron for every workspace."""
    handled = 0
    for name, task in tasks():
        try:
            handled += task()
        except DatabaseError:
            raise  # the database is down: the scheduler's loop waits and tries again
        except Exception:
            _failed(name, f"its {name} task")
    return handled
