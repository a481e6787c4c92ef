"""An agent step's next move, from its transcript alone (pure, no I/O).

The step kind (steps.agent) asks `next_action` what to do, does it (one model turn, one
tool call, or opening a gate for a person), records it, and asks again: so a crash at any
point resumes from the log, and nothing recorded is done twice.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from vectorbea.engine import transcript as tr
from vectorbea.engine.errors import ErrorClass
from vectorbea.engine.state import StepState

AGENT_KIND = "agent"

DEFAULT_LIMITS: Mapping[str, Any] = {
    "max_turns": 10,
    "max_tool_calls": 20,
    "max_cost_usd": None,
    # The same call (name and arguments) this many times in a row stops the agent.
    "max_repeats": 3,
    # Calls refused for malformed arguments before the agent is stopped.
    "max_invalid_calls": 3,
}
INVALID_ARGUMENTS = "invalid_arguments"
UNKNOWN_TOOL = "unknown_tool"
DENIED = "denied"


@dataclass(frozen=True)
class AskModel:
    turn: int  # the turn to ask for (1-based)


@dataclass(frozen=True)
class CallTool:
    """Run a tool call. `started`: its ToolCallStarted is recorded (run it now, with
    `idempotency_key`); else record that first, then run it."""

    call_id: str
    name: str
    arguments: Any  # as the model gave them, or as an approver edited them
    idempotency_key: str
    started: bool


@dataclass(frozen=True)
class RefuseCall:
    """Give the model an error for this call instead of a result (unknown tool, denied)."""

    call_id: str
    name: str
    error_class: str
    message: str


@dataclass(frozen=True)
class AskPerson:
    """The call needs a person's approval: open `gate` and wait."""

    call_id: str
    name: str
    arguments: Any
    gate: str


@dataclass(frozen=True)
class Answer:
    text: str


@dataclass(frozen=True)
class Stop:
    error_class: str
    message: str


Action = AskModel | CallTool | RefuseCall | AskPerson | Answer | Stop


def idempotency_key(run_id: UUID | str, step_id: str, call_id: str) -> str:
    """Stable across attempts and crashes: a call in flight at a crash runs again with it."""
    return f"vb-{run_id}-{step_id}-{call_id}"


def tool_gate_key(step_id: str, attempt: int, call_id: str) -> str:
    digest = hashlib.sha256(call_id.encode()).hexdigest()[:10]
    return f"{step_id}:{attempt}:{digest}"


def limits_with_defaults(limits: Mapping[str, Any] | None) -> dict[str, Any]:
    given = {key: value for key, value in (limits or {}).items() if value is not None}
    return {**DEFAULT_LIMITS, **given}


def next_action(
    run_id: UUID | str,
    step_id: str,
    step: StepState,
    tools: Mapping[str, bool],
    limits: Mapping[str, Any] | None = None,
) -> Action:
    """What the agent does next. `tools`: the step's tool names, each to whether it needs
    a person's approval; `limits`: see DEFAULT_LIMITS."""
    limits = limits_with_defaults(limits)
    t = step.agent or tr.empty()
    last = tr.last_turn(t)
    if last is None:
        return _ask_model(t, limits)
    for call in last["tool_calls"]:
        action = _for_call(run_id, step_id, step, t, call, tools, limits)
        if action is not None:
            return action
    if last["tool_calls"]:
        return _ask_model(t, limits)
    corrections = t.get("corrections") or []
    if corrections and corrections[-1]["after_turn"] == last["turn"]:
        return _ask_model(t, limits)  # its last answer was refused: it answers again
    return Answer(last["text"])


