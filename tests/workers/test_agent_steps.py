"""Agent steps on real worker processes, against the scripted fake provider: each model
turn and tool call is recorded as it happens, a killed worker's agent resumes from the
last recorded one, tools behind approval wait for a person, and the agent's limits stop
it with their own error classes."""

import json
import time
from decimal import Decimal

import pytest

from tests.support.fake_llm import FakeLLM, calls, ok
from tests.support.live import (
    Live,
    event_rows,
    event_types,
    flush_own_redis,
    prepare_side_effects,
    run_status,
    side_effects,
    wait_for,
)
from tests.support.workflows import FAST_RETRY, chain, publish
from vectorbea.budgets.models import WorkspaceLimits
from vectorbea.runs.commands import decide_gate, start_run

KEY = "sk-agent-test-KEY-0123456789abcdef"
ENDED = ("completed", "failed", "needs_attention")


@pytest.fixture
def fake():
    with FakeLLM() as server:
        yield server


@pytest.fixture
def live(transactional_db, fake):
    prepare_side_effects()
    flush_own_redis()
    services = Live(
        VECTORBEA_OPENAI_BASE_URL=fake.openai_url,
        VECTORBEA_ANTHROPIC_BASE_URL=fake.anthropic_url,
        VECTORBEA_OPENAI_API_KEY=KEY,
        VECTORBEA_ANTHROPIC_API_KEY=KEY,
    )
    services.scheduler()
    services.worker()
    yield services
    services.stop_all()


TOOLS = [
    {"type": "python", "name": "lookup_order"},
    {"type": "python", "name": "refund"},
    {"type": "python", "name": "notify"},
]


def agent_workflow(acme, provider="openai", tools=TOOLS, **config):
    step = {
        "provider": provider,
        "model": "gpt-4o-mini",
        "system": "You help customers.",
        "task": "Order {{ input.order }} arrived broken: refund it and tell the customer.",
        "tools": tools,
        **config,
    }
    return publish(acme, chain(1, "agent", step, retry=FAST_RETRY))


def finished(run, timeout=60):
    wait_for(lambda: run_status(run.id) in ENDED, timeout=timeout)
    return run_status(run.id)


def agent_events(run_id):
    kinds = ("AgentTurnCompleted", "ToolCallStarted", "ToolCallCompleted", "ToolCallFailed")
    return [(t, p) for _, t, p in event_rows(run_id) if t in kinds]


def tool_effects(run_id):
    return [
        (phase, key) for _, _, phase, key, _ in side_effects(run_id) if phase.startswith("tool:")
    ]


THREE_TOOLS = (
    calls(("lookup_order", {"order_id": 7}), text="Let me look.", usage=(100, 20)),
    calls(("refund", {"order_id": 7, "amount": 40}), ("notify", {"text": "Refunded"})),
    ok("Refunded order 7 and told the customer.", usage=(300, 10)),
)


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_a_three_tool_agent_completes_recording_each_turn_and_call(live, acme, fake, provider):
    fake.script(*THREE_TOOLS)
    run = start_run(agent_workflow(acme, provider), {"order": 7})
    assert finished(run) == "completed"

    kinds = [t for t, _ in agent_events(run.id)]
    assert kinds == [
        "AgentTurnCompleted",
        "ToolCallStarted",
        "ToolCallCompleted",
        "AgentTurnCompleted",
        "ToolCallStarted",
        "ToolCallCompleted",
        "ToolCallStarted",
        "ToolCallCompleted",
        "AgentTurnCompleted",
    ]
    first = agent_events(run.id)[0][1]
    assert first["message"]["text"] == "Let me look."
    assert first["message"]["tool_calls"][0]["arguments"] == {"order_id": 7}
    assert first["usage"]["input_tokens"] == 100
    # Each tool ran once, with its call's own stable key.
    effects = tool_effects(run.id)
    assert [phase for phase, _ in effects] == ["tool:lookup_order", "tool:refund:40", "tool:notify"]
    assert all(key.startswith(f"vb-{run.id}-s0-") for _, key in effects)
    assert len({key for _, key in effects}) == 3
    # The model saw the tools' schemas and, on the next turn, each result.
    assert len(fake.requests) == 3
    assert fake.requests[0].tool_names == ["lookup_order", "refund", "notify"]
    second = json.dumps(fake.requests[1].body["messages"])
    assert "delivered" in second and "Order 7 arrived broken" in second
    (completed,) = [p for _, t, p in event_rows(run.id) if t == "StepCompleted"]
    assert completed["output"]["text"] == "Refunded order 7 and told the customer."
    assert (completed["output"]["turns"], completed["output"]["tool_calls"]) == (3, 3)


def gated(run_id):
    return "ApprovalRequested" in event_types(run_id)


