"""Corrections, needs attention and its resolutions, deferrals, interruptions, loops and
the runaway guards: what decide and fold make of them."""

from datetime import timedelta

from tests.engine.builders import (
    KINDS,
    T0,
    definition,
    definition_json,
    event_types,
    log,
    state_after,
    step,
)
from vectorbea.engine import (
    AttentionResolved,
    CorrectionAttempted,
    Definition,
    LoopRestarted,
    RetryScheduled,
    RunFailed,
    RunNeedsAttention,
    RunPaused,
    RunResumed,
    RunStarted,
    StepCompleted,
    StepDeferred,
    StepFailed,
    StepInterrupted,
    StepStarted,
    StepWaiting,
    decide,
    fold,
    next_wake_at,
    state_from_json,
    state_to_json,
    validate_definition,
)

NOW = T0 + timedelta(minutes=5)
BAD = {"answer": "{oops", "errors": ["(root): not JSON"]}


def llm_like(**extra) -> Definition:
    extra = {"retry": {"maximum_attempts": 3}, **extra}
    return definition(
        [step("ask", name="Ask", **extra), "after"],
        [("ask", "after")],
    )


def invalid(attempt: int) -> StepFailed:
    return StepFailed("ask", attempt, "invalid_output", "not JSON", detail=BAD)


# --- self-correction ----------------------------------------------------------------------------


def test_an_invalid_answer_is_sent_back_for_correction_with_its_errors() -> None:
    state = state_after(StepStarted("ask", 1), invalid(1))

    event, started = decide(state, llm_like(), NOW)

    assert started == StepStarted("ask", 2)
    assert event == CorrectionAttempted(
        "ask",
        2,
        correction=1,
        of=2,
        problem="not JSON",
        answer="{oops",
        errors=("(root): not JSON",),
    )
    state = state_after(StepStarted("ask", 1), invalid(1), event)
    assert state.steps["ask"].correction == {
        "answer": "{oops",
        "errors": ["(root): not JSON"],
        "problem": "not JSON",
    }
    assert state.steps["ask"].status == "retry_scheduled"


def test_corrections_are_bounded_then_the_step_needs_attention() -> None:
    flow = llm_like(max_corrections=2)
    events = [StepStarted("ask", 1), invalid(1)]
    for attempt in (2, 3):
        events += decide(state_after(*events), flow, NOW)  # a correction, and its start
        events.append(invalid(attempt))

    (event,) = decide(state_after(*events), flow, NOW)

    assert isinstance(event, RunNeedsAttention)
    assert event.summary.startswith(
        "Step 'Ask' gave up after 3 attempts, after asking the model to correct its answer 2 times"
    )


def test_corrections_do_not_use_up_retries() -> None:
    flow = llm_like(max_corrections=1)
    state = state_after(
        StepStarted("ask", 1),
        invalid(1),
        CorrectionAttempted("ask", 2, 1, 1, "not JSON", "{oops", ("x",)),
        StepStarted("ask", 2),
        StepFailed("ask", 2, "transient", "503"),
    )

    assert event_types(decide(state, flow, NOW)) == ["RetryScheduled"]


def test_a_correction_without_the_refused_answer_goes_to_a_person() -> None:
    state = state_after(StepStarted("ask", 1), StepFailed("ask", 1, "invalid_output", "bad"))

    assert event_types(decide(state, llm_like(), NOW)) == ["RunNeedsAttention"]


# --- resolutions --------------------------------------------------------------------------------


def needing_attention() -> list:
    return [
        StepStarted("ask", 1),
        StepFailed("ask", 1, "permanent", "401"),
        RunNeedsAttention("ask", "permanent", "Step 'Ask' failed"),
    ]


def test_a_person_supplying_the_output_lets_the_run_go_on() -> None:
    state = state_after(
        *needing_attention(), AttentionResolved("ask", "supply_output", "alice", output={"x": 1})
    )

    assert not state.attention
    assert state.steps["ask"].status == "completed"
    assert state.steps["ask"].resolution == "supplied"
    assert decide(state, llm_like(), NOW) == [StepStarted("after", 1)]


def test_a_skipped_step_passes_the_run_on_to_its_successors() -> None:
    state = state_after(*needing_attention(), AttentionResolved("ask", "skip", "alice"))

    assert state.steps["ask"].status == "skipped"
    assert decide(state, llm_like(), NOW) == [StepStarted("after", 1)]


def test_a_skipped_step_that_chooses_a_path_takes_none_of_its_paths() -> None:
    """An approval (or a branch) a person skipped decided nothing: neither its approved nor
    its denied path runs."""
    flow = definition(
        [step("gate", "approval"), "yes", "no"],
        [("gate", "yes", "approved"), ("gate", "no", "denied")],
    )
    state = state_after(
        StepStarted("gate", 1),
        StepFailed("gate", 1, "permanent", "The approvers rendered empty"),
        RunNeedsAttention("gate", "permanent", "Approval 'gate' could not open"),
        AttentionResolved("gate", "skip", "alice"),
    )

    events = decide(state, flow, NOW)

    assert StepStarted("yes", 1) not in events and StepStarted("no", 1) not in events
    assert {e.step_id for e in events if type(e).__name__ == "StepSkipped"} == {"yes", "no"}


