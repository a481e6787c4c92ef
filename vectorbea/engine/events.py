"""Event types: past-tense facts, versioned, with upcasters for old payloads.

The stored type name is the class name; never rename a class. To change a payload, bump its
``schema_version`` and add a static method ``upcast_v<N>_v<N+1>(data) -> data``.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, ClassVar

from vectorbea.engine.errors import InvalidEventPayload, UnknownEvent
from vectorbea.engine.waits import default_approvers, gate_key


@dataclass(frozen=True)
class Event:
    """Base class of every event. Subclasses are frozen dataclasses."""

    schema_version: ClassVar[int] = 1


@dataclass(frozen=True)
class RunStarted(Event):
    workflow_id: str
    version_id: str
    input: dict[str, Any]
    started_by: str | None = None
    # Runaway guards in force for the run, fixed when it starts:
    # {"max_steps": n, "max_attempts": n}; None: no guard (runs started before guards).
    limits: dict[str, Any] | None = None
    # The program that started the run for `started_by` (see runs.initiators):
    # "api:<token name>", "webhook:<endpoint id>" or "schedule:<schedule id>"; None: the
    # person themselves.
    via: str | None = None
    # The run this one re-runs (its id), when a person started it from that run's page
    # with its input; None: a run of its own.
    rerun_of: str | None = None
    schema_version: ClassVar[int] = 4

    @staticmethod
    def upcast_v1_v2(data: dict[str, Any]) -> dict[str, Any]:
        return {**data, "limits": None}

    @staticmethod
    def upcast_v2_v3(data: dict[str, Any]) -> dict[str, Any]:
        # v2 recorded no program: a token's runs had its actor ("api:<name>") as started_by.
        return {**data, "via": None}

    @staticmethod
    def upcast_v3_v4(data: dict[str, Any]) -> dict[str, Any]:
        # v3 recorded no origin: every run was a run of its own.
        return {**data, "rerun_of": None}


@dataclass(frozen=True)
class StepStarted(Event):
    step_id: str
    attempt: int  # 1-based; also the lease fencing token
    schema_version: ClassVar[int] = 1


@dataclass(frozen=True)
class StepCompleted(Event):
    step_id: str
    attempt: int
    output: Any
    ports: tuple[str, ...] | None = None  # ports a branch took; None: every outgoing edge
    # What the attempt consumed (model, tokens, cost_usd…), as the step kind reported it.
    usage: dict[str, Any] | None = None
    schema_version: ClassVar[int] = 3

    @staticmethod
    def upcast_v1_v2(data: dict[str, Any]) -> dict[str, Any]:
        # v1 had no attempt number and no ports.
        return {"attempt": 1, "ports": None, **data}

    @staticmethod
    def upcast_v2_v3(data: dict[str, Any]) -> dict[str, Any]:
        # v2 recorded no usage.
        return {**data, "usage": None}


@dataclass(frozen=True)
class StepFailed(Event):
    step_id: str
    attempt: int
    error_class: str
    message: str
    retry_after_seconds: float | None = None
    # What the failed attempt consumed before it failed (a paid LLM call that timed out…).
    usage: dict[str, Any] | None = None
    # See StepError.detail: the refused answer and its errors; "then" to override the
    # class's default consequence.
    detail: dict[str, Any] | None = None
    schema_version: ClassVar[int] = 4

    @staticmethod
    def upcast_v1_v2(data: dict[str, Any]) -> dict[str, Any]:
        # v1 stored one plain-string error; every v1 failure was retried as transient.
        rest = {key: value for key, value in data.items() if key != "error"}
        return {**rest, "error_class": "transient", "message": data["error"]}

    @staticmethod
    def upcast_v2_v3(data: dict[str, Any]) -> dict[str, Any]:
        # v2 recorded no usage.
        return {**data, "usage": None}

    @staticmethod
    def upcast_v3_v4(data: dict[str, Any]) -> dict[str, Any]:
        return {**data, "detail": None}


@dataclass(frozen=True)
class CorrectionAttempted(Event):
    """A step's output failed its schema or validator: the model is asked again, shown its
    previous answer and exactly what was wrong. Counts as a correction, not a retry."""

    step_id: str
    next_attempt: int
    correction: int  # 1-based, within the step's current round
    of: int  # the most corrections the step allows
    problem: str  # what was wrong, in plain language
    answer: str  # the refused answer, as the model gave it (clipped)
    errors: tuple[str, ...]  # the validation errors the model is shown


@dataclass(frozen=True)
class StepDeferred(Event):
    """The attempt did not run: a limit (a provider's rate limit, a budget other calls in
    flight hold) said not yet. The step waits until ``until`` and then makes the same
    attempt again: a deferral is a wait, neither a failure nor an attempt."""

    step_id: str
    attempt: int
    until: str  # ISO 8601, UTC
    reason: str  # "rate_limited", "budget" ("concurrency" in logs of older versions)
    message: str


@dataclass(frozen=True)
class RunQueued(Event):
    """The run waits for a free slot before it starts any work: its workspace (or its
    workflow) has as many runs going on at once as its limit allows. Nothing in the run
    starts until RunAdmitted; a run waiting here holds no slot and makes no attempt."""

    message: str  # why, in plain words


@dataclass(frozen=True)
class RunAdmitted(Event):
    """A slot is free (a run ended, or the limit was raised): the queued run goes on."""


@dataclass(frozen=True)
class StepInterrupted(Event):
    """A running attempt was abandoned by a person (the kill switch): its lease ends and
    its late result is refused. When the run resumes the step starts again; an
    interruption is not a failure."""

    step_id: str
    attempt: int
    actor: str
    reason: str


@dataclass(frozen=True)
class RunNeedsAttention(Event):
    """A step can go no further on its own (retries or corrections used up, a permanent
    error, a spent budget): the run stops starting steps until a person resolves it."""

    step_id: str
    error_class: str
    summary: str  # what was tried and why it stopped, in plain language


@dataclass(frozen=True)
class AttentionResolved(Event):
    """A person's answer to a step that needed attention.

    ``action``: "retry" (followed by a RetryScheduled; ``config`` replaces the step's
    settings for the new attempts, ``version_id`` moves the run to that workflow
    version), "supply_output" (``output`` becomes the step's output), "skip" (the step is
    passed over; its successors run) or "fail" (followed by a RunFailed)."""

    step_id: str
    action: str
    actor: str
    note: str = ""
    output: Any = None
    config: dict[str, Any] | None = None
    version_id: str | None = None


@dataclass(frozen=True)
class LoopRestarted(Event):
    """A step took a loop edge back to an earlier step: that step and everything after it
    start over (their earlier outputs stay in the log). ``iteration`` counts from 2."""

    source: str
    target: str
    iteration: int
    steps: tuple[str, ...]


@dataclass(frozen=True)
class BudgetWarning(Event):
    """Spending crossed a soft threshold (or reached a cap) of a budget."""

    scope: str  # "run", "day", "month"
    percent: int
    message: str


@dataclass(frozen=True)
class CallCharged(Event):
    """A paid call charged to its step apart from the attempt's own outcome, in the same
    transaction as the budget ledger's charge, so the run's cost holds what the ledger
    holds.

    Written when the outcome cannot carry the cost: the call was sent but its answer was
    never read (``reason`` "cancelled", "timed_out", "no_answer", "worker_lost"), so it
    costs what was reserved for it, its worst case (``usage["cost_estimated"]``); or its
    answer was read after the attempt had ended ("outcome_refused"), so the late outcome
    that carried the cost is refused. ``usage`` is added to the step's like an outcome's.
    """

    step_id: str
    attempt: int
    usage: dict[str, Any]
    reason: str


@dataclass(frozen=True)
class StepWaiting(Event):
    """A step the engine parked itself: no worker holds it and it has no lease."""

    step_id: str
    attempt: int
    until: str | None  # ISO 8601, UTC; None: until something else (a person) moves it
    reason: str  # "delay"


@dataclass(frozen=True)
class ApprovalRequested(Event):
    """An approval gate opened: the step waits for a person's decision (or its timeout).

    ``gate`` names this opening of the step (``<step_id>:<attempt>``); decisions name it
    too. Who may decide, how many must approve and what they fill in were rendered from
    the step's config when it opened and are kept here, so later edits of the workflow or
    the workspace's roles cannot change what this gate asked."""

    step_id: str
    attempt: int
    title: str
    instructions: str
    payload: Any  # what the approver is asked about, rendered from the step's config
    timeout_at: str | None  # ISO 8601, UTC; None: waits for as long as it takes
    gate: str = ""
    approvers: dict[str, Any] = field(default_factory=default_approvers)  # {roles, users}
    required: int = 1  # distinct approvals needed; any denial denies
    allow_self_approval: bool = False  # may the person who started the run decide it?
    form: list[dict[str, Any]] = field(default_factory=list)  # fields the approver fills in
    on_timeout: str | None = "deny"  # None: as the step's config says (v1 events)
    escalate: dict[str, Any] | None = None  # {approvers, timeout_seconds, on_timeout}
    schema_version: ClassVar[int] = 2

    def __post_init__(self) -> None:
        if not self.gate:
            object.__setattr__(self, "gate", gate_key(self.step_id, self.attempt))

    @staticmethod
    def upcast_v1_v2(data: dict[str, Any]) -> dict[str, Any]:
        # v1 gates were open to every owner, admin and approver, the run's initiator too,
        # and read on_timeout from the step's config.
        return {
            **data,
            "gate": gate_key(data["step_id"], data["attempt"]),
            "approvers": default_approvers(),
            "required": 1,
            "allow_self_approval": True,
            "form": [],
            "on_timeout": None,
            "escalate": None,
        }


