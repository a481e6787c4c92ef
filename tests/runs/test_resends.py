"""An attempt nobody claimed is sent again when its lease expires (its message may have
been lost), but each resend waits twice as long as the one before: a backlog longer than a
lease is not flooded with copies of itself."""

from datetime import timedelta

import pytest
import redis
from django.conf import settings
from django.db.models import F

from tests.support.live import flush_own_redis
from tests.support.workflows import chain, publish
from vectorbea.eventlog.models import StepLease
from vectorbea.eventlog.store import db_now
from vectorbea.runs.commands import start_run
from workers import sweeper
from workers.broker import broker

pytestmark = pytest.mark.django_db(transaction=True)


def waiting_in_steps_queue() -> int:
    return redis.Redis.from_url(settings.REDIS_URL).llen(f"{broker.namespace}:steps")


def expire(lease: StepLease) -> None:
    StepLease.objects.filter(pk=lease.pk).update(expires_at=F("expires_at") - timedelta(days=1))


def test_each_resend_of_an_unclaimed_attempt_waits_twice_as_long(acme):
    flush_own_redis()
    run = start_run(publish(acme, chain(1)), {})
    assert waiting_in_steps_queue() == 1  # the first dispatch; no worker runs here
    lease = StepLease.objects.get(run=run)
    ttl = timedelta(seconds=settings.VECTORBEA_LEASE_SECONDS)

    waits = []
    for _ in range(7):
        expire(lease)
        assert sweeper.recover_expired_leases() == 1
        lease = StepLease.objects.get(pk=lease.pk)
        waits.append(round((lease.expires_at - db_now()) / ttl))

    assert waits == [2, 4, 8, 16, 32, 32, 32]
    assert lease.resends == 7 and lease.worker == ""
    assert waiting_in_steps_queue() == 1 + 7  # one copy per resend, no more
    assert sweeper.recover_expired_leases() == 0  # not due again yet
