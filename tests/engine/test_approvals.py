"""Approval gates in the pure engine: who may decide, N of M, escalation, approver fields,
old events, and gates in parallel branches."""

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.engine.builders import definition, event_types, step
from tests.engine.test_events import stored_log
from tests.engine.test_waits import NOW, settle, state_after, then
from vectorbea.engine import (
    ApprovalDenied,
    ApprovalEscalated,
    ApprovalGranted,
    ApprovalReassigned,
    ApprovalRequested,
    ApprovalTimedOut,
    Definition,
    RunFailed,
    StepCompleted,
    StepFailed,
    StepStarted,
    decide,
    event_from_payload,
    event_to_payload,
    fold,
    next_wake_at,
    state_from_json,
    state_to_json,
)
from vectorbea.engine.decide import escalated
from vectorbea.engine.waits import decider_problem, field_values

FIXTURES = Path(__file__).parent / "fixtures"


def gate(**config: Any) -> Definition:
    return definition(
        [step("gate", "approval", name="Refund", config={"title": "Refund?", **config}), "send"],
        [("gate", "send")],
    )


def opened(flow: Definition) -> Any:
    return settle(state_after(), flow)


# --- what a gate records when it opens ------------------------------------------------------


def test_a_gate_records_its_rules_when_it_opens() -> None:
    fields = [{"name": "draft", "type": "long_text", "required": True, "default": "Hi"}]
    flow = gate(
        approvers={"roles": ["admin", "owner"], "users": ["carol", "carol"]},
        required_approvals=2,
        allow_self_approval=True,
        fields=fields,
    )

    (event,) = decide(state_after(), flow, NOW)

    assert isinstance(event, ApprovalRequested)
    assert event.gate == "gate:1"
    assert event.approvers == {"roles": ["owner", "admin"], "users": ["carol"]}
    assert (event.required, event.allow_self_approval) == (2, True)
    assert event.form == [
        {"name": "draft", "label": "draft", "type": "long_text", "required": True, "default": "Hi"}
    ]


def test_by_default_owners_admins_and_approvers_decide_and_not_the_initiator() -> None:
    (event,) = decide(state_after(), gate(), NOW)

    assert isinstance(event, ApprovalRequested)
    assert event.approvers == {"roles": ["owner", "admin", "approver"], "users": []}
    assert event.allow_self_approval is False
    assert event.required == 1


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"on_timeout": "escalate", "timeout_seconds": 5}, "needs 'escalate' settings"),
        ({"approvers": {"roles": ["boss"]}}, "must list workspace roles"),
        ({"approvers": {"roles": [], "users": []}}, "names nobody"),
        ({"required_approvals": 0}, "from 1 to 20"),
        ({"fields": [{"name": "x", "type": "file"}]}, "has type 'file'"),
        ({"fields": [{"name": "x"}, {"name": "x"}]}, "names the field 'x' twice"),
        (
            {
                "on_timeout": "escalate",
                "escalate": {"approvers": {"roles": ["owner"]}, "on_timeout": "escalate"},
            },
            "'on_timeout' must be 'deny' or 'approve'",
        ),
    ],
)
def test_a_gate_with_bad_rules_fails_when_it_opens_not_later(config, message) -> None:
    events = decide(state_after(), gate(**config), NOW)

    assert event_types(events) == ["StepFailed", "RunNeedsAttention"]
    failed = events[0]
    assert isinstance(failed, StepFailed) and failed.error_class == "permanent"
    assert message in failed.message


# --- N of M -------------------------------------------------------------------------------------


def test_a_gate_needing_two_approvals_waits_for_a_second_person() -> None:
    flow = gate(required_approvals=2)
    state = then(opened(flow), ApprovalGranted("gate", "omar", "ok", {"a": 1}, "gate:1"))

    assert state.steps["gate"].decision is None
    assert decide(state, flow, NOW) == []
    state = then(state, ApprovalGranted("gate", "omar", "again"))  # the same person: once
    assert [g["by"] for g in state.steps["gate"].gate["grants"]] == ["omar"]
    state = then(state, ApprovalGranted("gate", "olga", "agreed", {"b": 2}))

    events = decide(state, flow, NOW)
    assert event_types(events) == ["StepCompleted", "StepStarted"]
    assert events[0].output == {
        "approved": True,
        "by": "olga",
        "reason": "agreed",
        "fields": {"a": 1, "b": 2},
        "timed_out": False,
    }


