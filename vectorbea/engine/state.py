"""Run state: what folding a run's log yields, and its JSON form for checkpoints."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from functools import cache
from typing import Any

from vectorbea.engine.errors import IncompatibleCheckpoint

CHECKPOINT_FORMAT = 1


@cache
def _field_names(cls: type) -> frozenset[str]:
    return frozenset(f.name for f in fields(cls))


def evolve[S: (StepState, RunState)](state: S, **changes: Any) -> S:
    """`dataclasses.replace` for the fold's states, several times faster: it copies the
    instance's attributes instead of calling __init__ (these dataclasses have no
    __post_init__ to skip). A fold runs it a dozen times per step boundary."""
    if not changes.keys() <= _field_names(type(state)):
        unknown = ", ".join(sorted(changes.keys() - _field_names(type(state))))
        raise TypeError(f"{type(state).__name__} has no field(s) {unknown}")
    new = object.__new__(type(state))
    new.__dict__.update(state.__dict__, **changes)
    return new


STEP_PENDING = "pending"
STEP_RUNNING = "running"
STEP_RETRY_SCHEDULED = "retry_scheduled"
STEP_WAITING = "waiting"  # parked by the engine (a delay, an approval gate): no worker, no lease
STEP_COMPLETED = "completed"
STEP_FAILED = "failed"  # StepFailed recorded, consequence not yet decided
STEP_SKIPPED = "skipped"
STEP_GAVE_UP = "gave_up"
STEP_STATUSES = (
    STEP_PENDING,
    STEP_RUNNING,
    STEP_RETRY_SCHEDULED,
    STEP_WAITING,
    STEP_COMPLETED,
    STEP_FAILED,
    STEP_SKIPPED,
    STEP_GAVE_UP,
)

RUN_NEW = "new"
RUN_RUNNING = "running"
RUN_COMPLETED = "completed"
RUN_FAILED = "failed"
RUN_CANCELLED = "cancelled"
# An approval gate was denied and the workflow has no "denied" path: the run ended there.
# Its own outcome, not a failure: nothing went wrong and there is nothing to retry.
RUN_DENIED = "denied"
TERMINAL_RUN_STATUSES = frozenset({RUN_COMPLETED, RUN_FAILED, RUN_CANCELLED, RUN_DENIED})

# What a step that will never finish shows once its run has ended: "cancelled" when it
# was under way (running, waiting, or due to retry), "not_run" when it never started.
STEP_CANCELLED = "cancelled"
STEP_NOT_RUN = "not_run"
UNDER_WAY_STEP_STATUSES = frozenset({STEP_RUNNING, STEP_WAITING, STEP_RETRY_SCHEDULED})
ENDED_STEP_STATUSES = frozenset({STEP_COMPLETED, STEP_SKIPPED, STEP_GAVE_UP, STEP_FAILED})


def ended_step_status(step_status: str, run_status: str) -> str:
    """The status a step shows in a run whose status is `run_status`: its own while the run
    goes on, and once the run has ended, "cancelled" or "not_run" for a step that will now
    never finish (nothing waits for it, counts down for it or will start it)."""
    if run_status not in TERMINAL_RUN_STATUSES or step_status in ENDED_STEP_STATUSES:
        return step_status
    return STEP_CANCELLED if step_status in UNDER_WAY_STEP_STATUSES else STEP_NOT_RUN


@dataclass(frozen=True)
class StepState:
    status: str
    attempt: int = 0
    output: Any = None
    ports: tuple[str, ...] | None = None
    error_class: str | None = None
    error_message: str | None = None
    retry_after_seconds: float | None = None
    retry_at: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    # A waiting step: until when (ISO, UTC; a delay's end or an approval's timeout) and why.
    wait_until: str | None = None
    wait_reason: str | None = None
    # An approval gate's decision: {"approved", "by", "reason", "fields", "timed_out", "at"}.
    decision: Mapping[str, Any] | None = None
    # What every attempt so far consumed, summed: {"input_tokens", "output_tokens",
    # "cost_usd"} (whichever the attempts reported) and the last "model".
    usage: Mapping[str, Any] | None = None
    # An approval step's open (or last) gate: {"key", "attempt", "title", "instructions",
    # "payload", "approvers", "required", "allow_self_approval", "form", "on_timeout",
    # "escalate", "level", "grants": [{"by", "reason", "fields", "at"}]}.
    gate: Mapping[str, Any] | None = None
    # Failed attempts and corrections in the step's current round (a person's retry starts
    # a new round), and failed attempts ever (what the runaway guard counts).
    failures: int = 0
    corrections: int = 0
    failures_total: int = 0
    # The last failure's detail (StepFailed.detail): a refused answer and its errors.
    failure_detail: Mapping[str, Any] | None = None
    # What the next attempt is asked to correct: {"answer", "errors", "problem"}.
    correction: Mapping[str, Any] | None = None
    # Settings a person gave the step when retrying it; replaces the definition's config.
    config: Mapping[str, Any] | None = None
    # How a person resolved the step: "supplied" (they gave its output) or "skipped".
    resolution: str | None = None
    # An agent step's conversation so far (engine.transcript), across its attempts.
    agent: Mapping[str, Any] | None = None


PENDING_STEP = StepState(status=STEP_PENDING)


@dataclass(frozen=True)
class RunState:
    status: str
    workflow_id: str | None = None
    version_id: str | None = None
    input: dict[str, Any] | None = None
    steps: Mapping[str, StepState] = field(default_factory=dict)
    last_seq: int = 0
    started_at: datetime | None = None
    finished_at: datetime | None = None
    output: Any = None
    error: str | None = None
    failed_step_id: str | None = None
    started_by: str | None = None
    paused: bool = False
    stopped: bool = False  # paused by the workspace's kill switch
    # Waiting for a free slot under the workspace's concurrency limits (why, in words):
    # nothing starts until it is admitted.
    queued: str | None = None
    # Steps that need a person: {step_id: {"error_class", "summary", "at"}}. While any
    # step needs attention no new step starts.
    attention: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    # Runaway guards fixed at the start: {"max_steps", "max_attempts"}; None: none.
    limits: Mapping[str, Any] | None = None
    steps_started: int = 0  # step attempts started, all steps, loops included
    loops: Mapping[str, int] = field(default_factory=dict)  # "source>target": iteration
    rerun_of: str | None = None  # the run this one re-runs (RunStarted.rerun_of)

    @classmethod
    def initial(cls) -> RunState:
        return cls(status=RUN_NEW)

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_RUN_STATUSES

    @property
    def denial(self) -> Mapping[str, Any] | None:
        """For a denied run, the gate's decision that ended it ({"step_id", "by", "reason",
        "timed_out", "at", ...}); None otherwise."""
        if self.status != RUN_DENIED or self.failed_step_id is None:
            return None
        decision = self.step(self.failed_step_id).decision or {}
        return {**decision, "step_id": self.failed_step_id}

    @property
    def attempts_total(self) -> int:
        return sum(step.attempt for step in self.steps.values())

    @property
    def cost_usd(self) -> float:
        return sum(float((step.usage or {}).get("cost_usd") or 0) for step in self.steps.values())

    def step(self, step_id: str) -> StepState:
        """The step's state; a step the log has not mentioned yet is pending."""
        return self.steps.get(step_id, PENDING_STEP)

    def running_steps(self) -> tuple[str, ...]:
        return self.steps_with_status(STEP_RUNNING)

    def steps_with_status(self, status: str) -> tuple[str, ...]:
        return tuple(sorted(key for key, step in self.steps.items() if step.status == status))


