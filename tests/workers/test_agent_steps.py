"""Agent steps on real worker processes, against the scripted fake provider: each model
turn and tool call is recorded as it happens, a killed worker's agent resumes from the
last recorded one, tools behind approval wait for a person, and the agent's limits stop
it with their own error classes."""

import json

import pytest

from tests.support.fake_llm import FakeLLM, calls, ok
from tests.support.live import (
    Live,
    event_rows,
    flush_own_redis,
    prepare_side_effects,
    run_status,
    side_effects,
    wait_for,
)
from tests.support.workflows import FAST_RETRY, chain, publish
from vectorbea.runs.commands import start_run

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