def test_one_denial_denies_a_gate_that_needs_several_approvals() -> None:
    flow = gate(required_approvals=3)
    state = then(opened(flow), ApprovalGranted("gate", "omar", "ok"))
    state = then(state, ApprovalDenied("gate", "olga", "no receipt", {"note": "x"}))

    events = decide(state, flow, NOW)

    assert event_types(events) == ["StepCompleted", "RunFailed"]
    assert events[0].output["fields"] == {"note": "x"}
    assert events[-1] == RunFailed("Approval 'Refund' was denied by olga: no receipt", "gate")


# --- who may decide -----------------------------------------------------------------------------


RULES = {"approvers": {"roles": ["approver"], "users": ["carol"]}, "grants": [{"by": "olga"}]}


@pytest.mark.parametrize(
    ("username", "role", "started_by", "allowed"),
    [
        ("omar", "approver", "alice", True),
        ("carol", "viewer", "alice", True),  # named
        ("eddie", "editor", "alice", False),
        ("alice", "owner", "alice", False),  # not named (roles are approver only)
        ("omar", "approver", "omar", False),  # his own run
        ("olga", "approver", "alice", False),  # already approved
        ("omar", None, "alice", False),  # not a member
    ],
)
def test_who_may_decide(username, role, started_by, allowed) -> None:
    assert (decider_problem(RULES, username, role, started_by) is None) is allowed


def test_the_initiator_decides_only_when_the_gate_allows_it() -> None:
    rules = {"approvers": {"roles": ["owner"], "users": []}}

    assert "started this run" in decider_problem(rules, "alice", "owner", "alice")
    assert (
        decider_problem({**rules, "allow_self_approval": True}, "alice", "owner", "alice") is None
    )


def test_approver_fields_are_typed_and_required_only_to_approve() -> None:
    form = [
        {"name": "draft", "label": "Draft", "type": "long_text", "required": True},
        {"name": "amount", "label": "Amount", "type": "number", "required": False},
        {"name": "notify", "label": "Notify", "type": "boolean", "required": False},
    ]

    values, problems = field_values(form, {"amount": "12.5", "notify": "on"}, approving=True)
    assert problems == {"draft": "Draft is required to approve."}
    assert values == {"amount": 12.5, "notify": True}
    _, problems = field_values(form, {"amount": "lots"}, approving=False)
    assert problems == {"amount": "Amount must be a number."}
    values, problems = field_values(form, {"draft": "Hi\n", "amount": "3"}, approving=True)
    assert (values, problems) == ({"draft": "Hi\n", "amount": 3, "notify": False}, {})


# --- timeouts and escalation --------------------------------------------------------------------


def escalating(**escalate: Any) -> Definition:
    return gate(
        timeout_seconds=60,
        on_timeout="escalate",
        escalate={"approvers": {"users": ["carol"]}, "timeout_seconds": 600, **escalate},
    )


def test_a_gate_escalates_to_other_approvers_with_a_new_timeout() -> None:
    flow = escalating()
    state = opened(flow)
    deadline = NOW + timedelta(seconds=60)

    events = decide(state, flow, deadline)

    assert events == [
        ApprovalEscalated(
            "gate",
            "gate:1",
            {"roles": [], "users": ["carol"]},
            (deadline + timedelta(seconds=600)).isoformat(),
            "deny",
        )
    ]
    state = then(state, *events, at=deadline)
    assert state.steps["gate"].status == "waiting"
    assert state.steps["gate"].gate["approvers"] == {"roles": [], "users": ["carol"]}
    assert next_wake_at(state, flow, deadline) == deadline + timedelta(seconds=600)
    assert decider_problem(state.steps["gate"].gate, "carol", "viewer", "alice") is None
    assert decider_problem(state.steps["gate"].gate, "omar", "approver", "alice") is not None


def test_an_escalated_gate_that_times_out_again_takes_its_verdict() -> None:
    flow = escalating(on_timeout="approve")
    deadline = NOW + timedelta(seconds=60)
    state = then(opened(flow), *decide(opened(flow), flow, deadline), at=deadline)

    events = decide(state, flow, deadline + timedelta(seconds=600))

    assert event_types(events) == ["ApprovalTimedOut", "StepCompleted", "StepStarted"]
    assert events[0] == ApprovalTimedOut("gate", "approved", "gate:1")


def test_a_reassigned_gate_goes_to_its_new_approvers_and_keeps_its_deadline() -> None:
    flow = escalating()
    state = opened(flow)
    wait_until = state.steps["gate"].wait_until

    state = then(state, ApprovalReassigned("gate", "gate:1", {"roles": ["admin"]}, "alice"))

    step = state.steps["gate"]
    assert (step.status, step.wait_until) == ("waiting", wait_until)
    assert step.gate["approvers"] == {"roles": ["admin"]}
    assert step.gate["escalate"] is not None  # the escalation still comes at the deadline
    assert decider_problem(step.gate, "ada", "admin", "alice") is None
    assert decider_problem(step.gate, "omar", "approver", "alice") is not None
    assert decide(state, flow, NOW + timedelta(seconds=1)) == []


