"""An agent step's transcript (folded from its events) and its next move (pure)."""

from __future__ import annotations

from datetime import timedelta

from tests.engine.builders import T0, state_after
from vectorbea.engine import (
    AgentTurnCompleted,
    ApprovalDenied,
    ApprovalGranted,
    ApprovalRequested,
    CorrectionAttempted,
    Definition,
    StepFailed,
    StepStarted,
    ToolCallCompleted,
    ToolCallFailed,
    ToolCallStarted,
    decide,
    state_from_json,
    state_to_json,
)
from vectorbea.engine import transcript as tr
from vectorbea.engine.agent import (
    Answer,
    AskModel,
    AskPerson,
    CallTool,
    RefuseCall,
    Stop,
    idempotency_key,
    next_action,
    tool_gate_key,
)

RUN = "run-1"
TOOLS = {"lookup": False, "refund": True}


def turn(n, *calls, text="", attempt=1, cost=0.01):
    tool_calls = [{"id": cid, "name": name, "arguments": args} for cid, name, args in calls]
    message = {"role": "assistant", "text": text, "tool_calls": tool_calls}
    return AgentTurnCompleted("a", attempt, n, message, usage={"model": "m", "cost_usd": cost})


def action(*events, tools=TOOLS, limits=None):
    state = state_after(StepStarted("a", 1), *events)
    return next_action(RUN, "a", state.step("a"), tools, limits)


def key(call_id):
    return idempotency_key(RUN, "a", call_id)


def test_a_new_agent_asks_the_model_for_its_first_turn():
    assert action() == AskModel(1)


def test_a_tool_call_is_recorded_as_started_before_it_runs_then_run_with_its_key():
    first = turn(1, ("c1", "lookup", {"id": 7}))
    assert action(first) == CallTool("c1", "lookup", {"id": 7}, key("c1"), started=False)
    started = ToolCallStarted("a", 1, "c1", "lookup", {"id": 7}, key("c1"))
    assert action(first, started) == CallTool("c1", "lookup", {"id": 7}, key("c1"), started=True)
    done = ToolCallCompleted("a", 1, "c1", "lookup", {"name": "Ada"})
    assert action(first, started, done) == AskModel(2)


def test_a_call_in_flight_at_a_crash_runs_again_in_the_next_attempt_with_the_same_key():
    first = turn(1, ("c1", "lookup", {"id": 7}))
    started = ToolCallStarted("a", 1, "c1", "lookup", {"id": 7}, key("c1"))
    failed = StepFailed("a", 1, "worker_lost", "lost")
    state = state_after(StepStarted("a", 1), first, started, failed, StepStarted("a", 2))
    assert state.step("a").attempt == 2
    assert tr.pending_calls(state.step("a").agent) == ["c1"]
    assert next_action(RUN, "a", state.step("a"), TOOLS) == CallTool(
        "c1", "lookup", {"id": 7}, key("c1"), started=True
    )


def test_several_calls_of_one_turn_run_in_order_and_then_the_model_is_asked_again():
    first = turn(1, ("c1", "lookup", {"id": 1}), ("c2", "lookup", {"id": 2}))
    done1 = [
        ToolCallStarted("a", 1, "c1", "lookup", {"id": 1}, key("c1")),
        ToolCallCompleted("a", 1, "c1", "lookup", 1),
    ]
    assert action(first, *done1).call_id == "c2"
    done2 = [
        ToolCallStarted("a", 1, "c2", "lookup", {"id": 2}, key("c2")),
        ToolCallFailed("a", 1, "c2", "lookup", "tool_error", "boom"),
    ]
    assert action(first, *done1, *done2) == AskModel(2)


def test_a_turn_without_tool_calls_is_the_answer():
    assert action(turn(1, text="Done: 42")) == Answer("Done: 42")


def test_a_refused_answer_is_asked_again_in_the_same_conversation():
    answer = turn(1, text="{oops")
    failed = StepFailed("a", 1, "invalid_output", "not JSON", detail={"answer": "{oops"})
    correction = CorrectionAttempted("a", 2, 1, 2, "not JSON", "{oops", ("not JSON",))
    state = state_after(StepStarted("a", 1), answer, failed, correction, StepStarted("a", 2))
    assert state.step("a").agent["corrections"][0]["after_turn"] == 1
    assert next_action(RUN, "a", state.step("a"), TOOLS) == AskModel(2)


def test_an_unknown_tool_is_refused_to_the_model():
    result = action(turn(1, ("c1", "nope", {})))
    assert isinstance(result, RefuseCall) and result.error_class == "unknown_tool"
    assert "lookup" in result.message


def test_the_turn_limit_stops_the_agent():
    events = []
    for n in range(1, 3):
        events += [
            turn(n, (f"c{n}", "lookup", {"id": n})),
            ToolCallStarted("a", 1, f"c{n}", "lookup", {"id": n}, key(f"c{n}")),
            ToolCallCompleted("a", 1, f"c{n}", "lookup", n),
        ]
    stop = action(*events, limits={"max_turns": 2})
    assert isinstance(stop, Stop) and stop.error_class == "agent_limit"
    assert action(*events, limits={"max_turns": 3}) == AskModel(3)


def test_the_tool_call_limit_stops_the_agent():
    events = [
        turn(1, ("c1", "lookup", {"id": 1})),
        ToolCallStarted("a", 1, "c1", "lookup", {"id": 1}, key("c1")),
        ToolCallCompleted("a", 1, "c1", "lookup", 1),
        turn(2, ("c2", "lookup", {"id": 2})),
    ]
    stop = action(*events, limits={"max_tool_calls": 1})
    assert isinstance(stop, Stop) and stop.error_class == "agent_limit"