USAGE_TOTALS = ("input_tokens", "output_tokens", "cost_usd")


def add_usage(
    total: Mapping[str, Any] | None, usage: Mapping[str, Any] | None
) -> Mapping[str, Any] | None:
    """A step's usage after one more attempt reported `usage` (None: it reported none)."""
    if not usage:
        return total
    summed = dict(total or {})
    for key in USAGE_TOTALS:
        value = usage.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            summed[key] = summed.get(key, 0) + value
    if isinstance(usage.get("model"), str):
        summed["model"] = usage["model"]
    return summed


def state_to_json(state: RunState) -> dict[str, Any]:
    """The checkpoint form of a state; ``state_from_json`` reverses it exactly."""
    return {
        "format": CHECKPOINT_FORMAT,
        "status": state.status,
        "workflow_id": state.workflow_id,
        "version_id": state.version_id,
        "input": state.input,
        "steps": {key: _step_to_json(step) for key, step in state.steps.items()},
        "last_seq": state.last_seq,
        "started_at": _datetime_to_json(state.started_at),
        "finished_at": _datetime_to_json(state.finished_at),
        "output": state.output,
        "error": state.error,
        "failed_step_id": state.failed_step_id,
        "started_by": state.started_by,
        "paused": state.paused,
        "stopped": state.stopped,
        "queued": state.queued,
        "attention": {key: dict(value) for key, value in state.attention.items()},
        "limits": None if state.limits is None else dict(state.limits),
        "steps_started": state.steps_started,
        "loops": dict(state.loops),
        "rerun_of": state.rerun_of,
    }


