from datetime import datetime, timedelta
from typing import Any

import pytest

from tests.engine.builders import T0, definition, event_types, started, state_after, step
from vectorbea.engine import (
    Definition,
    Event,
    OutputCorrected,
    Recorded,
    RetryScheduled,
    RunCancelled,
    RunCompleted,
    RunFailed,
    RunNeedsAttention,
    RunState,
    StepCompleted,
    StepFailed,
    StepSkipped,
    StepStarted,
    apply,
    decide,
    fold,
    next_wake_at,
)

NOW = T0 + timedelta(minutes=5)
LINEAR = definition(["a", "b", "c"], [("a", "b"), ("b", "c")])
DIAMOND = definition(["a", "b", "c", "d"], [("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")])
BRANCH = definition(
    [step("route", "branch"), "yes_path", "no_path", "no_more", "join"],
    [
        ("route", "yes_path", "yes"),
        ("route", "no_path", "no"),
        ("no_path", "no_more"),
        ("yes_path", "join"),
        ("no_more", "join"),
    ],
)


def retrying(maximum_attempts: int = 3, **retry: Any) -> Definition:
    policy = {
        "maximum_attempts": maximum_attempts,
        "initial_interval_seconds": 2,
        "backoff_coefficient": 2,
        "maximum_interval_seconds": 10,
        "jitter": 0,
        **retry,
    }
    return definition(
        [step("fetch", name="Fetch news", retry=policy), "summarise"], [("fetch", "summarise")]
    )


def failed_on(attempt: int, error_class: str, message: str = "boom", **extra: Any) -> RunState:
    """fetch failed on ``attempt``, after the earlier attempts failed transiently."""
    events: list[Event] = [StepStarted("fetch", 1)]
    for earlier in range(1, attempt):
        events += [
            StepFailed("fetch", earlier, "transient", "timeout"),
            RetryScheduled("fetch", earlier + 1, T0.isoformat(), 1.0, "transient"),
            StepStarted("fetch", earlier + 1),
        ]
    events.append(StepFailed("fetch", attempt, error_class, message, **extra))
    return state_after(*events)


def then(state: RunState, *events: Event) -> RunState:
    """The state after appending ``events`` (as decide's callers would)."""
    for event in events:
        state = apply(state, Recorded(state.last_seq + 1, NOW, event))
    return state


def completed(
    step_id: str, output: Any = None, ports: tuple[str, ...] | None = None
) -> list[Event]:
    return [StepStarted(step_id, 1), StepCompleted(step_id, 1, output, ports)]


# --- runs that cannot move -------------------------------------------------------------------


def test_a_new_run_has_nothing_to_decide() -> None:
    assert decide(RunState.initial(), LINEAR, NOW) == []


@pytest.mark.parametrize(
    "last", [RunCompleted({}), RunFailed("x"), RunCancelled("bob", "kill switch")]
)
def test_a_finished_run_has_nothing_to_decide(last: Event) -> None:
    assert decide(state_after(last), LINEAR, NOW) == []


def test_it_needs_an_aware_now() -> None:
    with pytest.raises(ValueError, match="aware"):
        decide(state_after(), LINEAR, datetime(2025, 1, 1))


# --- linear, parallel, branch ------------------------------------------------------------------


def test_it_starts_the_entry_step_of_a_new_run() -> None:
    assert decide(state_after(), LINEAR, NOW) == [StepStarted("a", 1)]


def test_it_starts_the_next_step_when_the_previous_one_completes() -> None:
    assert decide(state_after(*completed("a")), LINEAR, NOW) == [StepStarted("b", 1)]


def test_it_waits_while_a_step_is_running() -> None:
    assert decide(state_after(StepStarted("a", 1)), LINEAR, NOW) == []


def test_it_completes_the_run_with_the_outputs_of_its_sink_steps() -> None:
    state = state_after(*completed("a", 1), *completed("b", 2), *completed("c", {"done": True}))

    assert decide(state, LINEAR, NOW) == [RunCompleted(output={"c": {"done": True}})]


def test_it_starts_every_entry_step_of_a_parallel_workflow_together() -> None:
    parallel = definition(["x", "y", "z"], [("x", "z"), ("y", "z")])

    assert decide(state_after(), parallel, NOW) == [StepStarted("x", 1), StepStarted("y", 1)]


