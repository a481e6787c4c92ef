"""Concurrent-run limits: slots per workspace and per workflow, freed by finished runs,
never over the limit when many claim at once."""

import threading

import pytest
from django.db import connection

from tests.support.live import flush_own_redis
from tests.support.workflows import chain, publish
from vectorbea.budgets.models import RunSlot
from vectorbea.budgets.slots import claim_slot, release_slot
from vectorbea.runs.commands import cancel_run, start_run


def claim(run, workspace_limit=None, workflow_limit=None) -> bool:
    return claim_slot(
        run.id,
        run.workspace_id,
        run.workflow_id,
        workspace_limit=workspace_limit,
        workflow_limit=workflow_limit,
    )


def test_a_workspace_runs_as_many_at_once_as_its_limit(acme):
    workflow = publish(acme, chain(1))
    first, second, third = (start_run(workflow, {}) for _ in range(3))

    assert [claim(first, 2), claim(second, 2), claim(third, 2)] == [True, True, False]
    assert claim(first, 2)  # it already holds a slot
    assert not RunSlot.objects.filter(run_id=third.id).exists()

    release_slot(first.id)
    release_slot(first.id)  # twice: nothing more

    assert claim(third, 2)
    assert set(RunSlot.objects.values_list("run_id", flat=True)) == {second.id, third.id}


def test_a_workflow_runs_as_many_at_once_as_its_own_limit(acme):
    nightly, hourly = publish(acme, chain(1), "nightly"), publish(acme, chain(1), "hourly")
    night_1, night_2, hour_1 = (start_run(w, {}) for w in (nightly, nightly, hourly))

    assert claim(night_1, workspace_limit=5, workflow_limit=1)
    assert not claim(night_2, workspace_limit=5, workflow_limit=1)
    assert claim(hour_1, workspace_limit=5, workflow_limit=1)
    assert not claim(night_2, workspace_limit=2, workflow_limit=None)


def test_a_finished_run_frees_its_slot_without_being_released(acme, alice):
    workflow = publish(acme, chain(1))
    finished, waiting = start_run(workflow, {}), start_run(workflow, {})
    assert claim(finished, 1)
    assert not claim(waiting, 1)

    cancel_run(finished.id, actor="alice")

    assert claim(waiting, 1)
    assert list(RunSlot.objects.values_list("run_id", flat=True)) == [waiting.id]


def test_without_limits_every_run_gets_a_slot_that_counts_once_limits_are_set(acme):
    workflow = publish(acme, chain(1))
    runs = [start_run(workflow, {}) for _ in range(3)]

    assert all(claim(run) for run in runs)
    assert RunSlot.objects.count() == 3
    assert not claim(start_run(workflow, {}), workspace_limit=3)


@pytest.fixture
def own_redis():
    """start_run rings the doorbell after commit; drop the messages nobody will take."""
    yield
    flush_own_redis()


@pytest.mark.django_db(transaction=True)
def test_runs_claiming_at_once_never_exceed_the_limit(acme, own_redis):
    nightly, hourly = publish(acme, chain(1), "nightly"), publish(acme, chain(1), "hourly")
    runs = [start_run(nightly if i % 2 else hourly, {}) for i in range(16)]
    barrier = threading.Barrier(len(runs))
    claimed = []

    def claimer(run) -> None:
        try:
            barrier.wait()
            if claim(run, workspace_limit=5, workflow_limit=3):
                claimed.append(run)
        finally:
            connection.close()

    threads = [threading.Thread(target=claimer, args=(run,)) for run in runs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert len(claimed) == 5
    assert sum(run.workflow_id == nightly.id for run in claimed) <= 3
    assert sum(run.workflow_id == hourly.id for run in claimed) <= 3
    assert set(RunSlot.objects.values_list("run_id", flat=True)) == {run.id for run in claimed}
