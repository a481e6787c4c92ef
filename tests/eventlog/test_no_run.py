"""The rows every step writes have no foreign key to their run (it would lock the run's
row in every step): the append itself refuses a run that does not exist."""

import uuid

import pytest
from django.db import connection

from vectorbea.engine import Definition, RunStarted, RunState
from vectorbea.eventlog import store

pytestmark = pytest.mark.django_db(transaction=True)


def test_an_append_to_a_run_that_does_not_exist_writes_nothing():
    missing = uuid.uuid4()
    definition = Definition.from_json({"steps": [], "edges": []})

    with pytest.raises(LookupError):
        store.append(
            missing,
            RunState.initial(),
            lambda state, now: [RunStarted(workflow_id="w", version_id="v", input={})],
            definition,
            now=store.clock_now(),
        )

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM eventlog_event WHERE run_id = %s", [missing])
        assert cursor.fetchone()[0] == 0
        cursor.execute(
            "SELECT count(*) FROM pg_constraint WHERE contype = 'f' "
            "AND confrelid = 'eventlog_run'::regclass AND conrelid::regclass::text IN "
            "('eventlog_event', 'eventlog_steplease', 'eventlog_checkpoint')"
        )
        assert cursor.fetchone()[0] == 0
