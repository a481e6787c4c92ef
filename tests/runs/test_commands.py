"""The terminal commands: start_run, show_run, replay --as-of, and correcting an output."""

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from tests.support.workflows import chain, publish
from vectorbea.eventlog import store
from vectorbea.runs.commands import correct_output, start_run


def run_command(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def complete_first_step(run_id, output):
    from vectorbea.engine import StepCompleted
    from workers.runtime import record_outcome

    loaded = store.load(run_id)
    record_outcome(loaded, [StepCompleted("s0", 1, output)], claim=False)


def test_start_run_command_validates_input_and_prints_the_run_id(acme):
    workflow = publish(acme, chain(2), name="nightly")
    run_id = run_command("start_run", "acme/nightly", "--input", '{"a": 1}').strip()
    assert store.load(run_id).state.input == {"a": 1}
    with pytest.raises(CommandError, match="not valid JSON"):
        run_command("start_run", str(workflow.id), "--input", "{oops")
    with pytest.raises(CommandError, match="No workflow"):
        run_command("start_run", "acme/missing")


def test_show_run_prints_the_timeline_in_plain_language(acme):
    run = start_run(publish(acme, chain(2)), {})
    complete_first_step(run.id, {"ok": True})
    text = run_command("show_run", str(run.id))
    assert "Run started" in text
    assert "Step 's0' completed (attempt 1)" in text
    assert "Step 's1' started" in text
    with pytest.raises(CommandError, match="No run"):
        run_command("show_run", "not-a-run")


def test_replay_shows_state_as_of_an_event(acme):
    run = start_run(publish(acme, chain(2)), {})
    complete_first_step(run.id, {"ok": True})
    early = json.loads(run_command("replay", str(run.id), "--as-of", "2"))
    late = json.loads(run_command("replay", str(run.id)))
    assert early["steps"]["s0"]["status"] == "running" and "s1" not in early["steps"]
    assert late["steps"]["s0"]["output"] == {"ok": True}
    with pytest.raises(CommandError, match="between 1 and"):
        run_command("replay", str(run.id), "--as-of", "99")


def test_a_wrong_output_is_corrected_by_a_new_event_not_an_edit(acme):
    run = start_run(publish(acme, chain(2)), {})
    complete_first_step(run.id, {"total": 10})
    seq = correct_output(run.id, "s0", {"total": 12}, actor="alice", reason="typo")
    events = store.read_events(run.id)
    assert events[-1].seq == seq and events[-1].event.corrects_seq == 3
    assert events[2].event.output == {"total": 10}  # history unchanged
    assert store.load(run.id).state.step("s0").output == {"total": 12}


def test_a_run_input_postgres_cannot_store_is_refused_before_anything_is_written(acme):
    from vectorbea.eventlog.models import Run
    from vectorbea.runs.commands import InvalidRunInput

    workflow = publish(acme, chain(1))
    with pytest.raises(InvalidRunInput, match="NUL character") as refused:
        start_run(workflow, {"note": "a\x00b"})
    assert "at note, which cannot be stored" in str(refused.value)
    assert not Run.objects.filter(workflow=workflow).exists()