def state_from_json(data: Mapping[str, Any]) -> RunState:
    if not isinstance(data, Mapping) or data.get("format") != CHECKPOINT_FORMAT:
        raise IncompatibleCheckpoint("Checkpoint format is not one this code can read")
    try:
        return _state_from_json(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise IncompatibleCheckpoint(f"Checkpoint is malformed: {exc}") from exc


def _state_from_json(data: Mapping[str, Any]) -> RunState:
    return RunState(
        status=data["status"],
        workflow_id=data["workflow_id"],
        version_id=data["version_id"],
        input=data["input"],
        steps={key: _step_from_json(step) for key, step in data["steps"].items()},
        last_seq=data["last_seq"],
        started_at=_datetime_from_json(data["started_at"]),
        finished_at=_datetime_from_json(data["finished_at"]),
        output=data["output"],
        error=data["error"],
        failed_step_id=data["failed_step_id"],
        started_by=data["started_by"],
        # Absent from checkpoints written before these existed.
        paused=data.get("paused", False),
        stopped=data.get("stopped", False),
        queued=data.get("queued"),
        attention=data.get("attention") or {},
        limits=data.get("limits"),
        steps_started=data.get("steps_started", 0),
        loops=data.get("loops") or {},
        rerun_of=data.get("rerun_of"),
    )


def _step_to_json(step: StepState) -> dict[str, Any]:
    return {
        "status": step.status,
        "attempt": step.attempt,
        "output": step.output,
        "ports": None if step.ports is None else list(step.ports),
        "error_class": step.error_class,
        "error_message": step.error_message,
        "retry_after_seconds": step.retry_after_seconds,
        "retry_at": step.retry_at,
        "started_at": _datetime_to_json(step.started_at),
        "finished_at": _datetime_to_json(step.finished_at),
        "wait_until": step.wait_until,
        "wait_reason": step.wait_reason,
        "decision": None if step.decision is None else dict(step.decision),
        "usage": None if step.usage is None else dict(step.usage),
        "gate": None if step.gate is None else dict(step.gate),
        "failures": step.failures,
        "corrections": step.corrections,
        "failures_total": step.failures_total,
        "failure_detail": None if step.failure_detail is None else dict(step.failure_detail),
        "correction": None if step.correction is None else dict(step.correction),
        "config": None if step.config is None else dict(step.config),
        "resolution": step.resolution,
        "agent": step.agent,
    }


def _step_from_json(data: Mapping[str, Any]) -> StepState:
    return StepState(
        status=data["status"],
        attempt=data["attempt"],
        output=data["output"],
        ports=None if data["ports"] is None else tuple(data["ports"]),
        error_class=data["error_class"],
        error_message=data["error_message"],
        retry_after_seconds=data["retry_after_seconds"],
        retry_at=data["retry_at"],
        started_at=_datetime_from_json(data["started_at"]),
        finished_at=_datetime_from_json(data["finished_at"]),
        # Absent from checkpoints written before steps could wait.
        wait_until=data.get("wait_until"),
        wait_reason=data.get("wait_reason"),
        decision=data.get("decision"),
        usage=data.get("usage"),  # absent from checkpoints written before usage was kept
        gate=data.get("gate"),  # absent from checkpoints written before gates kept their rules
        failures=data.get("failures", 0),
        corrections=data.get("corrections", 0),
        failures_total=data.get("failures_total", 0),
        failure_detail=data.get("failure_detail"),
        correction=data.get("correction"),
        config=data.get("config"),
        resolution=data.get("resolution"),
        agent=data.get("agent"),
    )


def _datetime_to_json(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _datetime_from_json(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)