def test_the_same_call_repeated_stops_the_agent_as_a_loop():
    events = []
    for n in range(1, 3):
        events += [
            turn(n, (f"c{n}", "lookup", {"id": 7})),
            ToolCallStarted("a", 1, f"c{n}", "lookup", {"id": 7}, key(f"c{n}")),
            ToolCallCompleted("a", 1, f"c{n}", "lookup", "same"),
        ]
    third = turn(3, ("c3", "lookup", {"id": 7}))
    stop = action(*events, third)
    assert isinstance(stop, Stop) and stop.error_class == "agent_loop"
    other = turn(3, ("c3", "lookup", {"id": 8}))
    assert isinstance(action(*events, other), CallTool)


def test_a_spent_cost_limit_stops_the_agent_before_its_next_turn():
    events = [
        turn(1, ("c1", "lookup", {"id": 1}), cost=0.5),
        ToolCallStarted("a", 1, "c1", "lookup", {"id": 1}, key("c1")),
        ToolCallCompleted("a", 1, "c1", "lookup", 1),
    ]
    stop = action(*events, limits={"max_cost_usd": 0.4})
    assert isinstance(stop, Stop) and stop.error_class == "budget_exceeded"
    assert action(*events, limits={"max_cost_usd": 1}) == AskModel(2)


def test_malformed_arguments_are_bounded():
    events = []
    for n in range(1, 4):
        events += [
            turn(n, (f"c{n}", "lookup", f"{{bad {n}")),
            ToolCallFailed("a", 1, f"c{n}", "lookup", "invalid_arguments", "not JSON"),
        ]
    stop = action(*events, turn(4, ("c4", "lookup", {"id": 1})))
    assert isinstance(stop, Stop) and stop.error_class == "agent_limit"


def gate_events():
    first = turn(1, ("c1", "refund", {"amount": 10}))
    gate = tool_gate_key("a", 1, "c1")
    requested = ApprovalRequested(
        "a",
        1,
        "refund",
        "",
        {"tool": "refund", "arguments": {"amount": 10}, "call_id": "c1"},
        None,
        gate=gate,
    )
    return first, gate, requested


def test_a_call_that_needs_approval_asks_a_person_and_parks_the_step():
    first, gate, requested = gate_events()
    assert action(first) == AskPerson("c1", "refund", {"amount": 10}, gate)
    state = state_after(StepStarted("a", 1), first, requested)
    assert state.step("a").status == "waiting" and state.steps_started == 1


def test_an_approved_call_runs_with_the_approvers_edited_arguments_in_the_next_attempt():
    first, gate, requested = gate_events()
    granted = ApprovalGranted("a", "bob", "ok", {"arguments": {"amount": 5}}, gate=gate)
    state = state_after(StepStarted("a", 1), first, requested, granted)
    definition_ = _agent_definition()
    started = decide(state, definition_, T0)
    assert started == [StepStarted("a", 2)]
    state = state_after(StepStarted("a", 1), first, requested, granted, StepStarted("a", 2))
    assert next_action(RUN, "a", state.step("a"), TOOLS) == CallTool(
        "c1", "refund", {"amount": 5}, key("c1"), started=False
    )


def test_a_denied_call_gives_the_model_the_denial():
    first, gate, requested = gate_events()
    denied = ApprovalDenied("a", "bob", "too much", gate=gate)
    state = state_after(StepStarted("a", 1), first, requested, denied, StepStarted("a", 2))
    result = next_action(RUN, "a", state.step("a"), TOOLS)
    assert isinstance(result, RefuseCall) and result.error_class == "denied"
    assert "bob denied this call" in result.message and "too much" in result.message


def test_the_transcript_is_kept_in_checkpoints_and_counts_calls_and_cost():
    events = [
        turn(1, ("c1", "lookup", {"id": 1}), cost=0.25),
        ToolCallStarted("a", 1, "c1", "lookup", {"id": 1}, key("c1")),
        ToolCallStarted("a", 2, "c1", "lookup", {"id": 1}, key("c1")),  # run again
        ToolCallCompleted("a", 2, "c1", "lookup", 1),
    ]
    state = state_after(StepStarted("a", 1), *events)
    agent = state.step("a").agent
    assert agent["tool_calls"] == 1 and agent["cost_usd"] == 0.25
    assert state.step("a").usage["cost_usd"] == 0.25
    assert state_from_json(state_to_json(state)) == state


def test_a_large_result_is_capped_with_a_note():
    kept = tr.capped({"text": "x" * 50_000})
    assert kept["truncated"] is True and len(kept["text"]) == tr.MAX_RESULT_CHARS
    assert "only the first 16,000" in kept["note"]
    assert tr.capped({"small": 1}) == {"small": 1}


def _agent_definition():
    return Definition.from_json({"steps": [{"id": "a", "kind": "agent"}], "edges": []})


def test_a_tool_gate_nobody_decided_in_time_is_denied_and_the_agent_goes_on():
    first, gate, requested = gate_events()
    requested = ApprovalRequested(
        "a",
        1,
        "refund",
        "",
        requested.payload,
        (T0 + timedelta(seconds=5)).isoformat(),
        gate=gate,
    )
    state = state_after(StepStarted("a", 1), first, requested)
    events = decide(state, _agent_definition(), T0 + timedelta(hours=1))
    assert [type(e).__name__ for e in events] == ["ApprovalTimedOut", "StepStarted"]
    state = state_after(StepStarted("a", 1), first, requested, *events)
    result = next_action(RUN, "a", state.step("a"), TOOLS)
    assert isinstance(result, RefuseCall) and "timed out" in result.message