def test_a_step_that_chooses_a_path_may_not_allow_skipping() -> None:
    data = definition_json(
        [step("gate", "approval", allow_skip=True), "yes"], [("gate", "yes", "approved")]
    )
    (issue,) = validate_definition(data, KINDS)
    assert issue.path == "steps[0].allow_skip" and "cannot be skipped" in issue.message


def test_a_retry_by_a_person_starts_a_new_round_with_new_settings() -> None:
    resolved = AttentionResolved("ask", "retry", "alice", config={"prompt": "fixed"})
    retry = RetryScheduled("ask", 2, NOW.isoformat(), 0.0, "manual", actor="alice")
    state = state_after(*needing_attention(), resolved, retry)

    assert not state.attention
    assert state.steps["ask"].config == {"prompt": "fixed"}
    assert (state.steps["ask"].failures, state.steps["ask"].failures_total) == (0, 1)
    assert decide(state, llm_like(), NOW) == [StepStarted("ask", 2)]


def test_a_retry_can_move_the_run_to_another_version() -> None:
    resolved = AttentionResolved("ask", "retry", "alice", version_id="v2")

    assert state_after(*needing_attention(), resolved).version_id == "v2"


def test_failing_a_run_that_needs_attention_ends_it() -> None:
    state = state_after(
        *needing_attention(),
        AttentionResolved("ask", "fail", "alice", note="not worth it"),
        RunFailed("Failed by alice", step_id="ask"),
    )

    assert state.status == "failed" and not state.attention


# --- deferrals and interruptions ----------------------------------------------------------------


def test_a_deferred_attempt_is_made_again_later_without_counting_as_an_attempt() -> None:
    until = (NOW + timedelta(seconds=30)).isoformat()
    state = state_after(
        StepStarted("ask", 1), StepDeferred("ask", 1, until, "rate_limited", "wait")
    )

    assert state.steps["ask"].failures == 0
    assert state.attempts_total == 0 and state.steps_started == 0  # a wait, not an attempt
    assert decide(state, llm_like(), NOW) == []
    assert next_wake_at(state, llm_like(), NOW).isoformat() == until
    assert decide(state, llm_like(), NOW + timedelta(seconds=31)) == [StepStarted("ask", 1)]


def test_an_interrupted_step_starts_again_when_the_stopped_run_resumes() -> None:
    state = state_after(
        StepStarted("ask", 1),
        RunPaused("alice", "kill switch", stopped=True),
        StepInterrupted("ask", 1, "alice", "kill switch"),
    )

    assert state.stopped and state.paused
    assert decide(state, llm_like(), NOW) == []
    state = fold(log(RunResumed("alice"), first_seq=state.last_seq + 1), state)
    assert not state.stopped
    assert decide(state, llm_like(), NOW) == [StepStarted("ask", 2)]
    assert state.steps["ask"].failures == 0


def test_a_run_held_by_a_person_is_not_woken_by_its_past_due_timers() -> None:
    """A delay in another branch falls due while a step needs attention (or the run is
    paused): nothing moves until the person acts, so no wake-up is due, however late."""
    flow = definition(
        ["start", step("ask"), step("wait", "delay", config={"seconds": 10})],
        [("start", "ask"), ("start", "wait")],
    )
    due = (T0 + timedelta(seconds=30)).isoformat()
    held = state_after(
        StepStarted("start", 1),
        StepCompleted("start", 1, {}),
        StepStarted("ask", 1),
        StepWaiting("wait", 1, due, "delay"),
        StepFailed("ask", 1, "permanent", "bad config"),
        RunNeedsAttention("ask", "permanent", "bad config"),
    )
    later = T0 + timedelta(hours=1)
    assert decide(held, flow, later) == []
    assert next_wake_at(held, flow, later) is None
    paused = state_after(
        StepStarted("start", 1),
        StepCompleted("start", 1, {}),
        StepWaiting("wait", 1, due, "delay"),
        RunPaused("alice", "lunch"),
    )
    assert next_wake_at(paused, flow, later) is None
    resumed = fold(log(RunResumed("alice"), first_seq=paused.last_seq + 1), paused)
    assert next_wake_at(resumed, flow, later) == later  # the delay is over: due now


# --- runaway guards -----------------------------------------------------------------------------


def guarded(max_steps: int = 1000, max_attempts: int = 10) -> RunStarted:
    limits = {"max_steps": max_steps, "max_attempts": max_attempts}
    return RunStarted("wf", "v1", {}, limits=limits)


