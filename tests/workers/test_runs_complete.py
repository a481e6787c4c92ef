"""Runs move forward on real worker processes, against real Postgres and Redis."""

from collections import Counter

import pytest

from tests.support.live import event_rows, event_types, run_status, side_effects, wait_for
from tests.support.workflows import FAST_RETRY, chain, publish
from vectorbea.runs.commands import start_run


def finished(run_id):
    return lambda: run_status(run_id) in ("completed", "failed", "cancelled", "needs_attention")


def test_it_runs_a_chain_of_steps_to_completion(live, acme):
    workflow = publish(acme, chain(10, "tool", {"tool": "record"}))
    live.worker()
    run = start_run(workflow, {})
    wait_for(finished(run.id), timeout=30)
    assert run_status(run.id) == "completed"
    types = event_types(run.id)
    assert types[0] == "RunStarted" and types[-1] == "RunCompleted"
    assert Counter(types) == {
        "RunStarted": 1,
        "StepStarted": 10,
        "StepCompleted": 10,
        "RunCompleted": 1,
    }
    assert [row[0] for row in side_effects(run.id) if row[2] == "end"] == [
        f"s{i}" for i in range(10)
    ]


def test_parallel_branches_run_and_the_join_waits_for_all(live, acme):
    definition = {
        "input_schema": {"type": "object"},
        "steps": [
            {"id": "fan", "kind": "noop", "config": {"output": 1}},
            *[
                {
                    "id": f"b{i}",
                    "kind": "tool",
                    "config": {"tool": "record", "args": {"sleep": 0.3}},
                }
                for i in range(3)
            ],
            {"id": "join", "kind": "tool", "config": {"tool": "record"}},
        ],
        "edges": [
            *[{"source": "fan", "target": f"b{i}", "port": None} for i in range(3)],
            *[{"source": f"b{i}", "target": "join", "port": None} for i in range(3)],
        ],
    }
    workflow = publish(acme, definition)
    live.worker(processes=1, threads=4)
    run = start_run(workflow, {})
    wait_for(finished(run.id), timeout=30)
    assert run_status(run.id) == "completed"
    effects = side_effects(run.id)
    branch_starts = [e for e in effects if e[0].startswith("b") and e[2] == "start"]
    branch_ends = [e for e in effects if e[0].startswith("b") and e[2] == "end"]
    join_start = next(i for i, e in enumerate(effects) if e[0] == "join")
    # The branches overlapped (all started before any ended) and the join came after all.
    assert len(branch_starts) == 3
    assert max(effects.index(e) for e in branch_starts) < min(effects.index(e) for e in branch_ends)
    assert join_start > max(effects.index(e) for e in branch_ends)
    completed = [row for row in event_rows(run.id) if row[1] == "StepCompleted"]
    assert completed[-1][2]["step_id"] == "join"


def test_a_failed_step_is_retried_alone_with_backoff(live, acme):
    definition = chain(3, "tool", {"tool": "record"})
    definition["steps"][1] = {
        "id": "s1",
        "kind": "tool",
        "config": {"tool": "fail_until", "args": {"attempt": 3}},
        "retry": FAST_RETRY,
    }
    workflow = publish(acme, definition)
    live.worker()
    live.scheduler()
    run = start_run(workflow, {})
    wait_for(finished(run.id), timeout=30)
    assert run_status(run.id) == "completed"
    rows = event_rows(run.id)
    retries = [p for _, t, p in rows if t == "RetryScheduled"]
    assert [r["next_attempt"] for r in retries] == [2, 3]
    assert all(r["reason"] == "transient" and r["backoff_seconds"] > 0 for r in retries)
    # Steps before and after the failing one ran exactly once.
    effects = side_effects(run.id)
    assert [e[1] for e in effects if e[0] == "s0"] == [1, 1]
    assert [e[1] for e in effects if e[0] == "s1"] == [1, 2, 3]
    # Every attempt of a step carries the same idempotency key.
    assert len({e[3] for e in effects if e[0] == "s1"}) == 1


@pytest.mark.parametrize(
    ("on_failure", "status", "last"),
    [("needs_attention", "needs_attention", "RunNeedsAttention"), ("fail", "failed", "RunFailed")],
)
def test_a_step_that_keeps_failing_stops_after_its_maximum_attempts(
    live, acme, on_failure, status, last
):
    definition = chain(2, "tool", {"tool": "fail_until", "args": {"attempt": 99}})
    definition["steps"][0]["retry"] = {**FAST_RETRY, "maximum_attempts": 2}
    definition["steps"][0]["on_failure"] = on_failure
    workflow = publish(acme, definition)
    live.worker()
    live.scheduler()
    run = start_run(workflow, {})
    wait_for(finished(run.id), timeout=30)
    assert run_status(run.id) == status
    types = event_types(run.id)
    assert types.count("StepFailed") == 2 and types[-1] == last
    assert "s1" not in {e[0] for e in side_effects(run.id)}
