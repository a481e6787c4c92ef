"""Steps the engine moves itself: delays and approval gates."""

import json
from datetime import timedelta
from typing import Any

import pytest

from tests.engine.builders import KINDS, T0, definition, definition_json, event_types, step
from tests.engine.builders import state_after as _state_after
from vectorbea.engine import (
    ApprovalDenied,
    ApprovalGranted,
    ApprovalRequested,
    ApprovalTimedOut,
    Definition,
    ErrorClass,
    Event,
    Recorded,
    RunCompleted,
    RunFailed,
    RunNeedsAttention,
    RunState,
    StepCompleted,
    StepDef,
    StepError,
    StepFailed,
    StepSkipped,
    StepStarted,
    StepWaiting,
    apply,
    decide,
    next_wake_at,
    state_from_json,
    state_to_json,
    validate_definition,
)
from vectorbea.engine.graph import Edge

NOW = T0 + timedelta(minutes=5)


def state_after(*events: Event) -> RunState:
    return _state_after(*events)


def then(state: RunState, *events: Event, at=NOW) -> RunState:
    for event in events:
        state = apply(state, Recorded(state.last_seq + 1, at, event))
    return state


def settle(state: RunState, flow: Definition, now=NOW) -> RunState:
    return then(state, *decide(state, flow, now), at=now)


def delay_flow(**config: Any) -> Definition:
    return definition(
        ["a", step("wait", "delay", config=config or {"seconds": 30}), "b"],
        [("a", "wait"), ("wait", "b")],
    )


def gate_flow(denied_edge: bool = False, **config: Any) -> Definition:
    steps: list[Any] = [
        step("gate", "approval", name="Refund", config={"title": "Refund?", **config}),
        "send",
    ]
    edges = [("gate", "send")]
    if denied_edge:
        steps.append("apologise")
        edges.append(("gate", "apologise", "denied"))
    return definition(steps, edges)


def completed(step_id: str, output: Any = None) -> list[Event]:
    return [StepStarted(step_id, 1), StepCompleted(step_id, 1, output)]


# --- delay --------------------------------------------------------------------------------------


def test_a_delay_parks_its_step_with_no_worker_until_its_time() -> None:
    flow = delay_flow(seconds=30)
    until = (NOW + timedelta(seconds=30)).isoformat()

    events = decide(state_after(*completed("a")), flow, NOW)

    assert events == [StepWaiting("wait", 1, until, "delay")]
    assert not any(isinstance(event, StepStarted) for event in events)


def test_a_waiting_delay_shows_as_waiting_and_wakes_the_run_at_its_time() -> None:
    flow = delay_flow(seconds=30)
    state = settle(state_after(*completed("a")), flow)

    assert state.steps["wait"].status == "waiting"
    assert state.steps["wait"].wait_until == (NOW + timedelta(seconds=30)).isoformat()
    assert decide(state, flow, NOW + timedelta(seconds=29)) == []
    assert next_wake_at(state, flow, NOW) == NOW + timedelta(seconds=30)


def test_a_delay_completes_when_its_time_comes_and_the_run_goes_on() -> None:
    flow = delay_flow(seconds=30)
    state = settle(state_after(*completed("a")), flow)
    until = (NOW + timedelta(seconds=30)).isoformat()

    events = decide(state, flow, NOW + timedelta(seconds=30))

    assert events == [
        StepCompleted("wait", 1, {"waited_until": until}),
        StepStarted("b", 1),
    ]


def test_a_delay_until_a_moment_in_the_past_completes_at_once() -> None:
    flow = delay_flow(until="2020-01-01T00:00:00Z")

    events = decide(state_after(*completed("a")), flow, NOW)

    assert events == [
        StepWaiting("wait", 1, "2020-01-01T00:00:00+00:00", "delay"),
        StepCompleted("wait", 1, {"waited_until": "2020-01-01T00:00:00+00:00"}),
        StepStarted("b", 1),
    ]


def test_a_delay_until_a_moment_is_stored_in_utc() -> None:
    flow = delay_flow(until="2030-06-01T12:00:00+02:00")

    (event,) = decide(state_after(*completed("a")), flow, NOW)

    assert event == StepWaiting("wait", 1, "2030-06-01T10:00:00+00:00", "delay")


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"seconds": 0}, "above 0"),
        ({"seconds": 31 * 24 * 3600}, "at most"),
        ({"seconds": "10"}, "a number"),
        ({"until": "tomorrow"}, "ISO 8601"),
        ({"until": "2030-01-01T09:00:00"}, "time zone"),
        ({"seconds": 1, "until": "2030-01-01T09:00:00Z"}, "exactly one"),
    ],
)
def test_a_delay_with_bad_settings_fails_the_run_permanently(
    config: dict[str, Any], message: str
) -> None:
    events = decide(state_after(*completed("a")), delay_flow(**config), NOW)

    assert event_types(events) == ["StepFailed", "RunNeedsAttention"]
    failed = events[0]
    assert isinstance(failed, StepFailed)
    assert failed.error_class == "permanent"
    assert message in failed.message


