"""Concurrency limits: a run that finds no place waits queued (one event, no attempt, no
lease) and is admitted, oldest first, when a run of its workspace ends."""

import threading

import pytest
from django.db import connection

from tests.support.live import flush_own_redis
from tests.support.workflows import chain, publish
from vectorbea.budgets import admission, killswitch
from vectorbea.budgets.guard import CACHE
from vectorbea.budgets.models import WorkspaceLimits
from vectorbea.eventlog import store
from vectorbea.eventlog.models import RunSummary, StepLease
from vectorbea.runs.commands import cancel_run, start_run

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def fresh_limits():
    flush_own_redis()
    CACHE.clear()
    yield
    CACHE.clear()


def types(run) -> list[str]:
    return [type(r.event).__name__ for r in store.read_events(run.id)]


def status(run) -> str:
    return RunSummary.objects.get(run=run).status


def test_a_run_with_no_place_waits_queued_and_goes_on_when_one_ends(acme):
    WorkspaceLimits.objects.create(workspace=acme, max_concurrent_runs=1)
    workflow = publish(acme, chain(2))
    first, second, third = (start_run(workflow, {}) for _ in range(3))

    assert status(first) == "running"
    assert (status(second), status(third)) == ("queued", "queued")
    assert types(second) == ["RunStarted", "RunQueued"]  # no attempt, no lease
    assert not StepLease.objects.filter(run__in=[second, third]).exists()
    summary = RunSummary.objects.get(run=second)
    assert summary.current_label.startswith(
        "Waiting for a free place: the workspace runs at most 1"
    )
    assert summary.attempts == 0

    cancel_run(first.id, actor="alice")  # its end frees the place: the oldest goes on

    assert types(second)[-2:] == ["RunAdmitted", "StepStarted"]
    assert status(second) == "running" and status(third) == "queued"
    assert store.load(second.id).state.step("s0").attempt == 1


def test_a_full_workflow_does_not_hold_back_another_workflows_queued_run(acme):
    WorkspaceLimits.objects.create(
        workspace=acme, max_concurrent_runs=3, max_concurrent_runs_per_workflow=1
    )
    busy, other = publish(acme, chain(1), name="Busy"), publish(acme, chain(1), name="Other")
    going = start_run(busy, {})
    waiting = start_run(busy, {})
    assert status(waiting) == "queued"
    assert status(start_run(other, {})) == "running"  # its own workflow has room

    assert admission.admit_queued(acme.id) == 0  # the busy workflow is still full
    cancel_run(going.id, actor="alice")
    assert status(waiting) == "running"


def test_a_raised_limit_admits_the_queued_runs(client, alice, acme):
    limits = WorkspaceLimits.objects.create(workspace=acme, max_concurrent_runs=1)
    workflow = publish(acme, chain(1))
    runs = [start_run(workflow, {}) for _ in range(3)]
    assert [status(run) for run in runs] == ["running", "queued", "queued"]

    limits.max_concurrent_runs = 2
    limits.save(update_fields=["max_concurrent_runs"])
    assert admission.admit_queued(acme.id) == 1  # what the limits page does on saving

    assert [status(run) for run in runs] == ["running", "running", "queued"]


def test_a_stopped_workspace_admits_nobody(acme):
    WorkspaceLimits.objects.create(workspace=acme, max_concurrent_runs=1)
    workflow = publish(acme, chain(1))
    first, second = start_run(workflow, {}), start_run(workflow, {})
    killswitch.stop_everything(acme.id, actor="alice", reason="audit")

    cancel_run(first.id, actor="alice")

    assert "RunAdmitted" not in types(second) and "StepStarted" not in types(second)


def test_runs_started_at_once_never_go_past_the_limit(acme):
    WorkspaceLimits.objects.create(workspace=acme, max_concurrent_runs=3)
    workflow = publish(acme, chain(1))
    started = []

    def start() -> None:
        try:
            for _ in range(4):
                started.append(start_run(workflow, {}))
        finally:
            connection.close()

    threads = [threading.Thread(target=start) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    statuses = [status(run) for run in started]
    assert len(statuses) == 20
    assert statuses.count("running") == 3 and statuses.count("queued") == 17
