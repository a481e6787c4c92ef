"""The kill switch stops everything, with real workers, and nothing gets past it."""

import threading
import time

import psycopg
import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse

from tests.support.fake_llm import FakeLLM, stall
from tests.support.live import (
    Live,
    event_rows,
    event_rows_at,
    flush_own_redis,
    prepare_side_effects,
    run_status,
    wait_for,
)
from tests.support.workflows import chain, publish, record
from vectorbea.accounts.models import Role
from vectorbea.budgets import killswitch
from vectorbea.engine import RunPaused, StepCompleted, StepFailed
from vectorbea.eventlog import store
from vectorbea.eventlog.models import Run, StepLease
from vectorbea.runs.commands import (
    ActionRefused,
    WorkspaceStopped,
    pause_run,
    resume_run,
    start_run,
)
from workers.runtime import record_outcome


def db_now():
    with connection.cursor() as cursor:
        cursor.execute("SELECT clock_timestamp()")
        return cursor.fetchone()[0]


def test_the_switch_stops_every_run_and_nothing_starts_after_it(live, acme):
    workflow = publish(acme, chain(30, "tool", {"tool": "record", "args": {"sleep": 0.2}}))
    live.scheduler()
    live.worker(threads=10)  # 20 threads in all: every run has one
    live.worker(threads=10)
    runs = [start_run(workflow, {}) for _ in range(20)]
    wait_for(
        lambda: all([t for _, t, _ in event_rows(r.id)].count("StepStarted") >= 2 for r in runs),
        timeout=60,
    )

    thrown = db_now()
    stopped = killswitch.stop_everything(acme.id, actor="alice", reason="runaway spend")
    time.sleep(6)

    assert stopped == 20
    for run in runs:
        rows = event_rows_at(run.id)
        (paused,) = [(seq, p) for seq, t, p, _ in rows if t == "RunPaused"]
        assert paused[1] == {"actor": "alice", "reason": "runaway spend", "stopped": True}
        assert not [seq for seq, t, _, _ in rows if t == "StepStarted" and seq > paused[0]]
        late = [at for _, t, _, at in rows if t == "StepStarted" and at > thrown]
        assert all((at - thrown).total_seconds() < 5 for at in late)
        assert run_status(run.id) == "paused"
    with pytest.raises(WorkspaceStopped, match="kill switch"):
        start_run(workflow, {})

    killswitch.allow_again(acme.id, actor="alice")
    assert killswitch.resume_stopped(acme.id, actor="alice") == 20
    wait_for(lambda: all(run_status(r.id) == "completed" for r in runs), timeout=120)
    for run in runs:  # every step ran to completion exactly once
        completed = [p["step_id"] for _, t, p in event_rows(run.id) if t == "StepCompleted"]
        assert sorted(completed) == sorted(f"s{i}" for i in range(30))


def test_an_llm_call_in_flight_is_abandoned_at_the_next_heartbeat(transactional_db, acme):
    prepare_side_effects()
    flush_own_redis()
    with FakeLLM() as fake:
        fake.script(stall(30))  # the first call never answers in time
        live = Live(
            VECTORBEA_OPENAI_BASE_URL=fake.openai_url,
            VECTORBEA_OPENAI_API_KEY="sk-test-switch-0123456789",
        )
        try:
            live.scheduler()
            live.worker(threads=1)  # one thread: it must be freed to run anything else
            config = {"provider": "openai", "model": "gpt-4o-mini", "prompt": "Hi"}
            run = start_run(publish(acme, chain(1, "llm", config)), {})
            wait_for(lambda: len(fake.requests) == 1, timeout=30)

            started = time.monotonic()
            killswitch.stop_everything(acme.id, actor="alice", reason="stop")
            killswitch.allow_again(acme.id, actor="alice")
            wait_for(lambda: killswitch.resume_stopped(acme.id, actor="alice") == 1, timeout=5)
            wait_for(lambda: run_status(run.id) == "completed", timeout=30)
            again = time.monotonic() - started
        finally:
            live.stop_all()

    # The stalled call was walked away from within a few heartbeats, not after 30 s.
    assert again < 10
    types = [t for _, t, _ in event_rows(run.id)]
    assert types.count("StepInterrupted") == 1 and types.count("StepStarted") == 2
    interrupted = next(p for _, t, p in event_rows(run.id) if t == "StepInterrupted")
    assert interrupted["actor"] == "alice" and interrupted["attempt"] == 1
    assert len(fake.requests) == 2
    assert not [t for t in types if t == "StepFailed"]  # an interruption is not a failure


def test_resuming_is_refused_while_the_switch_is_on(db, acme):
    killswitch.stop_everything(acme.id, actor="alice", reason="audit")
    with pytest.raises(Exception, match="Turn the kill switch off"):
        killswitch.resume_stopped(acme.id, actor="alice")


