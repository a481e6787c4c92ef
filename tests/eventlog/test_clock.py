"""The engine's clock is the database's, read with each statement and carried forward by
this process: a transaction held open (an operator's action with gates, or this test's
own transaction) must not carry it backwards."""

import time

import psycopg
import pytest
from django.db import connection

from tests.support.workflows import chain, publish
from vectorbea.eventlog import store
from vectorbea.eventlog.models import RunSummary
from vectorbea.runs.commands import start_run

pytestmark = pytest.mark.django_db


def test_runs_started_one_after_another_in_one_open_transaction_are_stamped_in_order(acme):
    workflow = publish(acme, chain(1))
    time.sleep(0.05)  # the test's transaction began before this: its now() stays there
    settings = connection.settings_dict
    with psycopg.connect(
        host=settings["HOST"],
        port=settings["PORT"],
        user=settings["USER"],
        dbname=settings["NAME"],
        autocommit=True,
    ) as other:  # a reading as another statement, outside this transaction, takes it
        store.DbClock.reading(other.execute("SELECT statement_timestamp()").fetchone()[0])

    first = start_run(workflow, {})
    second = start_run(workflow, {})

    started = dict(RunSummary.objects.values_list("run_id", "started_at"))
    assert started[first.id] < started[second.id]
    assert first.created_at < second.created_at
    said = second.created_at
    second.refresh_from_db()
    assert second.created_at == said  # the row says what start_run said


def test_a_clock_reading_inside_an_open_transaction_is_current():
    before = store.db_now()
    time.sleep(0.05)
    assert (store.db_now() - before).total_seconds() >= 0.05
