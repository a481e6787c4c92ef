"""What an ended run says about itself: every terminal path folds to a state where nothing
waits, counts down or is about to start, and a denial is its own outcome."""

import json
from datetime import timedelta
from pathlib import Path

import pytest

from tests.engine.builders import T0, definition, step
from tests.engine.builders import state_after as _state_after
from tests.engine.test_events import stored_log
from vectorbea.engine import (
    ApprovalDenied,
    AttentionResolved,
    Definition,
    Event,
    Recorded,
    RetryScheduled,
    RunCancelled,
    RunFailed,
    RunStarted,
    RunState,
    StepFailed,
    apply,
    decide,
    fold,
    next_wake_at,
    state_from_json,
    state_to_json,
)
from vectorbea.engine.events import event_from_payload
from vectorbea.engine.state import ended_step_status

NOW = T0 + timedelta(minutes=5)
FIXTURES = Path(__file__).parent / "fixtures"


def then(state: RunState, *events: Event, at=NOW) -> RunState:
    for event in events:
        state = apply(state, Recorded(state.last_seq + 1, at, event))
    return state


def settle(state: RunState, flow: Definition, now=NOW) -> RunState:
    return then(state, *decide(state, flow, now), at=now)


def shown(state: RunState, flow: Definition) -> dict[str, str]:
    return {
        step_id: ended_step_status(state.step(step_id).status, state.status)
        for step_id in flow.topo_order
    }


def delay_flow() -> Definition:
    return definition(
        ["a", step("wait", "delay", config={"seconds": 600}), "b"],
        [("a", "wait"), ("wait", "b")],
    )


def gate_flow() -> Definition:
    return definition(
        [step("gate", "approval", name="Refund", config={"title": "Refund?"}), "send"],
        [("gate", "send")],
    )


def waiting_on_the_delay() -> RunState:
    flow = delay_flow()
    state = settle(_state_after(), flow)  # a starts
    state = then(state, *_complete("a"))
    state = settle(state, flow)  # the delay parks its step
    assert state.step("wait").status == "waiting"
    return state


def failed_at(state: RunState, flow: Definition, step_id: str, attempt: int = 1) -> RunState:
    """The step fails permanently, the run waits for a person, who fails it."""
    state = then(state, StepFailed(step_id, attempt, "permanent", "404 Not Found"))
    state = settle(state, flow)
    assert step_id in state.attention
    return then(
        state,
        AttentionResolved(step_id, "fail", "alice", "not worth it"),
        RunFailed("not worth it", step_id),
    )


def _complete(step_id: str) -> list[Event]:
    from vectorbea.engine import StepCompleted

    return [StepCompleted(step_id, 1, {"done": step_id})]


def test_a_cancelled_run_waits_for_nothing_and_starts_nothing() -> None:
    flow = delay_flow()
    state = then(waiting_on_the_delay(), RunCancelled("alice", "changed my mind"))

    assert state.status == "cancelled"
    assert shown(state, flow) == {"a": "completed", "wait": "cancelled", "b": "not_run"}
    assert decide(state, flow, NOW + timedelta(hours=1)) == []
    assert next_wake_at(state, flow, NOW) is None


def test_a_failed_run_shows_its_other_steps_as_not_run() -> None:
    flow = delay_flow()
    state = failed_at(settle(_state_after(), flow), flow, "a")

    assert state.status == "failed"
    assert shown(state, flow) == {"a": "gave_up", "wait": "not_run", "b": "not_run"}
    assert next_wake_at(state, flow, NOW) is None


def test_a_running_step_of_a_failed_run_shows_as_cancelled() -> None:
    flow = definition(["left", "right"])
    state = settle(_state_after(), flow)  # both start
    state = failed_at(state, flow, "left")

    assert state.status == "failed"
    assert state.step("right").status == "running"  # as the log says; its result is refused
    assert shown(state, flow) == {"left": "gave_up", "right": "cancelled"}


def test_a_denied_run_is_denied_not_failed_and_its_next_step_is_not_run() -> None:
    flow = gate_flow()
    state = settle(_state_after(), flow)
    state = then(state, ApprovalDenied("gate", "bob", "too expensive"))
    state = settle(state, flow)

    assert state.status == "denied"
    assert state.is_terminal
    assert state.denial is not None
    assert state.denial["by"] == "bob"
    assert state.denial["reason"] == "too expensive"
    assert state.denial["step_id"] == "gate"
    assert shown(state, flow) == {"gate": "completed", "send": "not_run"}
    assert state.step("gate").wait_until is None  # no countdown on the decided gate
    assert next_wake_at(state, flow, NOW) is None