def test_it_fans_out_to_every_successor_in_topological_order() -> None:
    assert decide(state_after(*completed("a")), DIAMOND, NOW) == [
        StepStarted("b", 1),
        StepStarted("c", 1),
    ]


def test_a_join_waits_for_all_of_its_inputs() -> None:
    state = state_after(*completed("a"), *completed("b"), StepStarted("c", 1))

    assert decide(state, DIAMOND, NOW) == []
    assert decide(then(state, StepCompleted("c", 1, None)), DIAMOND, NOW) == [StepStarted("d", 1)]


def test_it_skips_the_branch_not_taken_and_everything_only_it_leads_to() -> None:
    state = state_after(*completed("route", "yes", ports=("yes",)))

    assert decide(state, BRANCH, NOW) == [
        StepStarted("yes_path", 1),
        StepSkipped("no_path", "branch not taken"),
        StepSkipped("no_more", "branch not taken"),
    ]


def test_a_join_after_a_branch_runs_with_one_taken_input() -> None:
    state = state_after(*completed("route", "yes", ports=("yes",)))
    state = then(state, *decide(state, BRANCH, NOW), StepCompleted("yes_path", 1, "Y"))

    assert decide(state, BRANCH, NOW) == [StepStarted("join", 1)]


def test_a_branch_that_takes_no_port_skips_everything_after_it_and_completes() -> None:
    state = state_after(*completed("route", None, ports=()))

    events = decide(state, BRANCH, NOW)

    assert events == [
        StepSkipped("yes_path", "branch not taken"),
        StepSkipped("no_path", "branch not taken"),
        StepSkipped("no_more", "branch not taken"),
        StepSkipped("join", "branch not taken"),
        RunCompleted(output={}),
    ]


def test_a_branch_with_ports_none_takes_every_outgoing_edge() -> None:
    state = state_after(*completed("route", None, ports=None))

    assert decide(state, BRANCH, NOW) == [StepStarted("yes_path", 1), StepStarted("no_path", 1)]


def test_the_run_output_leaves_out_skipped_sinks() -> None:
    two_sinks = definition(
        [step("route", "branch"), "left", "right"],
        [("route", "left", "yes"), ("route", "right", "no")],
    )
    state = state_after(*completed("route", ports=("yes",)), *completed("left", "L"))
    state = then(state, StepSkipped("right", "branch not taken"))

    assert decide(state, two_sinks, NOW) == [RunCompleted(output={"left": "L"})]


def test_deciding_twice_without_new_facts_decides_nothing_more() -> None:
    state = state_after(*completed("route", "yes", ports=("yes",)))

    assert decide(then(state, *decide(state, BRANCH, NOW)), BRANCH, NOW) == []


def test_it_never_starts_a_completed_step_again() -> None:
    state = state_after(*completed("a"), StepStarted("b", 1))

    assert decide(state, LINEAR, NOW) == []


# --- failures, retries and backoff ----------------------------------------------------------


def test_it_retries_a_transient_failure_with_backoff() -> None:
    events = decide(failed_on(1, "transient"), retrying(), NOW)

    assert events == [
        RetryScheduled(
            "fetch",
            next_attempt=2,
            retry_at=(NOW + timedelta(seconds=2)).isoformat(),
            backoff_seconds=2.0,
            reason="transient",
        )
    ]


def test_the_backoff_grows_with_each_attempt() -> None:
    (event,) = decide(failed_on(3, "transient"), retrying(maximum_attempts=5), NOW)

    assert isinstance(event, RetryScheduled)
    assert (event.next_attempt, event.backoff_seconds) == (4, 8.0)


def test_it_starts_the_retry_only_once_it_is_due() -> None:
    definition_ = retrying()
    state = failed_on(1, "transient")
    state = then(state, *decide(state, definition_, NOW))
    due = NOW + timedelta(seconds=2)

    assert decide(state, definition_, due - timedelta(milliseconds=1)) == []
    assert next_wake_at(state, definition_, NOW) == due
    assert decide(state, definition_, due) == [StepStarted("fetch", 2)]


