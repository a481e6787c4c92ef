import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from vectorbea.engine import (
    EVENT_TYPES,
    AgentTurnCompleted,
    ApprovalDenied,
    ApprovalEscalated,
    ApprovalGranted,
    ApprovalReassigned,
    ApprovalRequested,
    ApprovalTimedOut,
    AttentionResolved,
    BudgetWarning,
    CallCharged,
    CorrectionAttempted,
    Event,
    InvalidEventPayload,
    LoopRestarted,
    OutputCorrected,
    Recorded,
    RetryScheduled,
    RunAdmitted,
    RunCancelled,
    RunCompleted,
    RunFailed,
    RunNeedsAttention,
    RunPaused,
    RunQueued,
    RunResumed,
    RunStarted,
    StepCompleted,
    StepDeferred,
    StepFailed,
    StepInterrupted,
    StepSkipped,
    StepStarted,
    StepWaiting,
    ToolCallCompleted,
    ToolCallFailed,
    ToolCallStarted,
    UnknownEvent,
    event_from_payload,
    event_to_payload,
    fold,
)

FIXTURES = Path(__file__).parent / "fixtures"

ONE_OF_EACH: list[Event] = [
    RunStarted("wf", "v1", {"topic": "otters", "n": [1, 2]}, started_by="alice"),
    StepStarted("fetch", 1),
    StepCompleted("fetch", 1, {"articles": ["a"]}),
    StepCompleted("route", 2, "yes", ports=("yes", "maybe")),
    StepFailed("fetch", 2, "rate_limited", "429 Too Many Requests", retry_after_seconds=30.0),
    RetryScheduled("fetch", 3, "2025-01-01T09:00:30+00:00", 30.0, "rate_limited", actor="bob"),
    StepSkipped("no_branch", "branch not taken"),
    RunCompleted({"summarise": {"summary": "ok"}}),
    RunFailed("Step 'Fetch' gave up", step_id="fetch"),
    RunCancelled(None, "kill switch"),
    OutputCorrected("summarise", {"summary": "fixed"}, 8, "alice", "typo"),
    StepCompleted("draft", 1, {"text": "hi"}, usage={"model": "m", "input_tokens": 12}),
    StepFailed("draft", 1, "transient", "timeout", usage={"cost_usd": 0.01}),
    StepWaiting("pause", 1, "2025-01-01T10:00:00+00:00", "delay"),
    ApprovalRequested("gate", 1, "Send refund?", "Check it", {"amount": 10}, None),
    ApprovalGranted("gate", "alice", "looks fine", {"note": "ok"}),
    ApprovalDenied("gate", "bob", "too much"),
    ApprovalTimedOut("gate", "denied"),
    ApprovalEscalated("gate", "gate:1", {"roles": ["admin"], "users": []}, None, "deny"),
    ApprovalEscalated("gate", "gate:1", {"users": ["carol"]}, None, "deny", 1, "alice", "urgent"),
    ApprovalReassigned("gate", "gate:1", {"roles": [], "users": ["carol"]}, "alice", "away"),
    RunPaused("alice", "investigating"),
    RunResumed("alice"),
    RunStarted("wf", "v1", {}, limits={"max_steps": 10, "max_attempts": 3}),
    RunStarted("wf", "v1", {}, started_by="alice", via="api:ci"),
    RunStarted("wf", "v1", {}, started_by="alice", rerun_of="3f2a0c1e-0000-4000-8000-000000000001"),
    StepFailed("ask", 1, "invalid_output", "bad", detail={"answer": "{", "errors": ["x"]}),
    CorrectionAttempted("ask", 2, 1, 2, "not JSON", "{", ("(root): not JSON",)),
    StepDeferred("ask", 2, "2025-01-01T09:01:00+00:00", "rate_limited", "10 per minute"),
    StepInterrupted("ask", 3, "alice", "kill switch"),
    RunNeedsAttention("ask", "permanent", "Step 'Ask' failed"),
    AttentionResolved("ask", "retry", "alice", "fixed", config={"prompt": "p"}, version_id="v2"),
    AttentionResolved("ask", "supply_output", "alice", output={"x": 1}),
    LoopRestarted("check", "draft", 2, ("draft", "check")),
    BudgetWarning("run", 80, "This run has spent 80% of its budget."),
    RunPaused("alice", "kill switch", stopped=True),
    RunQueued("Waiting for a free place: the workspace runs at most 2 at once."),
    RunAdmitted(),
    CallCharged(
        "ask", 2, {"model": "gpt-4o", "cost_usd": 0.06, "cost_estimated": True}, "cancelled"
    ),
    AgentTurnCompleted(
        "agent",
        1,
        1,
        {
            "role": "assistant",
            "text": "",
            "tool_calls": [{"id": "c1", "name": "f", "arguments": {}}],
        },
        usage={"model": "m", "cost_usd": 0.001},
    ),
    ToolCallStarted("agent", 1, "c1", "f", {"q": 1}, "vb-run-agent-c1"),
    ToolCallCompleted("agent", 1, "c1", "f", {"rows": [1, 2]}),
    ToolCallFailed("agent", 1, "c2", "f", "invalid_arguments", "not an object"),
]


def stored_log(rows: list[dict[str, Any]]) -> list[Recorded]:
    return [
        Recorded(
            row["seq"],
            datetime.fromisoformat(row["at"]),
            event_from_payload(row["type"], row["schema_version"], row["payload"]),
        )
        for row in rows
    ]


def test_every_event_type_is_registered_under_its_class_name() -> None:
    assert {type(event).__name__ for event in ONE_OF_EACH} == set(EVENT_TYPES)
    assert all(EVENT_TYPES[name].__name__ == name for name in EVENT_TYPES)


