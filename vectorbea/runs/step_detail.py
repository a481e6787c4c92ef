"""One step of one run, in detail: its attempts, what each consumed, its output and error,
and the settings it ran with (the config rendered against the run, as the executor does).
An agent step's detail has its conversation too: each turn, its tool calls and their
results, the approvals they waited on, and what each turn used, read from the step's
transcript in the run's state (the engine's own fold of its events)."""

import json
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from vectorbea.engine import transcript as tr
from vectorbea.engine.attempts import Attempt, attempts
from vectorbea.engine.graph import Definition
from vectorbea.engine.state import RunState
from vectorbea.runs.timeline import read_events_of_types

MAX_ATTEMPTS_SHOWN = 200
MAX_JSON_CHARS = 20_000
STEP_EVENT_TYPES = (
    "StepStarted",
    "StepCompleted",
    "StepFailed",
    "StepDeferred",
    "StepInterrupted",
    "RetryScheduled",
    "CorrectionAttempted",
    "AttentionResolved",
    "CallCharged",
)


# A tool's result or arguments longer than this (as JSON) starts folded.
FOLD_CHARS = 600


@dataclass(frozen=True)
class ApprovalShown:
    decided: bool
    approved: bool
    by: str
    reason: str
    timed_out: bool


@dataclass(frozen=True)
class CallShown:
    id: str
    name: str
    arguments: str
    status: str  # completed, failed, running (started, no outcome), waiting (on a person), asked
    result: str
    result_folded: bool
    error_class: str
    message: str
    ran_with: str  # the arguments it ran with, when an approver edited them
    approval: ApprovalShown | None


@dataclass(frozen=True)
class TurnShown:
    number: int
    attempt: int
    text: str
    calls: list[CallShown]
    model: str
    input_tokens: int
    output_tokens: int
    cost_usd: float
    cost_estimated: bool
    corrections: list[dict[str, Any]]  # answers refused by the output schema after it


@dataclass(frozen=True)
class Conversation:
    turns: list[TurnShown]
    tool_calls: int
    input_tokens: int
    output_tokens: int
    cost_usd: float
    cost_estimated: bool


@dataclass(frozen=True)
class StepDetail:
    id: str
    name: str
    kind: str
    status: str
    attempt: int
    attempts: list[Attempt]
    usage: dict[str, Any]
    output: str
    error_class: str
    error_message: str
    settings: str
    settings_rendered: bool
    settings_problem: str  # why the settings are shown as written, when a render failed
    retry_at: str | None
    wait_until: str | None
    duration_seconds: float | None
    conversation: Conversation | None = None


def pretty(value: Any) -> str:
    text = json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)
    if len(text) > MAX_JSON_CHARS:
        return text[:MAX_JSON_CHARS] + f"\n… ({len(text) - MAX_JSON_CHARS} more characters)"
    return text


def attempts_of(run_id: UUID, step_id: str) -> list[Attempt]:
    events = read_events_of_types(run_id, STEP_EVENT_TYPES, step_id=step_id)
    return attempts(events, step_id)[-MAX_ATTEMPTS_SHOWN:]


def _with_charges(usage: dict[str, Any], charges: list[dict[str, Any]]) -> dict[str, Any]:
    """An attempt's usage with the calls charged to it apart from its outcome (a call
    whose answer was never read costs an estimate, and says so)."""
    usage = dict(usage)
    for charge in charges:
        usage["cost_usd"] = float(usage.get("cost_usd") or 0) + float(charge.get("cost_usd") or 0)
        usage["cost_estimated"] = bool(usage.get("cost_estimated") or charge.get("cost_estimated"))
    return usage


def step_detail(
    run_id: UUID, state: RunState, definition: Definition, step_id: str
) -> StepDetail | None:
    from vectorbea.steps.templating import TemplateProblem, effective_config, preview_step_config

    step_def = definition.steps.get(step_id)
    if step_def is None:
        return None
    step = state.step(step_id)
    settings: Any = effective_config(step_def, state)
    rendered = False
    problem = ""
    if step.status != "pending":
        # A preview: rendered within the preview's smaller limits, as this runs in the web
        # process for whoever opens the page.
        try:
            settings = preview_step_config(step_def, state)
            rendered = True
        except TemplateProblem as exc:
            problem = exc.message
        except (ValueError, TypeError):
            problem = "The settings could not be rendered."
    duration = None
    if step.started_at and step.finished_at:
        duration = (step.finished_at - step.started_at).total_seconds()
    return StepDetail(
        id=step_id,
        name=step_def.name or step_id,
        kind=step_def.kind,
        status=step.status,
        attempt=step.attempt,
        attempts=_with_turns(attempts_of(run_id, step_id), step.agent)
        if step.status != "pending"
        else [],
        usage=dict(step.usage or {}),
        output="" if step.output is None else pretty(step.output),
        error_class=step.error_class or "",
        error_message=step.error_message or "",
        settings=pretty(settings),
        settings_rendered=rendered,
        settings_problem=problem,
        retry_at=step.retry_at,
        wait_until=step.wait_until,
        duration_seconds=duration,
        conversation=None if step.agent is None else conversation(step.agent),
    )