@dataclass(frozen=True)
class ApprovalGranted(Event):
    step_id: str
    actor: str
    reason: str
    fields: dict[str, Any] = field(default_factory=dict)  # what the approver filled in
    gate: str = ""  # the opening decided; "" (v1): the step's open gate
    schema_version: ClassVar[int] = 2

    @staticmethod
    def upcast_v1_v2(data: dict[str, Any]) -> dict[str, Any]:
        return {**data, "gate": ""}


@dataclass(frozen=True)
class ApprovalDenied(Event):
    step_id: str
    actor: str
    reason: str
    fields: dict[str, Any] = field(default_factory=dict)
    gate: str = ""
    schema_version: ClassVar[int] = 2

    @staticmethod
    def upcast_v1_v2(data: dict[str, Any]) -> dict[str, Any]:
        return {**data, "fields": {}, "gate": ""}


@dataclass(frozen=True)
class ApprovalTimedOut(Event):
    """Nobody decided before the gate's timeout: ``outcome`` is "approved" or "denied"."""

    step_id: str
    outcome: str
    gate: str = ""
    schema_version: ClassVar[int] = 2

    @staticmethod
    def upcast_v1_v2(data: dict[str, Any]) -> dict[str, Any]:
        return {**data, "gate": ""}


@dataclass(frozen=True)
class ApprovalEscalated(Event):
    """The gate now waits for its escalation's approvers, until a new time: because nobody
    decided in time (no actor), or because an owner or admin escalated it early (`actor`)."""

    step_id: str
    gate: str
    approvers: dict[str, Any]
    timeout_at: str | None
    on_timeout: str  # what happens when the escalated gate times out: deny or approve
    level: int = 1
    actor: str | None = None
    reason: str = ""


