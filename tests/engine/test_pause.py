"""Pausing a run: what runs finishes, nothing new starts, resuming picks up where it was."""

from datetime import timedelta

from tests.engine.builders import T0, definition, event_types, state_after
from vectorbea.engine import (
    RunPaused,
    RunResumed,
    StepCompleted,
    StepFailed,
    StepStarted,
    decide,
    state_from_json,
    state_to_json,
)

NOW = T0 + timedelta(minutes=1)
LINEAR = definition(["a", "b"], [("a", "b")])


def test_a_paused_run_starts_no_new_step():
    state = state_after(StepStarted("a", 1), RunPaused("alice", "look"), StepCompleted("a", 1, {}))
    assert state.paused
    assert decide(state, LINEAR, NOW) == []


def test_a_paused_run_still_answers_a_failure_with_a_retry_but_does_not_start_it():
    state = state_after(
        StepStarted("a", 1), RunPaused("alice", "look"), StepFailed("a", 1, "transient", "x")
    )
    events = decide(state, LINEAR, NOW + timedelta(hours=1))
    assert event_types(events) == ["RetryScheduled"]


def test_resuming_starts_what_was_ready():
    state = state_after(
        StepStarted("a", 1),
        RunPaused("alice", "look"),
        StepCompleted("a", 1, {}),
        RunResumed("alice"),
    )
    assert not state.paused
    assert decide(state, LINEAR, NOW) == [StepStarted("b", 1)]


def test_the_paused_flag_survives_a_checkpoint():
    state = state_after(StepStarted("a", 1), RunPaused("alice", "look"))
    assert state_from_json(state_to_json(state)) == state