def test_a_denied_gate_with_a_denied_path_goes_on_and_is_no_denial() -> None:
    flow = definition(
        [step("gate", "approval", config={"title": "Refund?"}), "send", "apologise"],
        [("gate", "send"), ("gate", "apologise", "denied")],
    )
    state = settle(_state_after(), flow)
    state = then(state, ApprovalDenied("gate", "bob", "no"))
    state = settle(state, flow)

    assert state.status == "running"
    assert state.denial is None
    assert state.step("apologise").status == "running"


def test_a_failed_run_whose_step_is_not_a_gate_is_no_denial() -> None:
    flow = definition(["a"])
    state = failed_at(settle(_state_after(), flow), flow, "a")

    assert state.status == "failed"
    assert state.denial is None


def test_a_completed_run_shows_every_step_as_it_ended() -> None:
    flow = definition(
        ["a", step("route", "branch", config={"ports": ["yes", "no"]}), "y", "n"],
        [("a", "route"), ("route", "y", "yes"), ("route", "n", "no")],
    )
    from vectorbea.engine import StepCompleted

    state = settle(_state_after(), flow)
    state = settle(then(state, StepCompleted("a", 1, {})), flow)
    state = settle(then(state, StepCompleted("route", 1, {}, ports=("yes",))), flow)
    state = settle(then(state, StepCompleted("y", 1, {"ok": True})), flow)

    assert state.status == "completed"
    assert shown(state, flow) == {
        "a": "completed",
        "route": "completed",
        "y": "completed",
        "n": "skipped",
    }


def test_a_run_that_goes_on_shows_its_steps_as_they_are() -> None:
    flow = delay_flow()
    state = waiting_on_the_delay()

    assert shown(state, flow) == {"a": "completed", "wait": "waiting", "b": "pending"}


def test_a_person_retrying_a_failed_run_brings_its_steps_back() -> None:
    flow = delay_flow()
    state = failed_at(settle(_state_after(), flow), flow, "a")
    assert shown(state, flow)["b"] == "not_run"

    state = then(state, RetryScheduled("a", 2, NOW.isoformat(), 0, "retry", actor="alice"))

    assert state.status == "running"
    assert shown(state, flow) == {"a": "retry_scheduled", "wait": "pending", "b": "pending"}


@pytest.mark.parametrize("status", ["completed", "failed", "denied", "cancelled"])
def test_every_terminal_status_ends_the_steps_still_under_way(status: str) -> None:
    assert ended_step_status("running", status) == "cancelled"
    assert ended_step_status("waiting", status) == "cancelled"
    assert ended_step_status("retry_scheduled", status) == "cancelled"
    assert ended_step_status("pending", status) == "not_run"
    for kept in ("completed", "skipped", "gave_up", "failed"):
        assert ended_step_status(kept, status) == kept


def test_a_rerun_names_its_origin_and_keeps_it_through_a_checkpoint() -> None:
    state = fold([Recorded(1, T0, RunStarted("wf", "v1", {"n": 1}, rerun_of="run-1"))])

    assert state.rerun_of == "run-1"
    assert state_from_json(json.loads(json.dumps(state_to_json(state)))) == state


def test_a_checkpoint_written_before_reruns_were_recorded_still_loads() -> None:
    data = state_to_json(_state_after())
    del data["rerun_of"]

    assert state_from_json(data).rerun_of is None


def test_a_stored_v3_run_started_folds_to_the_same_state_as_its_current_form() -> None:
    fixture = json.loads((FIXTURES / "v3_run_started_events.json").read_text())

    old = fold(stored_log(fixture["v3_log"]))
    current = fold(stored_log(fixture["current_log"]))

    assert old == current
    assert old.rerun_of is None
    assert old.status == "denied"
    row = fixture["v3_log"][0]
    started = event_from_payload(row["type"], row["schema_version"], row["payload"])
    assert isinstance(started, RunStarted) and started.rerun_of is None


def test_asking_a_denied_gate_again_reopens_the_run_at_the_gate() -> None:
    flow = gate_flow()
    state = settle(_state_after(), flow)
    state = settle(then(state, ApprovalDenied("gate", "bob", "no")), flow)
    assert state.status == "denied"

    state = then(state, RetryScheduled("gate", 2, NOW.isoformat(), 0, "manual", actor="alice"))
    state = settle(state, flow)

    assert state.status == "running"
    assert state.denial is None
    assert state.step("gate").status == "waiting" and state.step("gate").attempt == 2
    assert shown(state, flow) == {"gate": "waiting", "send": "pending"}