def _ask_model(t: tr.Transcript, limits: Mapping[str, Any]) -> Action:
    turns = len(t.get("turns") or ())
    if turns >= int(limits["max_turns"]):
        return Stop(
            ErrorClass.AGENT_LIMIT,
            f"The agent used all {turns} of its turns without giving an answer "
            "(max_turns in its limits).",
        )
    cap = limits.get("max_cost_usd")
    spent = float(t.get("cost_usd") or 0)
    if cap is not None and spent >= float(cap):
        return Stop(
            ErrorClass.BUDGET_EXCEEDED,
            f"The agent spent ${spent:.4f} of its ${float(cap):.4f} limit (max_cost_usd) "
            "and was stopped before its next turn.",
        )
    return AskModel(turns + 1)


def _for_call(
    run_id: UUID | str,
    step_id: str,
    step: StepState,
    t: tr.Transcript,
    call: Mapping[str, Any],
    tools: Mapping[str, bool],
    limits: Mapping[str, Any],
) -> Action | None:
    """What to do about one call of the last turn; None when it is settled."""
    call_id, name = str(call["id"]), str(call["name"])
    record = tr.call_record(t, call_id)
    key = idempotency_key(run_id, step_id, call_id)
    if record is not None and record.get("status") in (tr.COMPLETED, tr.FAILED):
        return None
    if record is not None:  # started, never finished: run it again, with the same key
        return CallTool(call_id, name, record.get("arguments"), key, started=True)
    invalid = sum(
        1
        for record in (t.get("calls") or {}).values()
        if record.get("error_class") == INVALID_ARGUMENTS
    )
    if invalid >= int(limits["max_invalid_calls"]):
        return Stop(
            ErrorClass.AGENT_LIMIT,
            f"The model sent malformed tool arguments {invalid} times and was stopped.",
        )
    if name not in tools:
        known = ", ".join(sorted(tools)) or "none"
        return RefuseCall(
            call_id, name, UNKNOWN_TOOL, f"There is no tool named {name!r}. Tools: {known}."
        )
    repeats = _repeats(tr.all_calls(t), call_id)
    if repeats >= int(limits["max_repeats"]):
        return Stop(
            ErrorClass.AGENT_LOOP,
            f"The agent asked for the same call {repeats} times in a row ({name} with the "
            "same arguments) and was stopped.",
        )
    if int(t.get("tool_calls") or 0) >= int(limits["max_tool_calls"]):
        return Stop(
            ErrorClass.AGENT_LIMIT,
            f"The agent made all {t.get('tool_calls')} of its tool calls without giving an "
            "answer (max_tool_calls in its limits).",
        )
    arguments = call.get("arguments")
    if tools[name]:
        approval = (t.get("approvals") or {}).get(call_id)
        decision = None if approval is None else approval.get("decision")
        if decision is None:
            gate = tool_gate_key(step_id, step.attempt, call_id)
            return AskPerson(call_id, name, arguments, gate)
        if not decision.get("approved"):
            return RefuseCall(call_id, name, DENIED, _denial(decision))
        edited = (decision.get("fields") or {}).get("arguments")
        if isinstance(edited, Mapping):
            arguments = dict(edited)
    return CallTool(call_id, name, arguments, key, started=False)


def _denial(decision: Mapping[str, Any]) -> str:
    if decision.get("timed_out"):
        return "Nobody approved this call before its approval timed out; it was not run."
    who = decision.get("by") or "A person"
    reason = str(decision.get("reason") or "").strip()
    said = f" Their reason: {reason}" if reason else ""
    return f"{who} denied this call; it was not run.{said}"


def _repeats(calls: list[Mapping[str, Any]], call_id: str) -> int:
    """How many calls in a row, ending with `call_id`, have the same name and arguments."""
    upto = []
    for call in calls:
        upto.append(call)
        if str(call["id"]) == call_id:
            break
    if not upto:
        return 0
    same = _signature(upto[-1])
    count = 0
    for call in reversed(upto):
        if _signature(call) != same:
            break
        count += 1
    return count


def _signature(call: Mapping[str, Any]) -> str:
    arguments = call.get("arguments")
    try:
        shown = json.dumps(arguments, sort_keys=True)
    except (TypeError, ValueError):
        shown = repr(arguments)
    return f"{call.get('name')}|{shown}"
