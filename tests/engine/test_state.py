import json

import pytest

from tests.engine.builders import state_after
from vectorbea.engine import (
    CallCharged,
    RetryScheduled,
    RunCancelled,
    RunState,
    StepCompleted,
    StepFailed,
    StepSkipped,
    StepStarted,
    state_from_json,
    state_to_json,
)
from vectorbea.engine.errors import IncompatibleCheckpoint
from vectorbea.engine.state import StepState, evolve


def test_a_checkpoint_round_trips_through_json_exactly() -> None:
    state = state_after(
        StepStarted("route", 1),
        StepCompleted("route", 1, {"choice": "yes"}, ports=("yes",)),
        StepSkipped("other", "branch not taken"),
        StepStarted("fetch", 1),
        StepFailed("fetch", 1, "rate_limited", "429", 30.0),
        RetryScheduled("fetch", 2, "2025-01-01T09:00:40+00:00", 30.0, "rate_limited"),
    )

    stored = json.loads(json.dumps(state_to_json(state)))

    assert state_from_json(stored) == state


def test_the_initial_state_round_trips() -> None:
    assert state_from_json(state_to_json(RunState.initial())) == RunState.initial()


@pytest.mark.parametrize("stored", [None, [], {}, {"format": 99}, {"format": 1, "status": "x"}])
def test_a_checkpoint_it_cannot_read_is_refused_so_the_caller_folds_from_the_log(
    stored: object,
) -> None:
    with pytest.raises(IncompatibleCheckpoint):
        state_from_json(stored)  # type: ignore[arg-type]


def test_a_step_sums_the_usage_of_all_its_attempts_and_round_trips() -> None:
    state = state_after(
        StepStarted("draft", 1),
        StepFailed("draft", 1, "transient", "529", usage={"input_tokens": 10, "cost_usd": 0.25}),
        RetryScheduled("draft", 2, "2025-01-01T09:00:40+00:00", 1.0, "transient"),
        StepStarted("draft", 2),
        StepCompleted(
            "draft",
            2,
            {"text": "hi"},
            usage={"model": "m", "input_tokens": 12, "output_tokens": 3, "cost_usd": 0.5},
        ),
        StepStarted("free", 1),
        StepCompleted("free", 1, {}),
    )

    assert state.step("draft").usage == {
        "input_tokens": 22,
        "output_tokens": 3,
        "cost_usd": 0.75,
        "model": "m",
    }
    assert state.step("free").usage is None
    assert state.cost_usd == 0.75
    assert state_from_json(json.loads(json.dumps(state_to_json(state)))) == state


def test_a_call_charged_after_the_run_was_cancelled_adds_to_its_cost_and_nothing_else() -> None:
    cancelled = state_after(
        StepStarted("draft", 1),
        StepFailed("draft", 1, "transient", "timeout", usage={"cost_usd": 0.5}),
        RetryScheduled("draft", 2, "2025-01-01T09:00:40+00:00", 1.0, "transient"),
        StepStarted("draft", 2),
        RunCancelled("bob", "enough"),
    )
    estimate = {"model": "m", "cost_usd": 0.25, "cost_estimated": True}

    state = state_after(
        StepStarted("draft", 1),
        StepFailed("draft", 1, "transient", "timeout", usage={"cost_usd": 0.5}),
        RetryScheduled("draft", 2, "2025-01-01T09:00:40+00:00", 1.0, "transient"),
        StepStarted("draft", 2),
        RunCancelled("bob", "enough"),
        CallCharged("draft", 2, estimate, "cancelled"),
    )

    assert state.cost_usd == 0.75
    assert state.step("draft").usage == {"cost_usd": 0.75, "model": "m"}
    assert (state.status, state.finished_at) == (cancelled.status, cancelled.finished_at)
    assert state.step("draft").status == cancelled.step("draft").status


def test_evolve_changes_only_the_named_fields_and_leaves_the_original_alone() -> None:
    before = StepState(status="running", attempt=2, output={"a": 1})

    after = evolve(before, status="completed", output={"b": 2})

    assert after == StepState(status="completed", attempt=2, output={"b": 2})
    assert before == StepState(status="running", attempt=2, output={"a": 1})


def test_evolve_refuses_a_field_the_state_does_not_have() -> None:
    with pytest.raises(TypeError, match="StepState has no field"):
        evolve(StepState(status="pending"), statuss="completed")
