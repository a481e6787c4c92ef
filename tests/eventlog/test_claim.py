"""A worker's claim of an attempt commits without waiting for the WAL flush (it is not a
step boundary), and nothing else does: the setting ends with the claim's own transaction
and is never applied to a transaction the caller holds open."""

import pytest
from django.db import connection, transaction

from tests.support.live import flush_own_redis
from tests.support.workflows import chain, publish
from vectorbea.eventlog import store
from vectorbea.eventlog.models import StepLease
from vectorbea.runs.commands import start_run

pytestmark = pytest.mark.django_db(transaction=True)


def synchronous_commit() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        return cursor.fetchone()[0]


def test_a_claim_takes_the_lease_once_and_leaves_later_commits_durable(acme):
    flush_own_redis()
    run = start_run(publish(acme, chain(2)), {})
    lease = StepLease.objects.get(run=run)

    loaded = store.claim_and_load(run.id, lease.step_id, lease.attempt, "worker-a")
    again = store.claim_and_load(run.id, lease.step_id, lease.attempt, "worker-b")

    assert loaded is not None and loaded.state.step(lease.step_id).status == "running"
    assert again is None  # the lease was taken: a second delivery does not run the step
    assert StepLease.objects.get(pk=lease.pk).worker == "worker-a"
    assert synchronous_commit() == "on"  # the next append, a step boundary, is durable


def test_a_claim_inside_a_callers_transaction_keeps_that_transaction_durable(acme):
    flush_own_redis()
    run = start_run(publish(acme, chain(2)), {})
    lease = StepLease.objects.get(run=run)

    with transaction.atomic():
        assert store.claim_and_load(run.id, lease.step_id, lease.attempt, "worker-a")
        assert synchronous_commit() == "on"
