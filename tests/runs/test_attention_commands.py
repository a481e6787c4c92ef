"""Resolving a step that needs attention: each resolution is an event with its actor, and
every refusal is said plainly. Workers are not needed: the facts a worker
would record are appended directly."""

import json

import pytest

from tests.support.workflows import chain, publish, record
from vectorbea.engine import StepFailed
from vectorbea.eventlog import store
from vectorbea.runs.commands import (
    ActionRefused,
    resolve_attention,
    retry_attention_runs,
    start_run,
)
from vectorbea.workflows.models import WorkflowVersion, content_hash


def tool_chain(**first_step) -> dict:
    definition = chain(2, "tool", {"tool": "record"})
    definition["steps"][0].update(first_step)
    return definition


def stuck_run(workspace, **first_step):
    workflow = publish(workspace, tool_chain(**first_step))
    run = start_run(workflow, {})
    record(run.id, StepFailed("s0", 1, "permanent", "Unknown tool 'recrod'"))
    assert store.load(run.id).state.attention
    return workflow, run


def types(run_id) -> list[str]:
    return [type(r.event).__name__ for r in store.read_events(run_id)]


def test_retry_with_new_settings_is_checked_and_recorded_with_the_actor(acme):
    _, run = stuck_run(acme)

    with pytest.raises(ActionRefused, match="tool"):
        resolve_attention(run.id, "s0", "retry", actor="alice", config={"tool": 7})
    fixed = {"tool": "record", "args": {"fixed": True}}
    appended = resolve_attention(
        run.id, "s0", "retry", actor="alice", note="fixed the name", config=fixed
    )

    resolved, retry, started = (r.event for r in appended.events)
    assert (resolved.action, resolved.actor, resolved.note) == ("retry", "alice", "fixed the name")
    assert resolved.config == fixed
    assert (retry.actor, retry.reason) == ("alice", "manual")
    assert (started.step_id, started.attempt) == ("s0", 2)
    loaded = store.load(run.id)
    assert not loaded.state.attention and loaded.state.step("s0").config == fixed
    # The step's page shows the settings it now runs with, not the definition's.
    from vectorbea.runs.step_detail import step_detail

    detail = step_detail(run.id, loaded.state, loaded.definition, "s0")
    assert json.loads(detail.settings) == fixed


def test_a_retry_can_move_the_run_to_a_newer_version(acme):
    workflow, run = stuck_run(acme)
    newer = tool_chain(config={"tool": "record", "args": {"v": 2}})
    v2 = WorkflowVersion.objects.create(
        workflow=workflow, number=2, definition=newer, content_hash=content_hash(newer)
    )

    outcomes = retry_attention_runs([run.id], actor="alice")

    assert [o.ok for o in outcomes] == [True]
    loaded = store.load(run.id)
    assert loaded.version_id == v2.id
    assert loaded.definition.steps["s0"].config == {"tool": "record", "args": {"v": 2}}
    # Pages follow it: the summary names the version the run is on now.
    run.refresh_from_db()
    assert run.current_version == v2 and run.version.number == 1


def test_a_version_that_lost_a_reached_step_cannot_take_over(acme):
    workflow, run = stuck_run(acme)
    other = chain(1, "tool", {"tool": "record"})
    other["steps"][0]["id"] = "renamed"
    v2 = WorkflowVersion.objects.create(
        workflow=workflow, number=2, definition=other, content_hash=content_hash(other)
    )

    with pytest.raises(ActionRefused, match="cannot take over this run: step 's0'"):
        resolve_attention(run.id, "s0", "retry", actor="alice", version=v2)
    assert store.load(run.id).state.attention  # nothing half-done


def test_supplying_the_output_lets_the_run_go_on(acme):
    _, run = stuck_run(acme)

    resolve_attention(run.id, "s0", "supply_output", actor="alice", output={"rows": 3})

    state = store.load(run.id).state
    assert state.step("s0").output == {"rows": 3} and state.step("s0").resolution == "supplied"
    assert state.step("s1").status == "running"
    assert "AttentionResolved" in types(run.id)


def test_skipping_needs_the_workflow_to_allow_it(acme):
    _, run = stuck_run(acme)
    with pytest.raises(ActionRefused, match="may not be skipped"):
        resolve_attention(run.id, "s0", "skip", actor="alice")

    _, allowed = stuck_run(acme, allow_skip=True)
    resolve_attention(allowed.id, "s0", "skip", actor="alice")
    state = store.load(allowed.id).state
    assert state.step("s0").status == "skipped" and state.step("s1").status == "running"


def test_failing_the_run_says_who_and_why(acme):
    _, run = stuck_run(acme)

    resolve_attention(run.id, "s0", "fail", actor="alice", note="the vendor is gone")

    state = store.load(run.id).state
    assert state.status == "failed"
    assert state.error == "alice failed the run at step 's0': the vendor is gone"


def test_a_step_that_no_longer_needs_attention_is_refused(acme):
    _, run = stuck_run(acme)
    resolve_attention(run.id, "s0", "fail", actor="alice")

    with pytest.raises(ActionRefused, match="has failed"):
        resolve_attention(run.id, "s0", "retry", actor="bob")


def test_bulk_retry_reports_each_run(acme):
    _, stuck = stuck_run(acme)
    fine = start_run(publish(acme, chain(1)), {})

    outcomes = {o.run_id: o for o in retry_attention_runs([stuck.id, fine.id], actor="alice")}

    assert outcomes[stuck.id].ok
    assert not outcomes[fine.id].ok and "does not need attention" in outcomes[fine.id].message


def test_a_step_that_chooses_a_path_cannot_be_skipped_even_if_its_version_allows_it(acme):
    gated = {
        "input_schema": {"type": "object"},
        "steps": [
            {"id": "gate", "kind": "approval", "config": {"title": "Go?"}, "allow_skip": True},
            {"id": "yes", "kind": "noop", "config": {}},
            {"id": "no", "kind": "noop", "config": {}},
        ],
        "edges": [
            {"source": "gate", "target": "yes", "port": "approved"},
            {"source": "gate", "target": "no", "port": "denied"},
        ],
    }
    run = start_run(publish(acme, gated), {})  # published before skipping was refused
    record(run.id, StepFailed("gate", 1, "permanent", "Nobody may approve: no approvers"))

    with pytest.raises(ActionRefused, match="chooses a path"):
        resolve_attention(run.id, "gate", "skip", actor="alice")
    assert "AttentionResolved" not in types(run.id)
