"""A worker's claim of an attempt: exactly one delivery of a step's message takes its lease."""

import pytest

from tests.support.live import flush_own_redis
from tests.support.workflows import chain, publish
from vectorbea.eventlog import store
from vectorbea.eventlog.models import StepLease
from vectorbea.runs.commands import start_run

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_claim_takes_the_lease_once(acme):
    flush_own_redis()
    run = start_run(publish(acme, chain(2)), {})
    lease = StepLease.objects.get(run=run)

    loaded = store.claim_and_load(run.id, lease.step_id, lease.attempt, "worker-a")
    again = store.claim_and_load(run.id, lease.step_id, lease.attempt, "worker-b")

    assert loaded is not None and loaded.state.step(lease.step_id).status == "running"
    assert again is None  # the lease was taken: a second delivery does not run the step
    assert StepLease.objects.get(pk=lease.pk).worker == "worker-a"
