"""An agent step's conversation so far, folded from its events (pure).

The transcript is kept on the step's state (StepState.agent) as plain JSON, so it is in
checkpoints too, and it survives the step's retries and crashes: a new attempt goes on
from the last recorded turn or tool call. Its shape:

    {"turns": [{"turn", "attempt", "text", "tool_calls": [{"id", "name", "arguments"}],
                "usage"}],
     "calls": {call_id: {"name", "arguments", "status": "started" | "completed" | "failed",
                         "idempotency_key", "result", "error_class", "message"}},
     "approvals": {call_id: {"gate", "decision": None | {"approved", "by", "reason",
                                                          "fields", "timed_out"}}},
     "corrections": [{"after_turn", "answer", "errors", "problem"}],
     "tool_calls": <calls started>, "cost_usd": <what the turns cost>}
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

STARTED = "started"
COMPLETED = "completed"
FAILED = "failed"

# A tool's result is kept (and shown to the model) up to this many characters of JSON.
MAX_RESULT_CHARS = 16_000

Transcript = Mapping[str, Any]


def empty() -> dict[str, Any]:
    return {
        "turns": [],
        "calls": {},
        "approvals": {},
        "corrections": [],
        "tool_calls": 0,
        "cost_usd": 0.0,
    }


def _copy(transcript: Transcript | None) -> dict[str, Any]:
    return {**empty(), **(transcript or {})}


def turn_completed(
    transcript: Transcript | None,
    attempt: int,
    turn: int,
    message: Mapping[str, Any],
    usage: Mapping[str, Any] | None,
) -> dict[str, Any]:
    t = _copy(transcript)
    entry = {
        "turn": turn,
        "attempt": attempt,
        "text": str(message.get("text") or ""),
        "tool_calls": [dict(call) for call in message.get("tool_calls") or ()],
        "usage": None if usage is None else dict(usage),
    }
    t["turns"] = [*t["turns"], entry]
    cost = (usage or {}).get("cost_usd")
    if isinstance(cost, int | float) and not isinstance(cost, bool):
        t["cost_usd"] = float(t["cost_usd"]) + cost
    return t


def call_started(
    transcript: Transcript | None, call_id: str, name: str, arguments: Any, key: str
) -> dict[str, Any]:
    t = _copy(transcript)
    first = call_id not in t["calls"]
    call = {"name": name, "arguments": arguments, "status": STARTED, "idempotency_key": key}
    t["calls"] = {**t["calls"], call_id: call}
    if first:
        t["tool_calls"] = int(t["tool_calls"]) + 1
    return t


def call_completed(
    transcript: Transcript | None, call_id: str, name: str, result: Any
) -> dict[str, Any]:
    t = _copy(transcript)
    call = {**t["calls"].get(call_id, {"name": name}), "status": COMPLETED, "result": result}
    t["calls"] = {**t["calls"], call_id: call}
    return t


def call_failed(
    transcript: Transcript | None, call_id: str, name: str, error_class: str, message: str
) -> dict[str, Any]:
    t = _copy(transcript)
    call = {
        **t["calls"].get(call_id, {"name": name}),
        "status": FAILED,
        "error_class": error_class,
        "message": message,
    }
    t["calls"] = {**t["calls"], call_id: call}
    return t


def gate_opened(transcript: Transcript | None, call_id: str, gate: str) -> dict[str, Any]:
    t = _copy(transcript)
    t["approvals"] = {**t["approvals"], call_id: {"gate": gate, "decision": None}}
    return t


def gate_decided(
    transcript: Transcript | None, gate: str, decision: Mapping[str, Any]
) -> Transcript | None:
    """The call whose gate this is gets the decision (the transcript is unchanged when no
    call of it has that gate)."""
    if not transcript:
        return transcript
    for call_id, approval in transcript.get("approvals", {}).items():
        if approval.get("gate") == gate:
            t = _copy(transcript)
            t["approvals"] = {**t["approvals"], call_id: {"gate": gate, "decision": dict(decision)}}
            return t
    return transcript


def corrected(
    transcript: Transcript | None, answer: str, errors: list[str], problem: str
) -> dict[str, Any]:
    """The last answer failed the step's output schema: the model is asked again."""
    t = _copy(transcript)
    after = t["turns"][-1]["turn"] if t["turns"] else 0
    entry = {"after_turn": after, "answer": answer, "errors": list(errors), "problem": problem}
    t["corrections"] = [*t["corrections"], entry]
    return t


def last_turn(transcript: Transcript | None) -> Mapping[str, Any] | None:
    turns = (transcript or {}).get("turns") or []
    return turns[-1] if turns else None


def call_record(transcript: Transcript | None, call_id: str) -> Mapping[str, Any] | None:
    return ((transcript or {}).get("calls") or {}).get(call_id)


def all_calls(transcript: Transcript | None) -> list[Mapping[str, Any]]:
    """Every tool call the model asked for, in order, across turns."""
    return [call for turn in (transcript or {}).get("turns") or () for call in turn["tool_calls"]]


def pending_calls(transcript: Transcript | None) -> list[str]:
    """Calls started and not finished (in flight when a worker stopped)."""
    calls = (transcript or {}).get("calls") or {}
    return [call_id for call_id, call in calls.items() if call.get("status") == STARTED]


def json_text(value: Any) -> str:
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(value)


def capped(result: Any) -> Any:
    """A tool's result as it is kept: whole when its JSON is at most MAX_RESULT_CHARS
    characters, else its first characters with a note that it was cut."""
    try:
        text = result if isinstance(result, str) else json.dumps(result, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(result)
        result = text
    if len(text) <= MAX_RESULT_CHARS:
        return result
    return {
        "truncated": True,
        "note": (
            f"The tool's result was {len(text):,} characters; only the first "
            f"{MAX_RESULT_CHARS:,} are kept."
        ),
        "text": text[:MAX_RESULT_CHARS],
    }