def test_a_start_waiting_for_the_switch_to_commit_is_refused(transactional_db, acme):
    """A run started while the switch is being thrown waits for it, then reads it thrown:
    it never starts after the switch has listed the runs to stop."""
    workflow = publish(acme, chain(1))
    start_run(workflow, {})  # this process now remembers the workflow's head
    outcome: dict[str, object] = {}

    def start() -> None:
        try:
            outcome["run"] = start_run(workflow, {})
        except WorkspaceStopped as exc:
            outcome["refused"] = exc
        finally:
            connection.close()

    with psycopg.connect(**connection.get_connection_params()) as switch:
        # What killswitch.stop_everything commits: the workspace row's update lock, then
        # the limits marked stopped.
        switch.execute("SELECT 1 FROM accounts_workspace WHERE id = %s FOR UPDATE", [acme.id])
        switch.execute(
            "INSERT INTO budgets_workspacelimits (workspace_id, soft_threshold_percent, "
            "over_budget, max_steps_per_run, max_attempts_per_step, stopped_at, stopped_by, "
            "stop_reason, updated_at) VALUES (%s, 80, 'pause', 1000, 10, now(), 'alice', '', "
            "now())",
            [acme.id],
        )
        starter = threading.Thread(target=start)
        starter.start()
        time.sleep(0.5)
        waiting = starter.is_alive()
    starter.join(timeout=10)

    assert waiting  # it waited for the switch's transaction
    assert "refused" in outcome and "run" not in outcome
    assert Run.objects.filter(workflow=workflow).count() == 1


def failed_run(workspace) -> Run:
    run = start_run(publish(workspace, chain(2), name="Nightly"), {})
    record(run.id, StepFailed("s0", 1, "permanent", "bad config", detail={"then": "fail"}))
    assert run_status(run.id) == "failed"
    return run


def retry_from_the_run_page(acme, alice, run) -> str:
    client = Client()
    client.force_login(alice)
    url = reverse("run-retry", kwargs={"ws": acme.slug, "run_id": run.id})
    return client.post(url, headers={"HX-Request": "true"}).content.decode()


def retry_in_bulk(acme, alice, run) -> str:
    client = Client()
    client.force_login(alice)
    url = reverse("runs-bulk", kwargs={"ws": acme.slug})
    response = client.post(
        url, {"action": "retry", "run": [str(run.id)]}, headers={"HX-Request": "true"}
    )
    return response.content.decode()


def retry_through_the_api(acme, alice, run) -> str:
    from tests.api.conftest import api_as

    response = api_as(acme, Role.ADMIN, "ci").post(f"/runs/{run.id}/retry")
    assert response.status_code == 409
    return response.json()["detail"]


@pytest.mark.parametrize(
    "retry",
    [retry_from_the_run_page, retry_in_bulk, retry_through_the_api],
    ids=lambda f: f.__name__,
)
def test_no_retry_gets_past_the_switch(db, acme, alice, retry):
    run = failed_run(acme)
    before = [t for _, t, _ in event_rows(run.id)]
    killswitch.stop_everything(acme.id, actor="alice", reason="runaway spend")

    said = retry(acme, alice, run)

    assert "kill switch" in said and "runaway spend" in said
    assert [t for _, t, _ in event_rows(run.id)] == before  # nothing appended, nothing started
    assert run_status(run.id) == "failed"
    assert not StepLease.objects.filter(run=run).exists()


def test_a_resume_waiting_for_the_switch_to_commit_is_refused(transactional_db, acme):
    """A person's resume while the switch is being thrown waits for it, then reads it
    thrown: the run it resumes can never slip past the switch's list of runs to stop."""
    run = start_run(publish(acme, chain(2)), {})
    pause_run(run.id, actor="alice")
    outcome: dict[str, object] = {}

    def resume() -> None:
        try:
            resume_run(run.id, actor="alice")
            outcome["resumed"] = True
        except ActionRefused as exc:
            outcome["refused"] = str(exc)
        finally:
            connection.close()

    with psycopg.connect(**connection.get_connection_params()) as switch:
        switch.execute("SELECT 1 FROM accounts_workspace WHERE id = %s FOR UPDATE", [acme.id])
        switch.execute(
            "INSERT INTO budgets_workspacelimits (workspace_id, soft_threshold_percent, "
            "over_budget, max_steps_per_run, max_attempts_per_step, stopped_at, stopped_by, "
            "stop_reason, updated_at) VALUES (%s, 80, 'pause', 1000, 10, now(), 'alice', "
            "'audit', now())",
            [acme.id],
        )
        resumer = threading.Thread(target=resume)
        resumer.start()
        time.sleep(0.5)
        waiting = resumer.is_alive()
    resumer.join(timeout=10)

    assert waiting  # it waited for the switch's transaction
    assert "kill switch" in outcome.get("refused", "") and "resumed" not in outcome
    assert "RunResumed" not in [t for _, t, _ in event_rows(run.id)]


def test_a_worker_finishing_a_step_after_the_switch_starts_nothing_more(db, acme):
    """The switch is thrown and the run not yet stopped by it: the worker's own append,
    which would start the next step, records the run paused by the switch instead."""
    run = start_run(publish(acme, chain(3)), {})
    with connection.cursor() as cursor:  # the switch as thrown, before it reaches the run
        cursor.execute(
            "INSERT INTO budgets_workspacelimits (workspace_id, soft_threshold_percent, "
            "over_budget, max_steps_per_run, max_attempts_per_step, stopped_at, stopped_by, "
            "stop_reason, updated_at) VALUES (%s, 80, 'pause', 1000, 10, now(), 'alice', "
            "'runaway spend', now())",
            [acme.id],
        )

    appended = record_outcome(store.load(run.id), [StepCompleted("s0", 1, {})], claim=True)

    assert [type(r.event).__name__ for r in appended.events] == ["StepCompleted", "RunPaused"]
    assert appended.events[-1].event == RunPaused("alice", "runaway spend", stopped=True)
    assert not appended.started and run_status(run.id) == "paused"
    assert not StepLease.objects.filter(run=run).exists()
