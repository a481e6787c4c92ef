"""The timeline says the new facts in plain language: corrections, deferrals, interruptions,
a run needing attention and how a person answered, loops, budget warnings, the kill switch."""

from datetime import UTC, datetime

import pytest

from vectorbea.engine import (
    AttentionResolved,
    BudgetWarning,
    CorrectionAttempted,
    LoopRestarted,
    Recorded,
    RunNeedsAttention,
    RunPaused,
    StepDeferred,
    StepInterrupted,
)
from vectorbea.runs.timeline import KIND_OF, TimelineRow, describe

AT = datetime(2026, 11, 20, 14, 0, 5, tzinfo=UTC)
NAMES = {"extract": "Extract", "draft": "Draft", "review": "Review"}


def said(event) -> str:
    return describe(Recorded(seq=7, at=AT, event=event), NAMES)


def test_a_correction_says_what_did_not_fit_and_which_correction_it_is() -> None:
    event = CorrectionAttempted(
        "extract", 2, 1, 2, "'total' is missing", '{"name": "Ada"}', ("'total' is required",)
    )
    assert said(event) == (
        "Step 'Extract' gave an answer that did not fit: 'total' is missing. Asked the model "
        "again with the errors (correction 1 of 2)."
    )


def test_a_deferral_says_until_when_and_why() -> None:
    event = StepDeferred(
        "extract", 1, "2026-11-20T14:03:10+00:00", "rate_limited", "OpenAI allows 60 a minute"
    )
    assert said(event) == "Step 'Extract' waits until 14:03:10 UTC: OpenAI allows 60 a minute"
    tomorrow = StepDeferred("extract", 1, "2026-11-21T09:00:00+00:00", "budget", "")
    assert said(tomorrow) == (
        "Step 'Extract' waits until 2026-11-21 09:00:00 UTC: a budget others hold"
    )
    row = TimelineRow.of(Recorded(seq=7, at=AT, event=event), NAMES)
    assert row.retry_at == "2026-11-20T14:03:10+00:00"  # the page counts down to it


def test_an_interruption_and_the_kill_switch_name_the_person() -> None:
    assert said(StepInterrupted("extract", 1, "alice", "runaway costs")) == (
        "Step 'Extract' was interrupted by alice: runaway costs"
    )
    assert said(RunPaused("alice", "runaway costs", stopped=True)) == (
        "Stopped by the kill switch (alice): runaway costs"
    )
    assert said(RunPaused("alice", "")).startswith("Run paused by alice.")


def test_needing_attention_gives_the_summary() -> None:
    event = RunNeedsAttention("extract", "permanent", "Step 'Extract' failed after 1 attempt.")
    assert said(event) == "Needs attention: Step 'Extract' failed after 1 attempt."
    assert KIND_OF["RunNeedsAttention"] == "attention"


@pytest.mark.parametrize(
    ("event", "text"),
    [
        (
            AttentionResolved("extract", "retry", "alice", config={"model": "m-2"}),
            "alice retried step 'Extract' with new settings",
        ),
        (
            AttentionResolved("extract", "retry", "alice", "the key was renewed"),
            "alice retried step 'Extract': the key was renewed",
        ),
        (
            AttentionResolved("extract", "supply_output", "alice", output={"total": 3}),
            "alice supplied the output of step 'Extract'",
        ),
        (
            AttentionResolved("extract", "skip", "bob", "not needed"),
            "bob skipped step 'Extract': not needed",
        ),
        (
            AttentionResolved("extract", "fail", "alice", "wrong customer"),
            "alice failed the run at step 'Extract': wrong customer",
        ),
    ],
)
def test_a_persons_answer_names_them_and_their_note(event, text) -> None:
    assert said(event) == text


@pytest.mark.django_db
def test_a_retry_on_another_version_names_the_version(acme) -> None:
    from tests.support.workflows import chain, publish
    from vectorbea.workflows.models import WorkflowVersion

    workflow = publish(acme, chain(1))
    v2 = WorkflowVersion.objects.create(
        workflow=workflow, number=3, definition=chain(1), content_hash="3"
    )
    event = AttentionResolved("extract", "retry", "alice", config={"a": 1}, version_id=str(v2.id))
    assert said(event) == "alice retried step 'Extract' with new settings on version 3"
    unknown = AttentionResolved("extract", "retry", "alice", version_id="v9")
    assert said(unknown) == "alice retried step 'Extract' on another version"


def test_a_loop_and_a_budget_warning() -> None:
    event = LoopRestarted("review", "draft", 2, ("draft", "review"))
    assert said(event) == ("Step 'Review' looped back to step 'Draft': round 2, 2 steps start over")
    warning = BudgetWarning("day", 80, "80% of today's budget ($8.00 of $10.00) is spent")
    assert said(warning) == "80% of today's budget ($8.00 of $10.00) is spent"