def test_a_delay_config_goes_through_the_renderer() -> None:
    flow = delay_flow(seconds="{{ input.wait }}")

    def render(step_def: StepDef, state: RunState) -> dict[str, Any]:
        return {"seconds": 5} if step_def.id == "wait" else dict(step_def.config)

    (event,) = decide(state_after(*completed("a")), flow, NOW, render=render)

    assert event == StepWaiting("wait", 1, (NOW + timedelta(seconds=5)).isoformat(), "delay")


def test_a_renderer_that_refuses_fails_the_step_with_its_message() -> None:
    def render(step_def: StepDef, state: RunState) -> dict[str, Any]:
        raise StepError(ErrorClass.PERMANENT, "Setting 'seconds': nope")

    events = decide(state_after(*completed("a")), delay_flow(), NOW, render=render)

    assert events[0] == StepFailed("wait", 1, "permanent", "Setting 'seconds': nope")
    assert isinstance(events[1], RunNeedsAttention)
    assert "Setting 'seconds': nope" in events[1].summary


def test_a_delay_at_the_start_of_a_run_waits_too() -> None:
    flow = definition([step("wait", "delay", config={"seconds": 1}), "b"], [("wait", "b")])

    assert event_types(decide(state_after(), flow, NOW)) == ["StepWaiting"]


# --- approval gates -----------------------------------------------------------------------------


def test_an_approval_gate_asks_for_a_decision_and_waits() -> None:
    flow = gate_flow(instructions="Check the amount", payload={"amount": 10})

    events = decide(state_after(), flow, NOW)

    assert events == [
        ApprovalRequested("gate", 1, "Refund?", "Check the amount", {"amount": 10}, None)
    ]
    state = then(state_after(), *events)
    assert state.steps["gate"].status == "waiting"
    assert decide(state, flow, NOW + timedelta(days=300)) == []
    assert next_wake_at(state, flow, NOW) is None


def test_the_gate_payload_is_rendered_by_the_renderer() -> None:
    flow = gate_flow(payload="{{ input.topic }}")

    def render(step_def: StepDef, state: RunState) -> dict[str, Any]:
        return {**step_def.config, "payload": state.input["topic"]}

    (event,) = decide(state_after(), flow, NOW, render=render)

    assert isinstance(event, ApprovalRequested)
    assert event.payload == "otters"


def test_an_approved_gate_completes_through_its_approved_port_and_the_run_goes_on() -> None:
    flow = gate_flow()
    state = settle(state_after(), flow)
    state = then(state, ApprovalGranted("gate", "alice", "fine", {"note": "ok"}))

    events = decide(state, flow, NOW)

    assert events == [
        StepCompleted(
            "gate",
            1,
            {
                "approved": True,
                "by": "alice",
                "reason": "fine",
                "fields": {"note": "ok"},
                "timed_out": False,
            },
            ports=("approved",),
        ),
        StepStarted("send", 1),
    ]


def test_an_edge_without_a_port_from_a_gate_is_its_approved_edge() -> None:
    flow = gate_flow(denied_edge=True)

    assert Edge("gate", "send", "approved") in flow.edges
    assert Edge("gate", "apologise", "denied") in flow.edges


def test_a_denied_gate_takes_its_denied_edge_and_skips_the_approved_side() -> None:
    flow = gate_flow(denied_edge=True)
    state = settle(state_after(), flow)
    state = then(state, ApprovalDenied("gate", "bob", "too much"))

    events = decide(state, flow, NOW)

    assert events[1:] == [StepSkipped("send", "branch not taken"), StepStarted("apologise", 1)]
    assert isinstance(events[0], StepCompleted)
    assert events[0].ports == ("denied",)
    assert events[0].output["approved"] is False


def test_a_denied_gate_without_a_denied_edge_ends_the_run_denied_saying_who_and_why() -> None:
    flow = gate_flow()
    state = settle(state_after(), flow)
    state = then(state, ApprovalDenied("gate", "bob", "the amount is too high"))

    events = decide(state, flow, NOW)

    assert event_types(events) == ["StepCompleted", "RunFailed"]
    assert events[-1] == RunFailed(
        "Approval 'Refund' was denied by bob: the amount is too high", step_id="gate"
    )
    ended = then(state, *events)
    assert ended.status == "denied"
    assert ended.is_terminal
    assert ended.denial is not None
    assert (ended.denial["step_id"], ended.denial["by"]) == ("gate", "bob")
    assert ended.denial["reason"] == "the amount is too high"