def test_max_attempts_per_step_caps_a_step_whose_policy_allows_more() -> None:
    flow = llm_like(retry={"maximum_attempts": 50})
    events = [
        guarded(max_attempts=2),
        StepStarted("ask", 1),
        StepFailed("ask", 1, "transient", "x"),
    ]
    events += [*decide(fold(log(*events)), flow, NOW)]
    events += [StepStarted("ask", 2), StepFailed("ask", 2, "transient", "x")]

    (event,) = decide(fold(log(*events)), flow, NOW)

    assert isinstance(event, RunNeedsAttention)
    assert "the workspace allows at most 2 failed attempts per step" in event.summary


def test_max_steps_stops_a_run() -> None:
    flow = definition(["a", "b", "c"], [("a", "b"), ("b", "c")])
    state = fold(
        log(guarded(max_steps=2), StepStarted("a", 1), StepCompleted("a", 1, None))
        + log(StepStarted("b", 1), StepCompleted("b", 1, None), first_seq=4)
    )

    (event,) = decide(state, flow, NOW)

    assert isinstance(event, RunFailed)
    assert event.reason.startswith("Stopped by the runaway guard: the run has started 2 steps")


# --- loops --------------------------------------------------------------------------------------


def looping() -> Definition:
    data = {
        "steps": [
            step("draft"),
            step("check", "branch", config={"ports": ["again", "done"]}),
            step("publish"),
        ],
        "edges": [
            {"source": "draft", "target": "check"},
            {"source": "check", "target": "draft", "port": "again", "loop": True},
            {"source": "check", "target": "publish", "port": "done"},
        ],
    }
    assert validate_definition(data, KINDS) == []
    return Definition.from_json(data)


def test_taking_a_loop_edge_starts_the_loop_over() -> None:
    flow = looping()
    state = state_after(
        StepStarted("draft", 1),
        StepCompleted("draft", 1, "v1"),
        StepStarted("check", 1),
        StepCompleted("check", 1, None, ports=("again",)),
    )

    events = decide(state, flow, NOW)

    assert events == [
        LoopRestarted("check", "draft", 2, ("draft", "check", "publish")),
        StepStarted("draft", 2),
    ]


def test_leaving_the_loop_completes_the_run() -> None:
    state = state_after(
        StepStarted("draft", 1),
        StepCompleted("draft", 1, "v1"),
        StepStarted("check", 1),
        StepCompleted("check", 1, None, ports=("done",)),
    )

    assert event_types(decide(state, looping(), NOW)) == ["StepStarted"]


def test_a_loop_that_never_ends_is_stopped_by_max_steps() -> None:
    flow = looping()
    events = [guarded(max_steps=25)]
    state = fold(log(*events))
    for _ in range(100):
        decided = decide(state, flow, NOW)
        state = fold(log(*decided, first_seq=state.last_seq + 1), state)
        if state.is_terminal:
            break
        (running,) = state.running_steps()
        attempt = state.steps[running].attempt
        ports = ("again",) if running == "check" else None
        done = StepCompleted(running, attempt, None, ports=ports)
        state = fold(log(done, first_seq=state.last_seq + 1), state)

    assert state.status == "failed"
    assert state.steps_started == 25
    assert "runaway guard" in (state.error or "")


def test_a_loop_edge_must_go_back_to_an_earlier_step() -> None:
    data = {
        "steps": [step("a"), step("b")],
        "edges": [{"source": "a", "target": "b"}, {"source": "b", "target": "a", "loop": "yes"}],
    }
    messages = [issue.message for issue in validate_definition(data, KINDS)]
    assert "Edge 1: 'loop' must be true or false." in messages

    data["edges"] = [{"source": "a", "target": "b", "loop": True}]
    messages = [issue.message for issue in validate_definition(data, KINDS)]
    assert any("must go back to an earlier step" in message for message in messages)


def test_bad_failure_settings_are_refused_in_plain_language() -> None:
    data = {
        "steps": [
            step("a", on_error={"permanent": "shrug", "nope": "retry"}, on_failure="ignore"),
            step("b", max_corrections=99, allow_skip="sure"),
        ],
        "edges": [{"source": "a", "target": "b"}],
    }
    messages = " | ".join(issue.message for issue in validate_definition(data, KINDS))

    assert "'on_error' of step 'a' says 'shrug' for 'permanent'" in messages
    assert "names an unknown error class 'nope'" in messages
    assert "'on_failure' of step 'a' must be 'needs_attention'" in messages
    assert "'max_corrections' of step 'b' must be a whole number from 0 to 10" in messages
    assert "'allow_skip' of step 'b' must be true or false" in messages


def test_the_new_state_survives_a_checkpoint() -> None:
    state = state_after(
        guarded(),
        *needing_attention(),
        AttentionResolved("ask", "retry", "alice", config={"p": 1}),
        RetryScheduled("ask", 2, NOW.isoformat(), 0.0, "manual", actor="alice"),
        StepStarted("ask", 2),
        invalid(2),
        CorrectionAttempted("ask", 3, 1, 2, "not JSON", "{oops", ("x",)),
    )

    assert state_from_json(state_to_json(state)) == state
