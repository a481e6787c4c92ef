"""The kill switch stops everything, with real workers (issue 08)."""

import threading
import time

import psycopg
import pytest
from django.db import connection

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
from tests.support.workflows import chain, publish
from vectorbea.budgets import killswitch
from vectorbea.eventlog.models import Run
from vectorbea.runs.commands import WorkspaceStopped, start_run


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
