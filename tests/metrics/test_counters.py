"""The counters on /metrics agree with the event log after real runs on real workers."""

import pytest

from tests.metrics.support import (
    by,
    counted,
    delta,
    log_counts,
    log_step_seconds,
    scrape,
    settled,
)
from tests.support.live import run_status, wait_for
from tests.support.workflows import FAST_RETRY, chain, publish
from vectorbea.budgets.models import WorkspaceLimits
from vectorbea.runs.commands import start_run

FINISHED = ("completed", "failed", "cancelled", "needs_attention")


def failing(error_class: str, on_failure: str = "needs_attention") -> dict:
    """noop → a tool that always fails with `error_class` (twice, if it retries) → noop."""
    definition = chain(3)
    definition["steps"][1] = {
        "id": "s1",
        "kind": "tool",
        "config": {"tool": "fail_until", "args": {"attempt": 99, "error_class": error_class}},
        "retry": {**FAST_RETRY, "maximum_attempts": 2},
        "on_failure": on_failure,
    }
    return definition


def fan_out(n: int) -> dict:
    """A noop, then n tools in parallel (dispatched to other workers), then a join."""
    steps = [
        {"id": "fan", "kind": "noop", "config": {}},
        *[
            {"id": f"b{i}", "kind": "tool", "config": {"tool": "record", "args": {"sleep": 0.05}}}
            for i in range(n)
        ],
        {"id": "join", "kind": "noop", "config": {}},
    ]
    edges = [
        *[{"source": "fan", "target": f"b{i}", "port": None} for i in range(n)],
        *[{"source": f"b{i}", "target": "join", "port": None} for i in range(n)],
    ]
    return {"input_schema": {"type": "object"}, "steps": steps, "edges": edges}


def test_the_counters_match_the_event_log_after_real_runs(live, client, acme, globex):
    retried = chain(3, "tool", {"tool": "record"})
    retried["steps"][1] = {
        "id": "s1",
        "kind": "tool",
        "config": {"tool": "fail_until", "args": {"attempt": 3}},
        "retry": FAST_RETRY,
    }
    # Globex lets one run go at a time: the others' steps are deferred until it ends.
    WorkspaceLimits.objects.create(workspace=globex, max_concurrent_runs=1)
    workflows = [
        (publish(acme, chain(6, "tool", {"tool": "record"}), "chain"), 5),
        (publish(acme, retried, "retried"), 2),
        (publish(acme, failing("permanent"), "needs attention"), 2),
        (publish(acme, failing("transient", on_failure="fail"), "fails"), 1),
        (publish(acme, failing("budget_exceeded"), "over budget"), 1),
        (publish(acme, fan_out(4), "fan out"), 3),
        (publish(globex, chain(2, "tool", {"tool": "record", "args": {"sleep": 0.3}})), 3),
    ]
    before = scrape(client)
    live.worker(processes=2, threads=4)
    live.scheduler()

    runs = [start_run(workflow, {}) for workflow, count in workflows for _ in range(count)]
    wait_for(lambda: all(run_status(run.id) in FINISHED for run in runs), timeout=120)

    assert {run_status(run.id) for run in runs} == {"completed", "failed", "needs_attention"}
    expected = log_counts()
    assert expected["vectorbea_budget_rejections_total"].keys() == {
        ("budget_exceeded",),
        ("concurrency",),
    }
    assert expected["vectorbea_steps_failed_total"].keys() == {
        ("tool", "transient"),
        ("tool", "permanent"),
        ("tool", "budget_exceeded"),
    }
    after = settled(lambda: scrape(client), before, expected)
    assert counted(after, before) == expected

    durations = delta(
        by(after, "vectorbea_step_duration_seconds_count", "kind", "outcome"),
        by(before, "vectorbea_step_duration_seconds_count", "kind", "outcome"),
    )
    assert durations == {
        **{
            (kind, "completed"): n
            for (kind,), n in expected["vectorbea_steps_completed_total"].items()
        },
        ("tool", "failed"): sum(expected["vectorbea_steps_failed_total"].values()),
    }
    seconds = by(after, "vectorbea_step_duration_seconds_sum")[()] - by(
        before, "vectorbea_step_duration_seconds_sum"
    ).get((), 0)
    assert seconds == pytest.approx(log_step_seconds(), abs=1e-3)
