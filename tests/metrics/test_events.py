"""Counting appended events: kinds from the run's definition, latencies from recorded starts,
in this append or (from the state before it) in an earlier one."""

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from tests.metrics.support import by, delta, scrape
from tests.support.workflows import chain, publish, record
from vectorbea.engine import (
    ApprovalRequested,
    AttentionResolved,
    Definition,
    Recorded,
    RunStarted,
    RunState,
    StepCompleted,
    StepDeferred,
    StepFailed,
    StepInterrupted,
    StepStarted,
    StepWaiting,
    fold,
)
from vectorbea.eventlog import store
from vectorbea.eventlog.hooks import Change
from vectorbea.metrics.events import count_appended
from vectorbea.runs.commands import start_run
from vectorbea.workflows.models import WorkflowVersion, content_hash

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
DURATIONS = ("vectorbea_step_duration_seconds_count", "kind", "outcome")
SECONDS = ("vectorbea_step_duration_seconds_sum", "kind", "outcome")
STARTED = ("vectorbea_steps_started_total", "kind")
COMPLETED = ("vectorbea_steps_completed_total", "kind")


def mixed() -> dict:
    """s0 is a noop, s1 and s2 are tools."""
    definition = chain(3, "tool", {"tool": "record"})
    definition["steps"][0] = {"id": "s0", "kind": "noop", "config": {}}
    return definition


def batch(*events, first_seq: int, seconds: list[float]) -> list[Recorded]:
    return [
        Recorded(first_seq + i, T0 + timedelta(seconds=s), e)
        for i, (e, s) in enumerate(zip(events, seconds, strict=True))
    ]


def started(*events, seconds: list[float] | None = None) -> RunState:
    """A run's state after RunStarted (at T0) and `events`."""
    seconds = [0.0, *(seconds or [0.0] * len(events))]
    return fold(batch(RunStarted("w", "v1", {}), *events, first_seq=1, seconds=seconds))


def appended(client, before: RunState, definition: dict, *events, seconds: list[float]) -> dict:
    """What count_appended counted for `events` appended after `before`: {series: delta}."""
    scraped = scrape(client)
    recorded = batch(*events, first_seq=before.last_seq + 1, seconds=seconds)
    state = fold(recorded, before)
    change = Change(
        uuid4(), uuid4(), Definition.from_json(definition), before, state, tuple(recorded), (), ""
    )
    count_appended(change)
    after = scrape(client)
    return {
        series[0]: delta(by(after, *series), by(scraped, *series))
        for series in (DURATIONS, SECONDS, STARTED, COMPLETED)
    }


def test_steps_are_labelled_by_kind_and_timed_from_their_recorded_start(client):
    before = scrape(client)

    counted = appended(
        client,
        started(),
        mixed(),
        StepStarted("s0", 1),
        StepCompleted("s0", 1, {}),  # 2.5 s after its start
        StepStarted("s1", 1),
        StepFailed("s1", 1, "transient", "boom"),  # 4 s
        StepStarted("s1", 2),
        StepDeferred("s1", 2, T0.isoformat(), "rate_limited", "wait"),  # no outcome
        StepStarted("s1", 2),  # the deferred attempt, made again: not counted again
        StepCompleted("s1", 2, {}),  # 1 s after its second start
        StepStarted("s2", 1),
        StepInterrupted("s2", 1, "alice", "kill switch"),
        StepCompleted("s2", 1, {}),  # a late result of the interrupted attempt: not timed
        StepCompleted("s9", 1, {}),  # not in the definition
        seconds=[0, 2.5, 3, 7, 8, 8, 10, 11, 12, 12, 13, 14],
    )

    after = scrape(client)
    assert counted["vectorbea_steps_started_total"] == {("noop",): 1, ("tool",): 3}
    assert counted["vectorbea_steps_completed_total"] == {
        ("noop",): 1,
        ("tool",): 2,
        ("unknown",): 1,
    }
    assert counted["vectorbea_step_duration_seconds_count"] == {
        ("noop", "completed"): 1,
        ("tool", "failed"): 1,
        ("tool", "completed"): 1,
    }
    assert counted["vectorbea_step_duration_seconds_sum"] == {
        ("noop", "completed"): 2.5,
        ("tool", "failed"): 4,
        ("tool", "completed"): 1,
    }
    assert delta(
        by(after, "vectorbea_budget_rejections_total", "reason"),
        by(before, "vectorbea_budget_rejections_total", "reason"),
    ) == {("rate_limited",): 1}