@pytest.mark.parametrize("event", ONE_OF_EACH, ids=lambda event: type(event).__name__)
def test_it_round_trips_each_event_through_a_json_payload(event: Event) -> None:
    stored = json.loads(json.dumps(event_to_payload(event)))

    assert event_from_payload(type(event).__name__, type(event).schema_version, stored) == event


def test_it_stores_ports_as_a_list_and_reads_them_back_as_a_tuple() -> None:
    payload = event_to_payload(StepCompleted("route", 1, None, ports=("yes",)))

    assert payload["ports"] == ["yes"]
    event = event_from_payload("StepCompleted", 2, payload)
    assert isinstance(event, StepCompleted)
    assert event.ports == ("yes",)


def test_it_refuses_to_store_a_payload_that_is_not_json_safe() -> None:
    with pytest.raises(TypeError):
        event_to_payload(StepCompleted("fetch", 1, {"when": datetime(2025, 1, 1)}))


def test_it_upcasts_a_v1_step_completed_to_attempt_one_and_all_ports() -> None:
    event = event_from_payload("StepCompleted", 1, {"step_id": "fetch", "output": {"n": 1}})

    assert event == StepCompleted("fetch", attempt=1, output={"n": 1}, ports=None)


def test_it_upcasts_a_v1_step_failed_string_error_to_a_transient_failure() -> None:
    event = event_from_payload("StepFailed", 1, {"step_id": "fetch", "attempt": 2, "error": "boom"})

    assert event == StepFailed("fetch", 2, error_class="transient", message="boom")


def test_it_upcasts_a_v2_step_completed_and_step_failed_to_no_usage() -> None:
    completed = {"step_id": "draft", "attempt": 2, "output": "x", "ports": ["ok"]}
    failed = {
        "step_id": "draft",
        "attempt": 1,
        "error_class": "rate_limited",
        "message": "429",
        "retry_after_seconds": 5.0,
    }

    assert event_from_payload("StepCompleted", 2, completed) == StepCompleted(
        "draft", 2, "x", ports=("ok",), usage=None
    )
    assert event_from_payload("StepFailed", 2, failed) == StepFailed(
        "draft", 1, "rate_limited", "429", 5.0, usage=None
    )


def test_a_v1_step_completed_upcasts_through_every_version() -> None:
    event = event_from_payload("StepCompleted", 1, {"step_id": "fetch", "output": 1})

    assert event == StepCompleted("fetch", 1, 1, ports=None, usage=None)


def test_approval_granted_fields_default_to_empty() -> None:
    event = event_from_payload("ApprovalGranted", 1, {"step_id": "g", "actor": "a", "reason": ""})

    assert event == ApprovalGranted("g", "a", "", {})


def test_an_unknown_event_type_is_refused() -> None:
    with pytest.raises(UnknownEvent, match="ApprovalReconsidered"):
        event_from_payload("ApprovalReconsidered", 1, {})


def test_a_schema_version_newer_than_the_code_is_refused() -> None:
    with pytest.raises(UnknownEvent, match="newer"):
        event_from_payload("StepStarted", 2, {"step_id": "fetch", "attempt": 1})


@pytest.mark.parametrize(
    ("type_name", "version", "payload"),
    [
        ("StepStarted", 1, {"step_id": "fetch"}),
        ("StepStarted", 1, {"step_id": "fetch", "attempt": 1, "extra": True}),
        ("StepFailed", 1, {"step_id": "fetch", "attempt": 1}),
        ("StepStarted", 0, {"step_id": "fetch", "attempt": 1}),
        ("StepStarted", 1, ["fetch", 1]),
    ],
)
def test_a_payload_that_does_not_fit_its_type_is_refused(
    type_name: str, version: int, payload: Any
) -> None:
    with pytest.raises(InvalidEventPayload):
        event_from_payload(type_name, version, payload)


def test_a_stored_v1_log_folds_to_the_same_state_as_its_current_form() -> None:
    fixture = json.loads((FIXTURES / "v1_events.json").read_text())

    old = fold(stored_log(fixture["v1_log"]))
    current = fold(stored_log(fixture["current_log"]))

    assert old == current
    assert old.status == "completed"
    assert old.steps["fetch"].attempt == 2
    assert old.output == {"summarise": {"summary": "Otters hold hands."}}


def test_a_stored_v2_log_folds_to_the_same_state_as_its_current_form() -> None:
    fixture = json.loads((FIXTURES / "v2_events.json").read_text())

    old = fold(stored_log(fixture["v2_log"]))
    current = fold(stored_log(fixture["current_log"]))

    assert old == current
    assert old.status == "completed"
    assert old.steps["draft"].attempt == 2
    assert old.steps["review"].ports == ("ok",)
    assert old.output == {"review": {"verdict": "ok"}}


def test_a_stored_v2_run_started_folds_to_the_same_state_as_its_current_form() -> None:
    fixture = json.loads((FIXTURES / "v2_run_started_events.json").read_text())

    old = fold(stored_log(fixture["v2_log"]))
    current = fold(stored_log(fixture["current_log"]))

    assert old == current
    assert (old.status, old.started_by) == ("completed", "api:ci")
    assert stored_log(fixture["v2_log"])[0].event.via is None


@pytest.mark.parametrize(
    "name",
    [
        "v1_events.json",
        "v2_events.json",
        "v2_run_started_events.json",
        "v3_run_started_events.json",
    ],
)
def test_the_current_form_of_the_fixture_matches_what_the_code_writes_today(name: str) -> None:
    fixture = json.loads((FIXTURES / name).read_text())

    for row in fixture["current_log"]:
        event = event_from_payload(row["type"], row["schema_version"], row["payload"])
        assert type(event).schema_version == row["schema_version"]
        assert event_to_payload(event) == row["payload"]
