"""Runs survive losing Redis (flushed or restarted) and a crash-restart of Postgres.

These restart the machine's real services, so they are marked `disruptive` and run on
their own after the parallel part of the suite (see scripts/test)."""

import time

import pytest
import redis
from django.conf import settings
from django.db import DatabaseError, connection

from tests.support.live import event_rows, run_status, wait_for
from tests.support.services import restart_postgres_immediately, restart_redis
from tests.support.workflows import FAST_RETRY, chain, publish
from vectorbea.runs.commands import start_run

pytestmark = pytest.mark.disruptive


def all_completed(run_ids) -> bool:
    try:
        return all(run_status(run_id) == "completed" for run_id in run_ids)
    except DatabaseError:
        connection.close()  # the server went away under us; reconnect next time
        return False


def test_runs_complete_when_the_broker_database_is_flushed_and_redis_restarts(live, acme):
    slow = publish(
        acme, chain(8, "tool", {"tool": "record", "args": {"sleep": 0.2}}, retry=FAST_RETRY)
    )
    # Runs started with no worker up: their dispatch messages wait in Redis...
    early = [start_run(slow, {"n": n}).id for n in range(3)]
    redis.Redis.from_url(settings.REDIS_URL).flushdb()  # ...and are lost.
    live.scheduler()
    live.worker(processes=1, threads=4)
    later = [start_run(slow, {"n": n}).id for n in range(3, 6)]
    time.sleep(0.8)
    restart_redis()  # mid-run: every queue and message on the machine is gone
    wait_for(lambda: all_completed(early + later), timeout=90)
    for run_id in early + later:
        types = [t for _, t, _ in event_rows(run_id)]
        assert types.count("StepCompleted") == 8 and types[-1] == "RunCompleted"


def test_runs_complete_after_postgres_restarts_mid_run(live, acme):
    slow = publish(
        acme, chain(8, "tool", {"tool": "record", "args": {"sleep": 0.2}}, retry=FAST_RETRY)
    )
    live.scheduler()
    live.worker(processes=2, threads=4)
    run_ids = [start_run(slow, {"n": n}).id for n in range(4)]
    time.sleep(0.8)
    before = {run_id: event_rows(run_id) for run_id in run_ids}
    connection.close()
    restart_postgres_immediately()
    wait_for(lambda: all_completed(run_ids), timeout=120)
    for run_id in run_ids:
        after = event_rows(run_id)
        assert after[: len(before[run_id])] == before[run_id]  # no committed event lost
        assert [seq for seq, _, _ in after] == list(range(1, len(after) + 1))
        types = [t for _, t, _ in after]
        assert types.count("StepCompleted") == 8 and types[-1] == "RunCompleted"