def test_an_attempt_started_in_an_earlier_append_is_timed_from_the_state_before(client):
    definition = chain(5, "tool", {"tool": "record"})
    definition["steps"][0] = {"id": "s0", "kind": "noop", "config": {}}
    definition["steps"][2] = {"id": "s2", "kind": "delay", "config": {"seconds": 5}}
    definition["steps"][3] = {"id": "s3", "kind": "approval", "config": {}}
    before = started(
        StepStarted("s0", 1),
        StepStarted("s1", 1),
        StepInterrupted("s1", 1, "alice", "kill switch"),
        StepWaiting("s2", 1, None, "delay"),
        ApprovalRequested("s3", 1, "Ship it?", "", {}, None),
        StepStarted("s4", 2),
        seconds=[0, 1, 2, 3, 4, 5],
    )

    counted = appended(
        client,
        before,
        definition,
        StepCompleted("s0", 1, {}),  # 10 s after its start in an earlier append
        StepCompleted("s0", 1, {}),  # the same outcome again: timed once
        StepCompleted("s1", 1, {}),  # its attempt was interrupted: not timed
        StepCompleted("s2", 1, {}),  # 8 s of waiting
        StepFailed("s3", 1, "permanent", "refused"),  # 11 s from the request
        StepFailed("s4", 1, "transient", "late"),  # not the attempt that is running
        seconds=[10, 10, 11, 11, 15, 16],
    )

    assert counted["vectorbea_step_duration_seconds_count"] == {
        ("noop", "completed"): 1,
        ("delay", "completed"): 1,
        ("approval", "failed"): 1,
    }
    assert counted["vectorbea_step_duration_seconds_sum"] == {
        ("noop", "completed"): 10,
        ("delay", "completed"): 8,
        ("approval", "failed"): 11,
    }
    assert counted["vectorbea_steps_completed_total"] == {("noop",): 2, ("tool",): 1, ("delay",): 1}
    assert counted["vectorbea_steps_started_total"] == {}


def test_a_run_moved_to_another_version_is_labelled_by_its_new_definition(client, acme):
    workflow = publish(acme, chain(2))
    moved = chain(2, "tool", {"tool": "record"})
    version = WorkflowVersion.objects.create(
        workflow=workflow, number=2, definition=moved, content_hash=content_hash(moved)
    )
    before = started(StepStarted("s0", 1), StepFailed("s0", 1, "permanent", "boom"), seconds=[0, 1])

    counted = appended(
        client,
        before,
        chain(2),  # what the resolution was decided with
        AttentionResolved("s0", "retry", "alice", version_id=str(version.id)),
        StepStarted("s0", 2),
        StepCompleted("s0", 2, {}),
        seconds=[5, 5, 7],
    )

    assert counted["vectorbea_steps_started_total"] == {("tool",): 1}
    assert counted["vectorbea_step_duration_seconds_sum"] == {("tool", "completed"): 2}


def test_the_store_counts_each_append_with_the_state_before_it(
    client, acme, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        run = start_run(publish(acme, mixed()), {})  # RunStarted, StepStarted s0
    before = scrape(client)

    with django_capture_on_commit_callbacks(execute=True):
        record(run.id, StepCompleted("s0", 1, {}))  # and StepStarted s1

    after = scrape(client)
    events = store.read_events(run.id)
    assert [type(r.event) for r in events[1:]] == [StepStarted, StepCompleted, StepStarted]
    assert delta(by(after, *DURATIONS), by(before, *DURATIONS)) == {("noop", "completed"): 1}
    seconds = (
        by(after, *SECONDS)[("noop", "completed")] - by(before, *SECONDS)[("noop", "completed")]
    )
    assert seconds == pytest.approx(max(0.0, (events[2].at - events[1].at).total_seconds()))
    assert delta(by(after, *STARTED), by(before, *STARTED)) == {("tool",): 1}