def test_retry_times_are_written_in_utc() -> None:
    from zoneinfo import ZoneInfo

    paris_now = NOW.astimezone(ZoneInfo("Europe/Paris"))
    (event,) = decide(failed_on(1, "transient"), retrying(), paris_now)

    assert isinstance(event, RetryScheduled)
    assert event.retry_at == (NOW + timedelta(seconds=2)).isoformat()
    assert event.retry_at.endswith("+00:00")


def test_jitter_spreads_retries_but_is_the_same_every_time_for_one_run() -> None:
    jittery = retrying(jitter=0.5)
    (first,) = decide(failed_on(1, "transient"), jittery, NOW)
    (again,) = decide(failed_on(1, "transient"), jittery, NOW)

    assert first == again
    assert isinstance(first, RetryScheduled)
    assert 1.0 <= first.backoff_seconds <= 3.0


def test_a_step_that_used_up_its_retries_needs_attention() -> None:
    events = decide(failed_on(3, "transient", "upstream timed out"), retrying(), NOW)

    assert events == [
        RunNeedsAttention(
            step_id="fetch",
            error_class="transient",
            summary=(
                "Step 'Fetch news' gave up after 3 attempts "
                "(provider overloaded or temporary failure): upstream timed out"
            ),
        )
    ]


def test_a_run_needing_attention_is_not_finished_and_starts_nothing() -> None:
    state = failed_on(3, "transient")
    state = then(state, *decide(state, retrying(), NOW))

    assert state.status == "running" and not state.is_terminal
    assert set(state.attention) == {"fetch"}
    assert state.steps["fetch"].status == "gave_up"
    assert decide(state, retrying(), NOW) == []
    assert next_wake_at(state, retrying(), NOW) is None


def test_a_step_set_to_fail_fails_the_run_when_retries_are_used_up() -> None:
    failing = definition(
        [step("fetch", name="Fetch news", retry={"maximum_attempts": 3}, on_failure="fail")]
    )
    state = failed_on(3, "transient", "upstream timed out")
    state = then(state, *decide(state, failing, NOW))

    assert state.status == "failed"
    assert state.failed_step_id == "fetch"
    assert state.steps["fetch"].status == "gave_up"
    assert state.error == (
        "Step 'Fetch news' gave up after 3 attempts "
        "(provider overloaded or temporary failure): upstream timed out"
    )


def test_rate_limited_failures_wait_as_long_as_the_provider_asks() -> None:
    (event,) = decide(failed_on(1, "rate_limited", retry_after_seconds=45.0), retrying(), NOW)

    assert isinstance(event, RetryScheduled)
    assert (event.backoff_seconds, event.reason) == (45.0, "rate_limited")
    assert event.retry_at == (NOW + timedelta(seconds=45)).isoformat()


def test_rate_limited_without_retry_after_uses_the_backoff() -> None:
    (event,) = decide(failed_on(1, "rate_limited"), retrying(), NOW)

    assert isinstance(event, RetryScheduled)
    assert event.backoff_seconds == 2.0


def test_a_retry_after_longer_than_an_hour_is_capped() -> None:
    state = failed_on(1, "rate_limited", retry_after_seconds=10 * 3600.0)
    (event,) = decide(state, retrying(), NOW)

    assert isinstance(event, RetryScheduled)
    assert event.backoff_seconds == 3600.0


@pytest.mark.parametrize(
    ("error_class", "label"),
    [
        ("permanent", "permanent error such as bad configuration or a missing key"),
        ("invalid_output", "the output did not match its expected shape"),
        ("budget_exceeded", "the budget is spent"),
        ("something_new", "unrecognised error (something_new)"),
    ],
)
def test_a_failure_retrying_cannot_fix_goes_straight_to_a_person(
    error_class: str, label: str
) -> None:
    events = decide(failed_on(1, error_class, "401 bad key"), retrying(), NOW)

    summary = f"Step 'Fetch news' failed after 1 attempt and will not be retried ({label}): "
    assert events == [RunNeedsAttention("fetch", error_class, summary + "401 bad key")]


def test_a_cancelled_step_fails_the_run() -> None:
    events = decide(failed_on(1, "cancelled", "stop"), retrying(), NOW)

    assert event_types(events) == ["RunFailed"]


