"""What the top of the run page says about a run as a whole: its input, its final output
(or why it has none), how a denied run was denied, and the runs it re-runs or was re-run as.
All of it read from the run's folded state, the same fold the engine decides with."""

import json
from dataclasses import dataclass
from typing import Any

from vectorbea.engine import Definition, RunState
from vectorbea.engine.state import RUN_COMPLETED


def pretty(value: Any) -> str:
    """A JSON value as people read it: indented, not escaped, keys in alphabetical order
    (Postgres keeps a JSON object's keys in an order of its own, shortest first)."""
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)


@dataclass(frozen=True)
class RunIO:
    input: str  # pretty JSON
    output: str | None  # pretty JSON once the run completed; None before or without one
    no_output: str  # why there is no output, in words ("" when there is one)


def run_io(state: RunState, definition: Definition) -> RunIO:
    output = pretty(state.output) if state.status == RUN_COMPLETED else None
    return RunIO(pretty(state.input or {}), output, _no_output(state, definition))


def _no_output(state: RunState, definition: Definition) -> str:
    match state.status:
        case "completed":
            return ""
        case "failed":
            return "No output: the run failed."
        case "denied":
            where = _step_name(definition, state.failed_step_id)
            return f"No output: the run was denied at {where}."
        case "cancelled":
            return "No output: the run was cancelled."
    return "The run has not finished yet; its output appears here when it completes."


def denial_text(state: RunState, definition: Definition) -> str:
    """How a denied run was denied, in one sentence ("" for a run that was not)."""
    denial = state.denial
    if denial is None:
        return ""
    where = _step_name(definition, denial["step_id"])
    if denial.get("timed_out"):
        return f"Denied at {where}: nobody decided before its timeout."
    who = denial.get("by") or "someone"
    reason = str(denial.get("reason") or "").strip()
    if not reason:
        return f"Denied by {who} at {where} (no reason given)."
    return f"Denied by {who} at {where}, reason: {reason}"


def _step_name(definition: Definition, step_id: str | None) -> str:
    step = definition.steps.get(step_id or "")
    return f"‘{(step.name if step else '') or step_id}’"
