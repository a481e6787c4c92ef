from dataclasses import dataclass

import pytest

from tests.engine.builders import KINDS
from vectorbea.engine import (
    ERROR_CLASS_POLICY,
    ConcurrencyConflict,
    ErrorClass,
    Event,
    InvalidWorkflow,
    StepError,
    UnknownEvent,
    VectorbeaError,
    class_policy,
    event_to_payload,
    validate_definition,
)


def test_every_error_class_has_a_policy() -> None:
    assert set(ERROR_CLASS_POLICY) == set(ErrorClass)


def test_only_failures_that_may_pass_on_a_later_try_are_retryable() -> None:
    retryable = {error for error, policy in ERROR_CLASS_POLICY.items() if policy.retryable}

    assert retryable == {
        ErrorClass.TRANSIENT,
        ErrorClass.RATE_LIMITED,
        ErrorClass.WORKER_LOST,
        ErrorClass.INVALID_OUTPUT,  # retried as a correction, with what was wrong
    }


def test_an_error_class_this_code_does_not_know_is_not_retried() -> None:
    assert not class_policy("from_the_future").retryable


def test_a_step_error_carries_its_class_message_and_retry_after() -> None:
    error = StepError(ErrorClass.RATE_LIMITED, "429 Too Many Requests", retry_after_seconds=20)

    assert (error.error_class, error.message, error.retry_after_seconds) == (
        "rate_limited",
        "429 Too Many Requests",
        20,
    )
    assert isinstance(error, VectorbeaError)
    assert str(error) == "429 Too Many Requests"


def test_a_concurrency_conflict_names_the_run_and_position() -> None:
    conflict = ConcurrencyConflict("run-1", 7)

    assert (conflict.run_id, conflict.expected_seq) == ("run-1", 7)
    assert "run-1" in str(conflict)


def test_invalid_workflow_carries_its_issues() -> None:
    issues = validate_definition({"steps": []}, KINDS)

    error = InvalidWorkflow(issues)

    assert error.issues == tuple(issues)
    assert "no steps" in str(error)


def test_an_unregistered_event_cannot_be_stored() -> None:
    @dataclass(frozen=True)
    class Unregistered(Event):
        note: str

    with pytest.raises(UnknownEvent):
        event_to_payload(Unregistered("x"))