@dataclass(frozen=True)
class ApprovalReassigned(Event):
    """An owner or admin gave a waiting gate to other approvers; its deadline, what happens
    at it, and the approvals already given stay as they were."""

    step_id: str
    gate: str
    approvers: dict[str, Any]
    actor: str
    reason: str = ""


@dataclass(frozen=True)
class RetryScheduled(Event):
    step_id: str
    next_attempt: int
    retry_at: str  # ISO 8601, UTC
    backoff_seconds: float
    reason: str
    actor: str | None = None  # set when a person asked for the retry


@dataclass(frozen=True)
class StepSkipped(Event):
    step_id: str
    reason: str


@dataclass(frozen=True)
class RunCompleted(Event):
    output: Any


@dataclass(frozen=True)
class RunFailed(Event):
    reason: str
    step_id: str | None = None


@dataclass(frozen=True)
class RunCancelled(Event):
    actor: str | None
    reason: str


@dataclass(frozen=True)
class RunPaused(Event):
    """An operator paused the run: steps already running finish, no new step starts.
    ``stopped``: the workspace's kill switch paused it (its running steps were
    interrupted, see StepInterrupted)."""

    actor: str
    reason: str
    stopped: bool = False
    schema_version: ClassVar[int] = 2

    @staticmethod
    def upcast_v1_v2(data: dict[str, Any]) -> dict[str, Any]:
        return {**data, "stopped": False}


@dataclass(frozen=True)
class RunResumed(Event):
    actor: str


@dataclass(frozen=True)
class OutputCorrected(Event):
    """Replaces a step's recorded output without editing history."""

    step_id: str
    output: Any
    corrects_seq: int
    actor: str
    reason: str


@dataclass(frozen=True)
class AgentTurnCompleted(Event):
    """An agent step's model answered one turn: its words and the tool calls it asked for
    (``message``: {"role": "assistant", "text", "tool_calls": [{"id", "name",
    "arguments"}]}), with what the turn cost. A recorded turn is never asked again."""

    step_id: str
    attempt: int
    turn: int  # 1-based, across the step's attempts
    message: dict[str, Any]
    usage: dict[str, Any] | None = None
    continues_attempt: bool = True  # the attempt goes on (the turn is no outcome)


@dataclass(frozen=True)
class ToolCallStarted(Event):
    """An agent's tool call is about to run (recorded before its side effect): a call
    started and never completed runs again with the same ``idempotency_key``."""

    step_id: str
    attempt: int
    call_id: str
    name: str
    arguments: Any
    idempotency_key: str


