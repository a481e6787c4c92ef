"""Errors raised by the engine, and the one table of step error classes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any
from uuid import UUID

if TYPE_CHECKING:
    from vectorbea.engine.graph import Issue


class VectorbeaError(Exception):
    """Base class for every error Vectorbea raises on purpose."""


class ConcurrencyConflict(VectorbeaError):
    """Another writer appended to the run first; re-read and decide again."""

    def __init__(self, run_id: UUID | str, expected_seq: int) -> None:
        super().__init__(f"Run {run_id} moved past seq {expected_seq}; re-read and retry.")
        self.run_id = run_id
        self.expected_seq = expected_seq


class NondeterministicRun(VectorbeaError):
    """The log disagrees with what the workflow would do at that position."""


class UnknownEvent(VectorbeaError):
    """An event type or schema version this code does not know."""


class InvalidEventPayload(UnknownEvent):
    """A stored payload that does not fit its event type, even after upcasting."""


class OutOfOrderEvent(VectorbeaError):
    """An event was folded with a seq not after the state's last_seq."""


class IncompatibleCheckpoint(VectorbeaError):
    """A checkpoint written in a shape this code cannot read; fold from the log instead."""


class InvalidWorkflow(VectorbeaError):
    """A workflow definition failed validation."""

    def __init__(self, issues: Sequence[Issue]) -> None:
        self.issues = tuple(issues)
        summary = "; ".join(issue.message for issue in self.issues[:3])
        more = f" (and {len(self.issues) - 3} more)" if len(self.issues) > 3 else ""
        super().__init__(f"The workflow is not valid: {summary}{more}")


class LeaseLost(VectorbeaError):
    """A worker's lease on a step attempt was taken over by a newer attempt."""


class ErrorClass(StrEnum):
    TRANSIENT = "transient"
    RATE_LIMITED = "rate_limited"
    INVALID_OUTPUT = "invalid_output"
    PERMANENT = "permanent"
    BUDGET_EXCEEDED = "budget_exceeded"
    CANCELLED = "cancelled"
    WORKER_LOST = "worker_lost"
    # An agent step that stopped itself: it repeated one tool call (agent_loop), or used
    # up its turns or tool calls (agent_limit).
    AGENT_LOOP = "agent_loop"
    AGENT_LIMIT = "agent_limit"


# What happens after a failed attempt, by error class (a step's `on_error` overrides it):
RETRY = "retry"  # try again after a backoff (or the provider's Retry-After)
CORRECT = "correct"  # ask the model again with what was wrong (LLM steps), then as RETRY
NEEDS_ATTENTION = "needs_attention"  # stop and hand the run to a person
FAIL = "fail"  # fail the run
ERROR_ACTIONS = (RETRY, CORRECT, NEEDS_ATTENTION, FAIL)
# What a step does once its retries (or corrections) are used up; its `on_failure` overrides.
EXHAUSTED_ACTIONS = (NEEDS_ATTENTION, FAIL)


@dataclass(frozen=True)
class ClassPolicy:
    action: str
    label: str

    @property
    def retryable(self) -> bool:
        return self.action in (RETRY, CORRECT)


ERROR_CLASS_POLICY: dict[ErrorClass, ClassPolicy] = {
    ErrorClass.TRANSIENT: ClassPolicy(RETRY, "provider overloaded or temporary failure"),
    ErrorClass.RATE_LIMITED: ClassPolicy(RETRY, "rate limited by the provider"),
    ErrorClass.INVALID_OUTPUT: ClassPolicy(CORRECT, "the output did not match its expected shape"),
    ErrorClass.PERMANENT: ClassPolicy(
        NEEDS_ATTENTION, "permanent error such as bad configuration or a missing key"
    ),
    ErrorClass.BUDGET_EXCEEDED: ClassPolicy(NEEDS_ATTENTION, "the budget is spent"),
    ErrorClass.CANCELLED: ClassPolicy(FAIL, "the step was cancelled"),
    # Capped like any retry, so a step that kills its worker cannot loop forever.
    ErrorClass.WORKER_LOST: ClassPolicy(RETRY, "the worker running the step stopped responding"),
    ErrorClass.AGENT_LOOP: ClassPolicy(NEEDS_ATTENTION, "the agent repeated the same tool call"),
    ErrorClass.AGENT_LIMIT: ClassPolicy(
        NEEDS_ATTENTION, "the agent used up its turns or tool calls"
    ),
}


def class_policy(error_class: str) -> ClassPolicy:
    """The policy for a stored error class; an unknown class is treated as permanent."""
    try:
        return ERROR_CLASS_POLICY[ErrorClass(error_class)]
    except ValueError:
        return ClassPolicy(NEEDS_ATTENTION, f"unrecognised error ({error_class})")


class StepError(VectorbeaError):
    """What a step handler raises to report a failed attempt."""

    def __init__(
        self,
        error_class: ErrorClass,
        message: str,
        retry_after_seconds: float | None = None,
        usage: dict[str, Any] | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.error_class = ErrorClass(error_class)
        self.message = message
        self.retry_after_seconds = retry_after_seconds
        # What the attempt consumed before it failed; recorded in the StepFailed event.
        self.usage = usage
        # Facts about the failure the engine acts on: for invalid_output, the refused
        # "answer" and its "errors" (what a correction asks about); "then": what to do
        # instead of the class's default (e.g. "fail" when a budget's policy says so).
        self.detail = detail


class Deferred(VectorbeaError):
    """What a step raises when it must not run yet (a rate limit, a concurrency limit, a
    budget others hold): the attempt ends without counting as a failure and the step is
    tried again at ``until`` seconds from now."""

    def __init__(self, reason: str, message: str, wait_seconds: float) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.wait_seconds = max(0.05, float(wait_seconds))