def test_a_step_can_turn_a_class_into_a_retry_or_a_failure() -> None:
    overriding = definition(
        [
            {
                **step("fetch", name="Fetch news", retry={"maximum_attempts": 3}),
                "on_error": {"permanent": "retry", "transient": "fail"},
            }
        ]
    )

    assert event_types(decide(failed_on(1, "permanent"), overriding, NOW)) == ["RetryScheduled"]
    assert event_types(decide(failed_on(1, "transient"), overriding, NOW)) == ["RunFailed"]


def test_a_failure_can_carry_what_to_do_instead_of_its_class_default() -> None:
    state = state_after(
        StepStarted("fetch", 1),
        StepFailed("fetch", 1, "budget_exceeded", "spent", detail={"then": "fail"}),
    )

    assert event_types(decide(state, retrying(), NOW)) == ["RunFailed"]


def test_a_lost_worker_is_retried_but_only_up_to_the_maximum_attempts() -> None:
    assert event_types(decide(failed_on(2, "worker_lost"), retrying(), NOW)) == ["RetryScheduled"]
    assert event_types(decide(failed_on(3, "worker_lost"), retrying(), NOW)) == [
        "RunNeedsAttention"
    ]


def test_a_run_failure_is_the_only_consequence_decided() -> None:
    fan_out = definition(
        [step("a", retry={"maximum_attempts": 1}), "b", "c"], [("a", "b"), ("c", "b")]
    )
    state = state_after(
        StepStarted("a", 1),
        StepStarted("c", 1),
        StepCompleted("c", 1, None),
        StepFailed("a", 1, "transient", "x"),
    )

    assert event_types(decide(state, fan_out, NOW)) == ["RunNeedsAttention"]


def test_a_person_retrying_a_failed_step_restarts_it_through_the_same_rules() -> None:
    state = failed_on(3, "transient")
    state = then(state, *decide(state, retrying(), NOW))
    state = then(state, RetryScheduled("fetch", 4, NOW.isoformat(), 0.0, "manual", actor="alice"))

    assert decide(state, retrying(), NOW) == [StepStarted("fetch", 4)]


# --- corrections --------------------------------------------------------------------------------


def test_a_corrected_output_is_what_the_run_completes_with() -> None:
    state = state_after(
        *completed("a", 1),
        *completed("b", 2),
        *completed("c", "wrong"),
        OutputCorrected("c", "right", corrects_seq=7, actor="alice", reason="typo"),
    )

    assert decide(state, LINEAR, NOW) == [RunCompleted(output={"c": "right"})]


def test_steps_started_after_a_correction_see_the_corrected_output() -> None:
    state = state_after(
        *completed("a", "wrong"),
        OutputCorrected("a", "right", corrects_seq=3, actor="alice", reason="typo"),
    )

    assert decide(state, LINEAR, NOW) == [StepStarted("b", 1)]
    assert state.steps["a"].output == "right"


# --- when to wake up -----------------------------------------------------------------------------


def test_it_wakes_now_when_there_is_something_to_decide() -> None:
    assert next_wake_at(state_after(), LINEAR, NOW) == NOW


def test_it_does_not_wake_for_a_running_step_or_a_finished_run() -> None:
    assert next_wake_at(state_after(StepStarted("a", 1)), LINEAR, NOW) is None
    assert next_wake_at(state_after(RunCompleted({})), LINEAR, NOW) is None
    assert next_wake_at(RunState.initial(), LINEAR, NOW) is None


def test_it_wakes_at_the_earliest_scheduled_retry() -> None:
    parallel = definition(["x", "y"], [("x", "y")])
    later, sooner = NOW + timedelta(seconds=30), NOW + timedelta(seconds=10)
    state = fold(
        started(
            StepStarted("x", 1),
            StepFailed("x", 1, "transient", "t"),
            RetryScheduled("x", 2, later.isoformat(), 30, "transient"),
            StepStarted("y", 1),
            StepFailed("y", 1, "transient", "t"),
            RetryScheduled("y", 2, sooner.isoformat(), 10, "transient"),
        )
    )

    assert next_wake_at(state, parallel, NOW) == sooner
