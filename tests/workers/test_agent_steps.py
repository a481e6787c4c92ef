"""Agent steps on real worker processes, against the scripted fake provider: each model
turn and tool call is recorded as it happens, a killed worker's agent resumes from the
last recorded one, tools behind approval wait for a person, and the agent's limits stop
it with their own error classes."""

import json
import random
import time
from collections import Counter
from decimal import Decimal

import pytest

from tests.support.fake_llm import FakeLLM, calls, ok, ok_json, status
from tests.support.live import (
    Live,
    event_rows,
    event_rows_at,
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


def agent_workflow(acme, provider="openai", tools=TOOLS, timeout_seconds=None, **config):
    step = {
        "provider": provider,
        "model": "gpt-4o-mini",
        "system": "You help customers.",
        "task": "Order {{ input.order }} arrived broken: refund it and tell the customer.",
        "tools": tools,
        **config,
    }
    timeout = {} if timeout_seconds is None else {"timeout_seconds": timeout_seconds}
    return publish(acme, chain(1, "agent", step, retry=FAST_RETRY, **timeout))


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


class TurnByTurn(FakeLLM):
    """Answers by the turn a request asks for (the assistant messages it carries), so a
    turn asked again after a crash gets the same answer; notes when each turn was asked."""

    def __init__(self, turns: int, delay_seconds: float) -> None:
        super().__init__(delay_seconds=delay_seconds)
        self.turns = turns
        self.asked: list[tuple[int, float]] = []  # (turn, wall-clock time)

    def next_reply(self, request):
        turn = 1 + sum(1 for m in request.body["messages"] if m["role"] == "assistant")
        with self._lock:
            self.requests.append(request)
            self.asked.append((turn, time.time()))
            number = len(self.requests) - 1
        if turn >= self.turns:
            return ok("All shipped."), number
        return calls(("ship", {"order_id": turn, "sleep": 0.2})), number


def test_an_agent_survives_repeated_sigkills_without_asking_or_running_anything_twice(
    transactional_db, acme
):
    prepare_side_effects()
    flush_own_redis()
    turns = 14
    with TurnByTurn(turns, delay_seconds=0.4) as fake:
        live = Live(VECTORBEA_OPENAI_BASE_URL=fake.openai_url, VECTORBEA_OPENAI_API_KEY=KEY)
        try:
            live.scheduler()
            worker = live.worker()
            tools = [{"type": "python", "name": "ship"}]
            workflow = agent_workflow(acme, tools=tools, limits={"max_turns": 30})
            run = start_run(workflow, {"order": 7})
            rng = random.Random(20261207)
            kills = 0
            for _ in range(6):
                seen = len(fake.asked)
                # this worker got going
                wait_for(lambda seen=seen: len(fake.asked) > seen, timeout=30)
                time.sleep(rng.uniform(0.1, 1.0))
                if run_status(run.id) in ENDED:
                    break
                live.kill(worker)
                kills += 1
                worker = live.worker()
            assert finished(run, timeout=120) == "completed"
        finally:
            live.stop_all()

    assert kills >= 5
    rows = event_rows_at(run.id)
    lost = [p for _, t, p, _ in rows if t == "StepFailed"]
    assert lost and all(p["error_class"] == "worker_lost" for p in lost)
    # Every turn was recorded once, in order, and no recorded turn was asked again after it
    # was recorded (a turn in flight at a kill may have been asked twice, before).
    recorded = [(p["turn"], at.timestamp()) for _, t, p, at in rows if t == "AgentTurnCompleted"]
    assert [turn for turn, _ in recorded] == list(range(1, turns + 1))
    for turn, at in recorded:
        assert all(asked <= at + 0.25 for t, asked in fake.asked if t == turn), turn
    # Each call's effect happened once, under its own key; a call ran again only when it
    # was in flight at a kill, never after its result was recorded.
    completed = {p["call_id"]: at for _, t, p, at in rows if t == "ToolCallCompleted"}
    assert len(completed) == turns - 1
    effects = [row for row in side_effects(run.id) if row[2] == "tool:ship"]
    assert sorted(key for _, _, _, key, _ in effects) == sorted(
        f"vb-{run.id}-s0-{call_id}" for call_id in completed
    )
    assert len(effects) == turns - 1
    started = Counter(p["call_id"] for _, t, p, _ in rows if t == "ToolCallStarted")
    assert all(count <= 1 + len(lost) for count in started.values())
    (done,) = [p for _, t, p, _ in rows if t == "StepCompleted"]
    assert done["output"]["text"] == "All shipped."


def test_an_http_tool_calls_its_api_with_the_workspaces_secret_and_the_models_arguments(
    transactional_db, acme, alice
):
    from tests.support.counting_server import CountingServer
    from vectorbea.keys import vault

    token = "tok-agent-http-0123456789"
    vault.set_secret(acme, "API_TOKEN", token, alice)
    prepare_side_effects()
    flush_own_redis()
    with FakeLLM() as fake, CountingServer() as server:
        live = Live(
            VECTORBEA_OPENAI_BASE_URL=fake.openai_url,
            VECTORBEA_OPENAI_API_KEY=KEY,
            VECTORBEA_HTTP_ALLOWLIST=server.allow,
        )
        try:
            live.scheduler()
            live.worker()
            tool = {
                "type": "http",
                "name": "order_api",
                "description": "Create a return for an order.",
                "method": "POST",
                "url": server.url("/echo"),
                "headers": {"Authorization": "Bearer {{ secrets.API_TOKEN }}"},
                "parameters": {
                    "type": "object",
                    "properties": {"order_id": {"type": "integer"}},
                    "required": ["order_id"],
                },
            }
            fake.script(calls(("order_api", {"order_id": 7})), ok("Return created."))
            run = start_run(agent_workflow(acme, tools=[tool]), {"order": 7})
            assert finished(run) == "completed"
        finally:
            live.stop_all()

    (seen,) = server.requests
    assert seen.method == "POST" and json.loads(seen.body) == {"order_id": 7}
    assert seen.headers["authorization"] == f"Bearer {token}"
    (started,) = [p for t, p in agent_events(run.id) if t == "ToolCallStarted"]
    assert seen.idempotency_key == started["idempotency_key"]
    assert fake.requests[0].tools[0]["function"]["parameters"]["required"] == ["order_id"]
    (completed,) = [p for t, p in agent_events(run.id) if t == "ToolCallCompleted"]
    assert completed["result"]["status"] == 200
    # The secret's value is in no event.
    assert token not in json.dumps(event_rows(run.id))


def test_an_overloaded_provider_mid_agent_is_retried_from_the_last_recorded_turn(live, acme, fake):
    fake.script(calls(("lookup_order", {"order_id": 7})), status(529), ok("Done."))
    run = start_run(agent_workflow(acme), {"order": 7})
    assert finished(run) == "completed"

    (failed,) = [p for _, t, p in event_rows(run.id) if t == "StepFailed"]
    assert failed["error_class"] == "transient" and "529" in failed["message"]
    turns = [p for t, p in agent_events(run.id) if t == "AgentTurnCompleted"]
    assert [(p["turn"], p["attempt"]) for p in turns] == [(1, 1), (2, 2)]
    assert [phase for phase, _ in tool_effects(run.id)] == ["tool:lookup_order"]
    assert len(fake.requests) == 3  # the first turn was not asked again


def test_an_answer_that_fails_the_output_schema_is_corrected_in_the_same_conversation(
    live, acme, fake
):
    schema = {
        "type": "object",
        "properties": {"refunded": {"type": "number"}},
        "required": ["refunded"],
    }
    fake.script(
        calls(("lookup_order", {"order_id": 7})),
        ok("I refunded 40."),
        ok_json({"refunded": 40}),
    )
    run = start_run(agent_workflow(acme, output_schema=schema), {"order": 7})
    assert finished(run) == "completed"

    assert "CorrectionAttempted" in event_types(run.id)
    (completed,) = [p for _, t, p in event_rows(run.id) if t == "StepCompleted"]
    assert completed["output"]["json"] == {"refunded": 40}
    # The correction was asked after the refused answer, with the tool's result still in
    # the conversation, and the tool did not run again.
    messages = fake.requests[2].body["messages"]
    assert [m["role"] for m in messages] == [
        "system",
        "user",
        "assistant",
        "tool",
        "assistant",
        "user",
    ]
    assert "not JSON" in messages[-1]["content"]
    assert [phase for phase, _ in tool_effects(run.id)] == ["tool:lookup_order"]
    assert len(fake.requests) == 3


def test_the_steps_timeout_spans_the_agents_legs_and_a_retry_goes_on_from_the_transcript(
    live, acme, fake
):
    slow = [calls(("lookup_order", {"order_id": n, "sleep": 1.2})) for n in range(1, 5)]
    fake.script(*slow, ok("Done."))
    run = start_run(agent_workflow(acme, timeout_seconds=3), {"order": 7})
    assert finished(run, timeout=90) == "completed"

    timeouts = [p for _, t, p in event_rows(run.id) if t == "StepFailed"]
    assert timeouts and all("timeout (3 seconds)" in p["message"] for p in timeouts)
    turns = [p["turn"] for t, p in agent_events(run.id) if t == "AgentTurnCompleted"]
    assert turns == [1, 2, 3, 4, 5]
    # Only a turn cut off by the timeout may have been asked twice.
    assert len(fake.requests) <= 5 + len(timeouts)