@dataclass(frozen=True)
class ToolCallCompleted(Event):
    """An agent's tool call returned ``result`` (capped; see engine.transcript)."""

    step_id: str
    attempt: int
    call_id: str
    name: str
    result: Any


@dataclass(frozen=True)
class ToolCallFailed(Event):
    """An agent's tool call did not give a result: the tool raised, its arguments were
    malformed, it is unknown, or a person denied it. The model is shown ``message``."""

    step_id: str
    attempt: int
    call_id: str
    name: str
    error_class: str
    message: str


EVENT_TYPES: dict[str, type[Event]] = {
    cls.__name__: cls
    for cls in (
        RunStarted,
        StepStarted,
        StepCompleted,
        StepFailed,
        RetryScheduled,
        StepSkipped,
        RunCompleted,
        RunFailed,
        RunCancelled,
        RunPaused,
        RunResumed,
        OutputCorrected,
        StepWaiting,
        ApprovalRequested,
        ApprovalGranted,
        ApprovalDenied,
        ApprovalTimedOut,
        ApprovalEscalated,
        ApprovalReassigned,
        CorrectionAttempted,
        StepDeferred,
        StepInterrupted,
        RunNeedsAttention,
        AttentionResolved,
        LoopRestarted,
        BudgetWarning,
        CallCharged,
        RunQueued,
        RunAdmitted,
        AgentTurnCompleted,
        ToolCallStarted,
        ToolCallCompleted,
        ToolCallFailed,
    )
}


@dataclass(frozen=True)
class Recorded:
    """An event as stored: its position in the run's log and the commit time of its row."""

    seq: int
    at: datetime
    event: Event


def event_to_payload(event: Event) -> dict[str, Any]:
    """The JSON-safe payload stored for an event (tuples become lists)."""
    if type(event).__name__ not in EVENT_TYPES:
        raise UnknownEvent(f"{type(event).__name__} is not a registered event type")
    return {field.name: _json_safe(getattr(event, field.name)) for field in fields(event)}


def event_from_payload(type_name: str, schema_version: int, payload: dict[str, Any]) -> Event:
    """Rebuild an event from storage, upcasting an old payload to the current version."""
    cls = EVENT_TYPES.get(type_name)
    if cls is None:
        raise UnknownEvent(f"Unknown event type {type_name!r}")
    if not isinstance(schema_version, int) or schema_version < 1:
        raise InvalidEventPayload(f"{type_name} has an invalid schema_version {schema_version!r}")
    if schema_version > cls.schema_version:
        raise UnknownEvent(
            f"{type_name} v{schema_version} is newer than this code knows "
            f"(v{cls.schema_version}); deploy the newer code to read it"
        )
    if not isinstance(payload, Mapping):
        raise InvalidEventPayload(f"{type_name} payload must be an object")
    try:
        data = _upcast(cls, schema_version, dict(payload))
        return cls(**_with_tuples(cls, data))
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidEventPayload(
            f"{type_name} v{schema_version} payload is invalid: {exc}"
        ) from exc


def _upcast(cls: type[Event], version: int, data: dict[str, Any]) -> dict[str, Any]:
    for from_version in range(version, cls.schema_version):
        upcaster = getattr(cls, f"upcast_v{from_version}_v{from_version + 1}")
        data = upcaster(data)
    return data


def _with_tuples(cls: type[Event], data: dict[str, Any]) -> dict[str, Any]:
    tuple_fields = _TUPLE_FIELDS[cls]
    return {
        key: tuple(value) if key in tuple_fields and isinstance(value, list) else value
        for key, value in data.items()
    }


def _json_safe(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, list | tuple):
        return [_json_safe(item) for item in value]
    if isinstance(value, Mapping):
        if not all(isinstance(key, str) for key in value):
            raise TypeError("Event payload objects must have string keys")
        return {key: _json_safe(item) for key, item in value.items()}
    raise TypeError(f"{type(value).__name__} is not JSON-safe in an event payload")


def _is_tuple_hint(hint: Any) -> bool:
    if typing.get_origin(hint) is tuple:
        return True
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return any(_is_tuple_hint(arg) for arg in typing.get_args(hint))
    return False


def _tuple_field_names(cls: type[Event]) -> frozenset[str]:
    hints = typing.get_type_hints(cls)
    return frozenset(field.name for field in fields(cls) if _is_tuple_hint(hints[field.name]))


_TUPLE_FIELDS: dict[type[Event], frozenset[str]] = {
    cls: _tuple_field_names(cls) for cls in EVENT_TYPES.values()
}