def test_a_gate_times_out_and_is_denied_by_default() -> None:
    flow = gate_flow(timeout_seconds=60)
    state = settle(state_after(), flow)
    timeout_at = NOW + timedelta(seconds=60)

    assert state.steps["gate"].wait_until == timeout_at.isoformat()
    assert next_wake_at(state, flow, NOW) == timeout_at
    assert decide(state, flow, timeout_at - timedelta(seconds=1)) == []
    events = decide(state, flow, timeout_at)

    assert event_types(events) == ["ApprovalTimedOut", "StepCompleted", "RunFailed"]
    assert events[0] == ApprovalTimedOut("gate", "denied", gate="gate:1")
    assert isinstance(events[-1], RunFailed)
    assert "nobody decided before its timeout" in events[-1].reason
    ended = then(state, *events, at=timeout_at)
    assert ended.status == "denied"
    assert ended.denial is not None and ended.denial["timed_out"] is True


def test_a_gate_may_approve_when_it_times_out() -> None:
    flow = gate_flow(timeout_seconds=60, on_timeout="approve")
    state = settle(state_after(), flow)

    events = decide(state, flow, NOW + timedelta(seconds=60))

    assert event_types(events) == ["ApprovalTimedOut", "StepCompleted", "StepStarted"]
    completed_gate = events[1]
    assert isinstance(completed_gate, StepCompleted)
    assert completed_gate.output["timed_out"] is True
    assert completed_gate.output["approved"] is True
    assert completed_gate.ports == ("approved",)


def test_a_decision_stops_the_timeout() -> None:
    flow = gate_flow(timeout_seconds=60)
    state = settle(state_after(), flow)
    state = then(state, ApprovalGranted("gate", "alice", ""))

    assert next_wake_at(state, flow, NOW) == NOW  # the decision itself is due now
    state = settle(state, flow)
    assert state.steps["gate"].status == "completed"
    assert event_types(decide(state, flow, NOW + timedelta(days=1))) == []


def test_a_gate_with_a_bad_timeout_fails_the_run() -> None:
    events = decide(state_after(), gate_flow(timeout_seconds=-5), NOW)

    assert event_types(events) == ["StepFailed", "RunNeedsAttention"]


def test_the_decision_is_kept_with_who_and_when() -> None:
    flow = gate_flow()
    state = settle(state_after(), flow)
    state = then(state, ApprovalGranted("gate", "alice", "ok"), at=NOW + timedelta(hours=2))

    decision = state.steps["gate"].decision
    assert decision is not None
    assert decision["by"] == "alice"
    assert decision["at"] == (NOW + timedelta(hours=2)).isoformat()


def test_waiting_steps_round_trip_through_a_checkpoint() -> None:
    flow = gate_flow(timeout_seconds=60)
    state = then(settle(state_after(), flow), ApprovalGranted("gate", "alice", "ok", {"n": 1}))

    stored = json.loads(json.dumps(state_to_json(state)))

    assert state_from_json(stored) == state


def test_a_checkpoint_written_before_steps_could_wait_still_loads() -> None:
    stored = state_to_json(state_after(*completed("a")))
    for step_json in stored["steps"].values():
        for key in ("wait_until", "wait_reason", "decision"):
            del step_json[key]

    assert state_from_json(stored) == state_after(*completed("a"))


def test_a_run_of_a_delay_and_a_gate_completes() -> None:
    flow = definition(
        [step("wait", "delay", config={"seconds": 10}), step("gate", "approval", config={})],
        [("wait", "gate")],
    )
    state = settle(state_after(), flow)
    state = settle(state, flow, NOW + timedelta(seconds=10))
    state = then(state, ApprovalGranted("gate", "alice", "go"))

    events = decide(state, flow, NOW + timedelta(seconds=11))

    assert event_types(events) == ["StepCompleted", "RunCompleted"]
    assert isinstance(events[-1], RunCompleted)
    assert events[-1].output["gate"]["by"] == "alice"


# --- validation ---------------------------------------------------------------------------------


def test_a_gate_may_have_an_edge_without_a_port() -> None:
    data = definition_json(
        [step("gate", "approval"), "send", "sorry"],
        [("gate", "send"), ("gate", "sorry", "denied")],
    )

    assert validate_definition(data, KINDS) == []


def test_a_gate_edge_must_name_one_of_its_ports() -> None:
    data = definition_json([step("gate", "approval"), "send"], [("gate", "send", "maybe")])

    (issue,) = validate_definition(data, KINDS)
    assert "'approved', 'denied'" in issue.message


def test_extra_checks_add_their_issues_after_the_built_in_ones() -> None:
    from vectorbea.engine import Issue

    data = definition_json(["a"])
    seen = []

    def check(definition: Any) -> list[Issue]:
        seen.append(definition)
        return [Issue("steps[0].config.x", "bad template", step_id="a")]

    assert validate_definition(data, KINDS, checks=[check]) == [
        Issue("steps[0].config.x", "bad template", step_id="a")
    ]
    assert seen == [data]


def test_a_check_that_breaks_becomes_an_issue_instead_of_an_error() -> None:
    def broken(definition: Any) -> list[Any]:
        raise RuntimeError("bug")

    (issue,) = validate_definition(definition_json(["a"]), KINDS, checks=[broken])
    assert "could not be checked" in issue.message
