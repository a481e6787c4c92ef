"""What the sweeper and a wake-up do when something goes wrong with one item: a dead
database connection is tried again at once, and one bad item never stalls the others."""

import time
from datetime import timedelta

import psycopg
import pytest
from django.db import connection
from django.db.models import F

from tests.support.live import flush_own_redis
from tests.support.workflows import chain, publish, record
from vectorbea.engine import StepFailed
from vectorbea.eventlog import store
from vectorbea.eventlog.models import StepLease
from vectorbea.runs.commands import start_run
from workers import runtime, sweeper

pytestmark = pytest.mark.django_db(transaction=True)


def types(run_id) -> list[str]:
    return [type(r.event).__name__ for r in store.read_events(run_id)]


def kill_own_connection() -> None:
    """What a failover or an operator's pg_terminate_backend does to a worker's connection."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    with psycopg.connect(**connection.get_connection_params(), autocommit=True) as other:
        other.execute("SELECT pg_terminate_backend(%s)", [pid])


def test_a_wake_up_that_hits_a_dead_connection_tries_again_at_once(acme):
    flush_own_redis()
    flow = chain(2)
    flow["steps"][0]["retry"] = {"initial_interval_seconds": 0.2, "jitter": 0}
    run = start_run(publish(acme, flow), {})
    record(run.id, StepFailed("s0", 1, "transient", "overloaded"))  # retried in 0.2 s
    time.sleep(0.3)  # the retry is due: a wake-up starts attempt 2 and runs the run on
    kill_own_connection()

    runtime.advance(run.id)  # its first read fails on the dead connection

    assert types(run.id)[-1] == "RunCompleted"  # not left for the sweeper's next look


def expired_claimed_lease(run) -> StepLease:
    StepLease.objects.filter(run=run).update(
        worker="gone:1", expires_at=F("expires_at") - timedelta(days=1)
    )
    return StepLease.objects.get(run=run)


def test_a_lease_the_sweeper_fails_on_is_put_back_and_the_others_are_recovered(acme, monkeypatch):
    flush_own_redis()
    workflow = publish(acme, chain(1))
    bad, good = start_run(workflow, {}), start_run(workflow, {})
    bad_lease, good_lease = expired_claimed_lease(bad), expired_claimed_lease(good)
    recorded = runtime.mark_lost

    def mark_lost(run_id, step_id, attempt):
        if run_id == bad.id:
            raise RuntimeError("a bug in one item")
        recorded(run_id, step_id, attempt)

    monkeypatch.setattr(runtime, "mark_lost", mark_lost)
    failures = sweeper.SWEEPER_FAILURES.labels("leases")._value.get()

    assert sweeper.recover_expired_leases() == 2

    assert "StepFailed" in types(good.id)  # recorded as worker_lost, retried
    assert not StepLease.objects.filter(pk=good_lease.pk).exists()
    postponed = StepLease.objects.get(pk=bad_lease.pk)
    assert postponed.expires_at > store.db_now() + timedelta(seconds=20)  # looked at later
    assert sweeper.SWEEPER_FAILURES.labels("leases")._value.get() == failures + 1


def test_a_failing_task_does_not_stop_the_sweepers_other_tasks(acme, monkeypatch):
    flush_own_redis()
    run = start_run(publish(acme, chain(1)), {})
    expired_claimed_lease(run)
    done = []

    def broken() -> int:
        raise RuntimeError("a bug in the reservations task")

    def schedules() -> int:
        done.append("schedules")
        return 0

    monkeypatch.setattr(
        sweeper,
        "tasks",
        lambda: (
            ("reservations", broken),
            ("leases", sweeper.recover_expired_leases),
            ("schedules", schedules),
        ),
    )
    failures = sweeper.SWEEPER_FAILURES.labels("reservations")._value.get()

    assert sweeper.tick() == 1  # the lease, despite the failure before it

    assert done == ["schedules"]
    assert "StepFailed" in types(run.id)
    assert sweeper.SWEEPER_FAILURES.labels("reservations")._value.get() == failures + 1
