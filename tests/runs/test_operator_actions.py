"""Operator actions are events with their actor, through one command path (act)."""

import pytest

from tests.support.live import event_rows, run_status, side_effects, wait_for
from tests.support.workflows import FAST_RETRY, chain, publish
from vectorbea.eventlog import store
from vectorbea.eventlog.models import RunSummary
from vectorbea.runs.commands import (
    ActionRefused,
    cancel_run,
    pause_run,
    rerun,
    resume_run,
    retry_failed_step,
    start_run,
)
from vectorbea.workflows.models import WorkflowVersion


def test_pause_and_resume_are_recorded_with_their_actor(acme):
    run = start_run(publish(acme, chain(2)), {})
    pause_run(run.id, actor="alice", reason="checking the data")
    with pytest.raises(ActionRefused, match="already paused"):
        pause_run(run.id, actor="alice")
    state = store.load(run.id).state
    assert state.paused
    assert RunSummary.objects.get(run=run).status == "paused"
    resume_run(run.id, actor="bob")
    rows = event_rows(run.id)
    assert [(t, p.get("actor")) for _, t, p in rows[-2:]] == [
        ("RunPaused", "alice"),
        ("RunResumed", "bob"),
    ]
    with pytest.raises(ActionRefused, match="not paused"):
        resume_run(run.id, actor="bob")


def test_finished_runs_refuse_actions_in_plain_language(acme):
    run = start_run(publish(acme, chain(1)), {})
    assert cancel_run(run.id, actor="alice")
    with pytest.raises(ActionRefused, match="The run has cancelled; it cannot be paused"):
        pause_run(run.id, actor="alice")
    with pytest.raises(ActionRefused, match="Only a run that failed at a step"):
        retry_failed_step(run.id, actor="alice")


def test_rerun_uses_the_same_input_on_the_newest_version(acme, alice):
    workflow = publish(acme, chain(1))
    first = start_run(workflow, {"ticket": 7})
    WorkflowVersion.objects.create(
        workflow=workflow, number=2, definition=chain(2), content_hash="2"
    )
    second = rerun(first.id, started_by=alice)
    assert second.id != first.id and second.version.number == 2
    assert store.load(second.id).state.input == {"ticket": 7}


@pytest.mark.django_db(transaction=True)
def test_retry_from_the_failed_step_reruns_only_that_step_and_finishes(live, acme):
    definition = chain(3, "tool", {"tool": "record"})
    definition["steps"][1] = {
        "id": "s1",
        "kind": "tool",
        "config": {"tool": "fail_until", "args": {"attempt": 3}},
        "retry": {**FAST_RETRY, "maximum_attempts": 2},
    }
    live.worker()
    live.scheduler()
    run = start_run(publish(acme, definition), {})
    wait_for(lambda: run_status(run.id) == "needs_attention", timeout=30)
    assert retry_failed_step(run.id, actor="alice") == "s1"
    wait_for(lambda: run_status(run.id) == "completed", timeout=30)
    rows = event_rows(run.id)
    manual = [p for _, t, p in rows if t == "RetryScheduled" and p["actor"]]
    assert manual == [
        {**manual[0], "step_id": "s1", "next_attempt": 3, "reason": "manual", "actor": "alice"}
    ]
    effects = side_effects(run.id)
    assert [e[1] for e in effects if e[0] == "s0"] == [1, 1]  # start and end, once
    assert [e[1] for e in effects if e[0] == "s1"] == [1, 2, 3]
