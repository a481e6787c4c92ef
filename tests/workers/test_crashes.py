"""A run survives its workers: SIGKILL, SIGSTOP past the lease, duplicate deliveries.

The scheduler recovers from Postgres alone: an expired lease is recorded as worker_lost and
the attempt is retried, through the same path as any other failure."""

import random
import signal
import time
from collections import Counter, defaultdict
from datetime import datetime

from django.conf import settings
from django.db import connection

from tests.support.live import event_rows, event_rows_at, run_status, side_effects, wait_for
from tests.support.workflows import FAST_RETRY, chain, publish
from vectorbea.runs.commands import start_run


def db_now() -> datetime:
    with connection.cursor() as cursor:
        cursor.execute("SELECT now()")
        return cursor.fetchone()[0]


def completed_attempts(run_id) -> dict[str, int]:
    return {p["step_id"]: p["attempt"] for _, t, p in event_rows(run_id) if t == "StepCompleted"}


def test_a_run_survives_repeated_sigkills_without_rerunning_completed_steps(live, acme):
    definition = chain(20, "tool", {"tool": "record", "args": {"sleep": 0.15}}, retry=FAST_RETRY)
    workflow = publish(acme, definition)
    live.scheduler()
    worker = live.worker()
    run = start_run(workflow, {})
    rng = random.Random(20261121)
    kills: list[datetime] = []
    for _ in range(5):
        wait_for(lambda: side_effects(run.id), timeout=20)  # this worker got going
        time.sleep(rng.uniform(0.2, 0.9))
        if run_status(run.id) == "completed":
            break
        live.kill(worker)
        kills.append(db_now())
        worker = live.worker()
    wait_for(lambda: run_status(run.id) == "completed", timeout=90)

    rows = event_rows(run.id)
    done = completed_attempts(run.id)
    assert sorted(done, key=lambda s: int(s[1:])) == [f"s{i}" for i in range(20)]
    # No completed step ran again: nothing started after the completed attempt, and the
    # completed attempt itself ran once.
    runs_per_attempt = Counter((e[0], e[1]) for e in side_effects(run.id) if e[2] == "start")
    for step_id, attempt in done.items():
        assert runs_per_attempt[(step_id, attempt)] == 1
        assert not [k for k in runs_per_attempt if k[0] == step_id and k[1] > attempt]
    # Each lost attempt is in the log as worker_lost, and was retried.
    lost = [p for _, t, p in rows if t == "StepFailed"]
    assert len(kills) >= 5
    assert lost, "at least one kill must have landed mid-step"
    assert all(p["error_class"] == "worker_lost" for p in lost)
    for p in lost:
        assert done[p["step_id"]] > p["attempt"]
    # Recovery starts within the lease timeout: each loss is recorded soon after a kill,
    # once the lease ran out (plus a scheduler pass; generous slack for a busy machine).
    lease = settings.VECTORBEA_LEASE_SECONDS
    recovered = [at for _, t, p, at in event_rows_at(run.id) if t == "StepFailed"]
    for at in recovered:
        since_kill = min((at - k).total_seconds() for k in kills if k <= at)
        assert since_kill <= lease + 5, f"recovered {since_kill:.1f}s after a kill"
    # Each step's seqs: one StepCompleted per step, never twice.
    assert Counter(p["step_id"] for _, t, p in rows if t == "StepCompleted") == {
        f"s{i}": 1 for i in range(20)
    }


def test_a_stalled_worker_cannot_append_its_late_result(live, acme):
    definition = chain(1, "tool", {"tool": "record", "args": {"sleep": 1.0}}, retry=FAST_RETRY)
    workflow = publish(acme, definition)
    live.scheduler()
    stalled = live.worker()
    run = start_run(workflow, {})
    wait_for(lambda: side_effects(run.id), timeout=20)
    live.signal(stalled, signal.SIGSTOP)
    # Past the lease: the scheduler records the attempt lost and a new worker retries it.
    time.sleep(settings.VECTORBEA_LEASE_SECONDS + 0.5)
    live.worker()
    wait_for(lambda: run_status(run.id) == "completed", timeout=30)
    live.signal(stalled, signal.SIGCONT)
    # The stalled worker wakes up, finishes attempt 1 and tries to record it: refused.
    wait_for(lambda: ("s0", 1, "end") in [(e[0], e[1], e[2]) for e in side_effects(run.id)])
    time.sleep(0.5)
    rows = event_rows(run.id)
    assert [(t, p.get("attempt")) for _, t, p in rows if t.startswith("Step")] == [
        ("StepStarted", 1),
        ("StepFailed", 1),
        ("StepStarted", 2),
        ("StepCompleted", 2),
    ]
    assert next(p for _, t, p in rows if t == "StepFailed")["error_class"] == "worker_lost"
    assert rows[-1][1] == "RunCompleted"


def test_duplicate_messages_produce_no_duplicate_events(live, acme):
    from workers.actors import advance_run, execute_step

    workflow = publish(acme, chain(5, "tool", {"tool": "record"}))
    run = start_run(workflow, {})  # its first dispatch waits in Redis: no worker yet
    execute_step.send(str(run.id), "s0", 1)  # the same delivery again
    for _ in range(3):
        advance_run.send(str(run.id))
    live.worker(processes=2, threads=4)
    wait_for(lambda: run_status(run.id) == "completed", timeout=30)
    time.sleep(0.5)  # let any straggling duplicate finish
    rows = event_rows(run.id)
    seen = defaultdict(int)
    for _, t, p in rows:
        seen[(t, p.get("step_id"), p.get("attempt"))] += 1
    assert all(count == 1 for count in seen.values()), seen
    assert [e[0] for e in side_effects(run.id) if e[2] == "start"] == [f"s{i}" for i in range(5)]


def test_a_step_that_kills_its_worker_every_time_stops_at_its_maximum_attempts(live, acme):
    """No endless redelivery: each crash is one worker_lost attempt, and once the step's
    attempts are used up the run waits for a person."""
    definition = chain(2, "tool", {"tool": "record"}, retry=FAST_RETRY)
    definition["steps"][0] = {
        "id": "s0",
        "kind": "tool",
        "config": {"tool": "kill_worker"},
        "retry": {**FAST_RETRY, "maximum_attempts": 3},
    }
    workflow = publish(acme, definition)
    live.scheduler()
    worker = live.worker()
    run = start_run(workflow, {})
    deadline = time.monotonic() + 90
    while run_status(run.id) != "needs_attention" and time.monotonic() < deadline:
        if worker.poll() is not None:  # Dramatiq stops when a worker dies: a supervisor
            worker = live.worker()  # (supervisord, systemd) starts it again
        time.sleep(0.2)
    # More workers keep running for a while: nothing more happens to the run.
    if worker.poll() is not None:
        worker = live.worker()
    time.sleep(3)

    assert run_status(run.id) == "needs_attention"
    rows = event_rows(run.id)
    types = [t for _, t, _ in rows]
    assert types.count("StepStarted") == 3
    lost = [p for _, t, p in rows if t == "StepFailed"]
    assert [p["error_class"] for p in lost] == ["worker_lost"] * 3
    assert types[-1] == "RunNeedsAttention"
    (stopped,) = [p for _, t, p in rows if t == "RunNeedsAttention"]
    assert "gave up after 3 attempts" in stopped["summary"]
    assert [e[1] for e in side_effects(run.id) if e[0] == "s0"] == [1, 2, 3]  # ran 3 times
    assert "s1" not in {e[0] for e in side_effects(run.id)}
