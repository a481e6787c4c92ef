from dataclasses import dataclass
from datetime import timedelta

import pytest

from tests.engine.builders import T0, log, started, state_after
from vectorbea.engine import (
    Event,
    OutputCorrected,
    Recorded,
    RetryScheduled,
    RunCancelled,
    RunCompleted,
    RunFailed,
    RunStarted,
    RunState,
    StepCompleted,
    StepFailed,
    StepSkipped,
    StepStarted,
    UnknownEvent,
    fold,
)
from vectorbea.engine.errors import OutOfOrderEvent


def at(seq: int) -> object:
    return T0 + timedelta(seconds=seq)


def test_an_empty_log_folds_to_a_new_run() -> None:
    assert fold([]) == RunState.initial()
    assert fold([]).status == "new"
    assert fold([]).last_seq == 0


def test_it_folds_run_started() -> None:
    state = state_after()

    assert state.status == "running"
    assert (state.workflow_id, state.version_id) == ("wf", "v1")
    assert state.input == {"topic": "otters"}
    assert state.started_by == "alice"
    assert state.started_at == at(1)
    assert state.last_seq == 1
    assert state.steps == {}


def test_it_folds_step_started_as_running_with_its_attempt() -> None:
    step = state_after(StepStarted("fetch", 1)).steps["fetch"]

    assert (step.status, step.attempt, step.started_at) == ("running", 1, at(2))


def test_it_folds_step_completed_with_output_and_ports() -> None:
    state = state_after(StepStarted("route", 1), StepCompleted("route", 1, "yes", ("yes",)))

    step = state.steps["route"]
    assert (step.status, step.output, step.ports, step.finished_at) == (
        "completed",
        "yes",
        ("yes",),
        at(3),
    )


def test_it_folds_step_failed_with_its_error() -> None:
    state = state_after(
        StepStarted("fetch", 1), StepFailed("fetch", 1, "rate_limited", "429", 12.0)
    )

    step = state.steps["fetch"]
    assert step.status == "failed"
    assert (step.error_class, step.error_message, step.retry_after_seconds) == (
        "rate_limited",
        "429",
        12.0,
    )
    assert step.finished_at == at(3)


def test_it_folds_retry_scheduled_and_the_next_start_clears_the_timer() -> None:
    events: list[Event] = [
        StepStarted("fetch", 1),
        StepFailed("fetch", 1, "transient", "timeout"),
        RetryScheduled("fetch", 2, "2025-01-01T09:00:10+00:00", 6.0, "transient"),
    ]
    scheduled = state_after(*events).steps["fetch"]
    restarted = state_after(*events, StepStarted("fetch", 2)).steps["fetch"]

    assert (scheduled.status, scheduled.attempt, scheduled.retry_at) == (
        "retry_scheduled",
        1,
        "2025-01-01T09:00:10+00:00",
    )
    assert (restarted.status, restarted.attempt, restarted.retry_at) == ("running", 2, None)


def test_a_completed_retry_forgets_the_previous_error() -> None:
    state = state_after(
        StepStarted("fetch", 1),
        StepFailed("fetch", 1, "transient", "timeout"),
        RetryScheduled("fetch", 2, "2025-01-01T09:00:10+00:00", 6.0, "transient"),
        StepStarted("fetch", 2),
        StepCompleted("fetch", 2, {"ok": True}),
    )

    step = state.steps["fetch"]
    assert (step.status, step.attempt, step.error_class, step.error_message) == (
        "completed",
        2,
        None,
        None,
    )


def test_it_folds_step_skipped() -> None:
    assert state_after(StepSkipped("other", "branch not taken")).steps["other"].status == "skipped"


def test_it_folds_run_completed() -> None:
    state = state_after(RunCompleted({"b": 1}))

    assert (state.status, state.output, state.finished_at) == ("completed", {"b": 1}, at(2))
    assert state.is_terminal