def test_an_escalation_taken_early_is_the_one_the_timeout_would_take() -> None:
    flow = escalating()
    state = opened(flow)
    early = NOW + timedelta(seconds=5)

    gate_state = state.steps["gate"].gate
    taken = escalated("gate", gate_state, gate_state["escalate"], early, actor="alice")
    state = then(state, taken, at=early)

    assert taken.actor == "alice" and taken.level == 1
    assert state.steps["gate"].gate["approvers"] == {"roles": [], "users": ["carol"]}
    assert state.steps["gate"].gate["escalate"] is None
    assert next_wake_at(state, flow, early) == early + timedelta(seconds=600)
    assert decide(state, flow, NOW + timedelta(seconds=61)) == []  # the first deadline is gone


def test_a_gate_without_a_timeout_never_passes_by_itself() -> None:
    flow = gate()
    state = opened(flow)

    for days in (1, 30, 3650):
        assert decide(state, flow, NOW + timedelta(days=days)) == []
    assert next_wake_at(state, flow, NOW) is None


# --- parallel branches --------------------------------------------------------------------------


def two_gates() -> Definition:
    return definition(
        [
            "start",
            step("legal", "approval", config={"title": "Legal?"}),
            step("finance", "approval", config={"title": "Finance?"}),
            "join",
        ],
        [("start", "legal"), ("start", "finance"), ("legal", "join"), ("finance", "join")],
    )


def test_gates_in_parallel_branches_wait_and_are_decided_independently() -> None:
    flow = two_gates()
    state = state_after(StepStarted("start", 1), StepCompleted("start", 1, None))

    events = decide(state, flow, NOW)
    assert event_types(events) == ["ApprovalRequested", "ApprovalRequested"]
    state = then(state, *events)
    state = then(state, ApprovalGranted("legal", "omar", "ok", {}, "legal:1"))
    state = settle(state, flow)

    assert state.steps["legal"].status == "completed"
    assert state.steps["finance"].status == "waiting"
    assert state.step("join").status == "pending"  # the join waits for the other gate
    state = then(state, ApprovalGranted("finance", "olga", "ok", {}, "finance:1"))
    assert event_types(decide(state, flow, NOW)) == ["StepCompleted", "StepStarted"]


# --- old events and checkpoints -----------------------------------------------------------------


def test_a_stored_v1_approval_log_folds_to_the_same_state_as_its_current_form() -> None:
    fixture = json.loads((FIXTURES / "v1_approval_events.json").read_text())

    old = fold(stored_log(fixture["v1_log"]))
    current = fold(stored_log(fixture["current_log"]))

    assert old == current
    assert old.steps["gate"].decision["by"] == "alice"
    assert old.steps["gate"].gate["allow_self_approval"] is True  # v1 let the initiator decide
    assert old.steps["second"].decision["timed_out"] is True
    assert old.steps["third"].decision["approved"] is False


def test_the_current_form_of_the_approval_fixture_is_what_the_code_writes_today() -> None:
    fixture = json.loads((FIXTURES / "v1_approval_events.json").read_text())

    for row in fixture["current_log"]:
        event = event_from_payload(row["type"], row["schema_version"], row["payload"])
        assert type(event).schema_version == row["schema_version"]
        assert event_to_payload(event) == row["payload"]


def test_a_v1_gate_without_an_on_timeout_reads_it_from_the_steps_config() -> None:
    flow = gate(timeout_seconds=60, on_timeout="approve")
    requested = event_from_payload(
        "ApprovalRequested",
        1,
        {
            "step_id": "gate",
            "attempt": 1,
            "title": "Refund?",
            "instructions": "",
            "payload": None,
            "timeout_at": (NOW + timedelta(seconds=60)).isoformat(),
        },
    )
    state = then(state_after(), requested)

    events = decide(state, flow, NOW + timedelta(seconds=60))

    assert events[0] == ApprovalTimedOut("gate", "approved", "gate:1")


def test_a_gate_round_trips_through_a_checkpoint() -> None:
    flow = gate(required_approvals=2, fields=[{"name": "n", "type": "number"}])
    state = then(opened(flow), ApprovalGranted("gate", "omar", "ok", {"n": 1}))

    assert state_from_json(json.loads(json.dumps(state_to_json(state)))) == state