def _with_turns(shown: list[Attempt], t: tr.Transcript | None) -> list[Attempt]:
    """An agent's attempts with what their turns used (an agent's outcome carries no usage
    of its own: each turn's is on its turn)."""
    for attempt in shown if t else ():
        used = [
            turn["usage"]
            for turn in t.get("turns") or ()
            if turn.get("attempt") == attempt.number and turn.get("usage")
        ]
        if used and not (attempt.usage.get("input_tokens") or attempt.usage.get("output_tokens")):
            attempt.usage = {
                **attempt.usage,
                "input_tokens": sum(int(_number(u.get("input_tokens"))) for u in used),
                "output_tokens": sum(int(_number(u.get("output_tokens"))) for u in used),
                "cost_usd": _number(attempt.usage.get("cost_usd"))
                + sum(_number(u.get("cost_usd")) for u in used),
                "cost_estimated": bool(attempt.usage.get("cost_estimated"))
                or any(u.get("cost_estimated") for u in used),
            }
    return shown


def _approval(t: tr.Transcript, call_id: str) -> ApprovalShown | None:
    asked = (t.get("approvals") or {}).get(call_id)
    if asked is None:
        return None
    decision = asked.get("decision")
    if decision is None:
        return ApprovalShown(False, False, "", "", False)
    return ApprovalShown(
        decided=True,
        approved=bool(decision.get("approved")),
        by=str(decision.get("by") or ""),
        reason=str(decision.get("reason") or ""),
        timed_out=bool(decision.get("timed_out")),
    )


def _call(t: tr.Transcript, call: Any) -> CallShown:
    call_id = str(call.get("id"))
    record = tr.call_record(t, call_id) or {}
    approval = _approval(t, call_id)
    status = str(record.get("status") or "")
    if status == tr.STARTED:
        status = "running"
    elif not status:
        status = "waiting" if approval is not None and not approval.decided else "asked"
    result = ""
    if status == tr.COMPLETED:
        value = record.get("result")
        result = value if isinstance(value, str) else pretty(value)
    ran_with = ""
    if "arguments" in record and record["arguments"] != call.get("arguments"):
        ran_with = pretty(record["arguments"])
    return CallShown(
        id=call_id,
        name=str(call.get("name") or ""),
        arguments=pretty(call.get("arguments")),
        status=status,
        result=result,
        result_folded=len(result) > FOLD_CHARS or result.count("\n") > 12,
        error_class=str(record.get("error_class") or ""),
        message=str(record.get("message") or ""),
        ran_with=ran_with,
        approval=approval,
    )


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def conversation(t: tr.Transcript) -> Conversation:
    """An agent step's transcript (StepState.agent) as the step detail shows it."""
    turns = []
    for turn in t.get("turns") or ():
        usage = turn.get("usage") or {}
        turns.append(
            TurnShown(
                number=int(turn.get("turn") or 0),
                attempt=int(turn.get("attempt") or 0),
                text=str(turn.get("text") or ""),
                calls=[_call(t, call) for call in turn.get("tool_calls") or ()],
                model=str(usage.get("model") or ""),
                input_tokens=int(_number(usage.get("input_tokens"))),
                output_tokens=int(_number(usage.get("output_tokens"))),
                cost_usd=_number(usage.get("cost_usd")),
                cost_estimated=bool(usage.get("cost_estimated")),
                corrections=[
                    c for c in t.get("corrections") or () if c.get("after_turn") == turn.get("turn")
                ],
            )
        )
    return Conversation(
        turns=turns,
        tool_calls=int(t.get("tool_calls") or 0),
        input_tokens=sum(turn.input_tokens for turn in turns),
        output_tokens=sum(turn.output_tokens for turn in turns),
        cost_usd=_number(t.get("cost_usd")),
        cost_estimated=any(turn.cost_estimated for turn in turns),
    )