def test_run_failed_marks_the_failed_step_as_given_up() -> None:
    state = state_after(
        StepStarted("fetch", 1),
        StepFailed("fetch", 1, "permanent", "401"),
        RunFailed("Step 'Fetch' failed", step_id="fetch"),
    )

    assert (state.status, state.error, state.failed_step_id) == (
        "failed",
        "Step 'Fetch' failed",
        "fetch",
    )
    assert state.steps["fetch"].status == "gave_up"
    assert state.is_terminal


def test_it_folds_run_cancelled() -> None:
    state = state_after(StepStarted("fetch", 1), RunCancelled("bob", "kill switch"))

    assert (state.status, state.error, state.is_terminal) == ("cancelled", "kill switch", True)


def test_a_manual_retry_reopens_a_failed_run() -> None:
    state = state_after(
        StepStarted("fetch", 1),
        StepFailed("fetch", 1, "permanent", "401"),
        RunFailed("Step 'Fetch' failed", step_id="fetch"),
        RetryScheduled("fetch", 2, "2025-01-01T10:00:00+00:00", 0.0, "manual", actor="alice"),
    )

    assert (state.status, state.error, state.failed_step_id, state.finished_at) == (
        "running",
        None,
        None,
        None,
    )
    assert state.steps["fetch"].status == "retry_scheduled"


def test_output_corrected_replaces_the_step_output_that_later_steps_read() -> None:
    state = state_after(
        StepStarted("fetch", 1),
        StepCompleted("fetch", 1, {"price": 100}),
        OutputCorrected("fetch", {"price": 10}, corrects_seq=3, actor="alice", reason="typo"),
    )

    assert state.steps["fetch"].output == {"price": 10}
    assert state.steps["fetch"].status == "completed"


def test_output_corrected_after_completion_also_fixes_the_run_output() -> None:
    state = state_after(
        StepStarted("b", 1),
        StepCompleted("b", 1, "wrong"),
        RunCompleted({"b": "wrong"}),
        OutputCorrected("b", "right", corrects_seq=3, actor="alice", reason="typo"),
    )

    assert state.output == {"b": "right"}


def test_steps_the_log_never_mentioned_are_absent_and_read_as_pending() -> None:
    state = state_after(StepStarted("fetch", 1))

    assert set(state.steps) == {"fetch"}
    assert state.step("summarise").status == "pending"


def test_it_reports_running_steps_and_total_attempts() -> None:
    state = state_after(
        StepStarted("b", 1),
        StepStarted("a", 1),
        StepFailed("a", 1, "transient", "x"),
        RetryScheduled("a", 2, "2025-01-01T09:00:10+00:00", 1.0, "transient"),
        StepStarted("a", 2),
        StepStarted("c", 1),
        StepCompleted("c", 1, None),
    )

    assert state.running_steps() == ("a", "b")
    assert state.attempts_total == 4
    assert not state.is_terminal


def test_it_folds_the_tail_onto_a_checkpoint_state() -> None:
    events = started(StepStarted("a", 1), StepCompleted("a", 1, 1), StepStarted("b", 1))

    assert fold(events[2:], fold(events[:2])) == fold(events)


def test_it_refuses_an_event_class_it_does_not_know() -> None:
    @dataclass(frozen=True)
    class ApprovalGranted(Event):
        step_id: str

    with pytest.raises(UnknownEvent, match="ApprovalGranted"):
        fold(started(ApprovalGranted("gate")))


def test_it_refuses_an_event_that_is_not_after_the_last_seq() -> None:
    state = fold(started(StepStarted("a", 1)))

    with pytest.raises(OutOfOrderEvent):
        fold(log(StepCompleted("a", 1, None), first_seq=2), state)


def test_fold_is_deterministic() -> None:
    events = started(StepStarted("a", 1), StepCompleted("a", 1, {"x": [1, 2]}))

    assert fold(events) == fold(list(events))
    assert fold(events) is not fold(events)


def test_recorded_carries_the_commit_time() -> None:
    recorded = Recorded(1, T0, RunStarted("wf", "v1", {}))

    assert fold([recorded]).started_at == T0
