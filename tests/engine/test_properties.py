"""Properties of fold and decide over random workflows and random executions."""

import json
from typing import Any

from hypothesis import given, settings

from tests.engine.strategies import KINDS, simulated_runs, workflows
from vectorbea.engine import (
    ENGINE_KINDS,
    Definition,
    Recorded,
    RunState,
    StepStarted,
    apply,
    decide,
    event_from_payload,
    event_to_payload,
    fold,
    next_wake_at,
    state_from_json,
    state_to_json,
    validate_definition,
)

SimulatedRun = tuple[dict[str, Any], list[Recorded]]


@settings(max_examples=100, deadline=None)
@given(workflows())
def test_generated_workflows_are_valid(data: dict[str, Any]) -> None:
    assert validate_definition(data, KINDS) == []


@settings(max_examples=300, deadline=None)
@given(simulated_runs())
def test_every_simulated_run_ends_terminal_without_rerunning_or_overrunning(
    run: SimulatedRun,
) -> None:
    data, log = run
    definition = Definition.from_json(data)
    state = RunState.initial()
    for recorded in log:
        if isinstance(recorded.event, StepStarted):
            assert_may_start(state, definition, recorded.event)
        state = apply(state, recorded)

    assert state.is_terminal
    assert decide(state, definition, log[-1].at) == []
    if state.status == "completed":
        assert {step.status for step in state.steps.values()} <= {"completed", "skipped"}
        assert set(state.steps) == set(definition.steps)


def assert_may_start(state: RunState, definition: Definition, event: StepStarted) -> None:
    assert definition.steps[event.step_id].kind not in ENGINE_KINDS  # never given to a worker
    before = state.step(event.step_id)
    assert before.status not in ("completed", "skipped", "running")
    assert event.attempt == before.attempt + 1
    # Within the round of attempts (a person's retry starts a new one), never past the policy.
    retries_used = before.failures - before.corrections
    assert retries_used < definition.steps[event.step_id].retry.maximum_attempts


@settings(max_examples=150, deadline=None)
@given(simulated_runs())
def test_a_checkpoint_plus_its_tail_folds_to_the_same_state_at_every_split(
    run: SimulatedRun,
) -> None:
    _, log = run
    whole = fold(log)
    for split in range(len(log) + 1):
        checkpoint = json.loads(json.dumps(state_to_json(fold(log[:split]))))

        assert fold(log[split:], state_from_json(checkpoint)) == whole


@settings(max_examples=100, deadline=None)
@given(simulated_runs())
def test_every_logged_event_survives_storage(run: SimulatedRun) -> None:
    _, log = run
    for recorded in log:
        event = recorded.event
        stored = json.loads(json.dumps(event_to_payload(event)))

        assert event_from_payload(type(event).__name__, event.schema_version, stored) == event


@settings(max_examples=100, deadline=None)
@given(simulated_runs())
def test_decide_reaches_its_fixpoint_in_one_call(run: SimulatedRun) -> None:
    data, log = run
    definition = Definition.from_json(data)
    state = RunState.initial()
    for recorded in log:
        state = apply(state, recorded)
        decided = state
        for seq, event in enumerate(decide(state, definition, recorded.at), state.last_seq + 1):
            decided = apply(decided, Recorded(seq, recorded.at, event))

        assert decide(decided, definition, recorded.at) == []
        # ... which is why the summary's wake-up after an append need not decide again
        at = recorded.at
        assert next_wake_at(decided, definition, at, decided=True) == next_wake_at(
            decided, definition, at
        )