@pytest.mark.parametrize("verdict", ["approve", "edit", "deny"])
def test_a_tool_behind_approval_waits_for_a_person_and_runs_nothing_twice(
    live, acme, fake, verdict
):
    tools = [
        {"type": "python", "name": "lookup_order"},
        {"type": "python", "name": "refund", "needs_approval": True},
    ]
    fake.script(
        calls(("lookup_order", {"order_id": 7})),
        calls(("refund", {"order_id": 7, "amount": 40})),
        ok("Finished."),
    )
    run = start_run(agent_workflow(acme, tools=tools), {"order": 7})
    wait_for(lambda: gated(run.id), timeout=60)
    time.sleep(0.5)
    # Parked: the refund has not run, and the gate shows the proposed call.
    assert [phase for phase, _ in tool_effects(run.id)] == ["tool:lookup_order"]
    (requested,) = [p for _, t, p in event_rows(run.id) if t == "ApprovalRequested"]
    assert requested["payload"]["tool"] == "refund"
    assert requested["payload"]["arguments"] == {"order_id": 7, "amount": 40}
    assert len(fake.requests) == 2

    if verdict == "deny":
        decide_gate(run.id, "s0", approve=False, actor="alice", reason="Too much")
    elif verdict == "edit":
        edited = {"arguments": json.dumps({"order_id": 7, "amount": 10})}
        decide_gate(run.id, "s0", approve=True, actor="alice", fields=edited)
    else:
        decide_gate(run.id, "s0", approve=True, actor="alice")
    assert finished(run) == "completed"

    effects = [phase for phase, _ in tool_effects(run.id)]
    expected = {
        "approve": ["tool:lookup_order", "tool:refund:40"],
        "edit": ["tool:lookup_order", "tool:refund:10"],
        "deny": ["tool:lookup_order"],
    }[verdict]
    assert effects == expected
    # Nothing before the gate was asked or run again: one request per turn.
    assert len(fake.requests) == 3
    last = fake.requests[2].body["messages"][-1]
    assert last["role"] == "tool"
    if verdict == "deny":
        assert "alice denied this call" in last["content"] and "Too much" in last["content"]
    else:
        assert "refunded" in last["content"]


def test_a_model_that_repeats_the_same_call_is_stopped_as_a_loop(live, acme, fake):
    fake.default = calls(("lookup_order", {"order_id": 7}))
    run = start_run(agent_workflow(acme), {"order": 7})
    assert finished(run) == "needs_attention"

    (failed,) = [p for _, t, p in event_rows(run.id) if t == "StepFailed"]
    assert failed["error_class"] == "agent_loop"
    assert "same call 3 times in a row" in failed["message"]
    assert [phase for phase, _ in tool_effects(run.id)] == ["tool:lookup_order"] * 2
    assert len(fake.requests) == 3


def test_a_budget_cap_stops_the_agent_between_turns(live, acme, fake):
    per_turn = (1000 * 0.15 + 1000 * 0.60) / 1e6  # gpt-4o-mini, 1000 tokens in and out
    WorkspaceLimits.objects.create(workspace=acme, run_cap_usd=Decimal(str(per_turn * 1.5)))
    fake.script(
        *[calls(("lookup_order", {"order_id": n}), usage=(1000, 1000)) for n in range(1, 6)]
    )
    run = start_run(agent_workflow(acme), {"order": 7})
    assert finished(run) == "needs_attention"

    turns = [p for t, p in agent_events(run.id) if t == "AgentTurnCompleted"]
    assert len(turns) == 2  # the second turn spent past the cap: no third
    (failed,) = [p for _, t, p in event_rows(run.id) if t == "StepFailed"]
    assert failed["error_class"] == "budget_exceeded"
    assert len(fake.requests) == 2
    assert len(tool_effects(run.id)) == 2


def test_a_tool_that_raises_and_malformed_arguments_reach_the_model_as_tool_errors(
    live, acme, fake
):
    tools = [*TOOLS, {"type": "python", "name": "explode"}]
    fake.script(
        calls(("explode", {})),
        calls(("lookup_order", "{not json")),
        calls(("lookup_order", {"order_id": "seven"})),
        ok("I could not do it."),
    )
    run = start_run(agent_workflow(acme, tools=tools), {"order": 7})
    assert finished(run) == "completed"

    failures = [p for t, p in agent_events(run.id) if t == "ToolCallFailed"]
    assert [f["error_class"] for f in failures] == [
        "tool_error",
        "invalid_arguments",
        "invalid_arguments",
    ]
    assert "the warehouse API is down" in failures[0]["message"]
    assert "must be a JSON object" in failures[1]["message"]
    assert "'seven' is not of type 'integer'" in failures[2]["message"]
    # The model was told each error as the call's result.
    said = [fake.requests[n].body["messages"][-1] for n in (1, 2, 3)]
    assert all(message["role"] == "tool" for message in said)
    assert "RuntimeError: the warehouse API is down" in said[0]["content"]
    assert "invalid_arguments" in said[1]["content"]
    assert [phase for phase, _ in tool_effects(run.id)] == ["tool:explode"]
