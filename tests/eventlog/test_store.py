"""The event store against real Postgres: append-only, contiguous, one write path."""

import json
import threading
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings

from tests.engine.strategies import simulated_runs
from tests.support.workflows import chain, publish, record
from vectorbea.engine import (
    ConcurrencyConflict,
    OutputCorrected,
    RunState,
    StepFailed,
    fold,
    state_to_json,
)
from vectorbea.eventlog import store
from vectorbea.eventlog.models import Checkpoint, Run, RunSummary
from vectorbea.eventlog.projections import COLUMNS, summary_fields
from vectorbea.runs.commands import InvalidRunInput, cancel_run, resolve_attention, start_run
from vectorbea.workflows.models import WorkflowVersion, content_hash

FIXTURES = Path(__file__).resolve().parents[1] / "engine" / "fixtures"


def new_run(workspace, definition=None) -> Run:
    workflow = publish(workspace, definition or chain(2))
    return Run.objects.create(
        workspace=workspace, workflow=workflow, version=workflow.versions.get()
    )


def append_events(run: Run, state: RunState, events) -> RunState:
    definition = store.definition_for(run.version_id)
    return store.append(
        run.id, state, lambda s, now: list(events), definition, now=store.db_now()
    ).state


def summary_row(run_id) -> dict:
    summary = RunSummary.objects.get(run_id=run_id)
    return {column: getattr(summary, column) for column in COLUMNS}


def test_the_database_refuses_to_update_or_delete_events(acme):
    run = start_run(publish(acme, chain(2)), {})
    for sql in (
        "UPDATE eventlog_event SET type = 'RunCompleted' WHERE run_id = %s",
        "DELETE FROM eventlog_event WHERE run_id = %s",
    ):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(sql, [run.id])
    assert type(store.read_events(run.id)[0].event).__name__ == "RunStarted"


def test_the_database_refuses_to_change_a_published_version(acme):
    version = publish(acme, chain(2)).versions.get()
    version.definition = chain(3)
    with pytest.raises(DatabaseError, match="immutable"), transaction.atomic():
        version.save()
    assert WorkflowVersion.objects.get(pk=version.pk).definition == chain(2)


def test_a_stale_writer_gets_a_conflict_and_nothing_is_written(acme):
    run = start_run(publish(acme, chain(2)), {})
    stale = store.load(run.id).state
    fail = StepFailed("s0", 1, "transient", "boom")
    definition = store.definition_for(run.version_id)
    correction = OutputCorrected("s0", 1, 1, "ops", "x")
    store.append(run.id, stale, lambda s, now: [correction], definition, now=store.db_now())
    before = len(store.read_events(run.id))
    with pytest.raises(ConcurrencyConflict):
        store.append(run.id, stale, lambda s, now: [fail], definition, now=store.db_now())
    assert len(store.read_events(run.id)) == before


@pytest.mark.django_db(transaction=True)
def test_threads_appending_to_one_run_get_contiguous_seqs_and_lose_nothing(acme):
    run = new_run(acme)
    append_events(run, RunState.initial(), [_run_started(run)])
    per_thread, threads = 15, 8
    barrier = threading.Barrier(threads)
    conflicts = []

    def writer(n: int) -> None:
        barrier.wait()
        written = 0
        while written < per_thread:
            state = store.load(run.id).state
            note = OutputCorrected("s0", {"thread": n, "i": written}, 1, f"t{n}", "test")
            try:
                append_events(run, state, [note])
                written += 1
            except ConcurrencyConflict:
                conflicts.append(n)
        connection.close()

    pool = [threading.Thread(target=writer, args=(n,)) for n in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    events = store.read_events(run.id)
    assert [e.seq for e in events] == list(range(1, 2 + per_thread * threads))
    written = {(e.event.output["thread"], e.event.output["i"]) for e in events[1:]}
    assert written == {(n, i) for n in range(threads) for i in range(per_thread)}
    assert conflicts, "with 8 racing threads some appends must have lost and retried"
    assert RunSummary.objects.get(run_id=run.id).last_seq == len(events)


def _run_started(run):
    from vectorbea.engine import RunStarted

    return RunStarted(str(run.workflow_id), str(run.version_id), {}, None)


@hsettings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(example=simulated_runs(max_steps=6))
def test_projection_fold_and_checkpoint_plus_tail_agree(acme, settings, example):
    settings.VECTORBEA_CHECKPOINT_EVERY = 3
    definition, log = example
    run = new_run(acme, definition)
    state = RunState.initial()
    for recorded in log:  # one append per event, through the one write path
        state = append_events(run, state, [recorded.event])
    events = store.read_events(run.id)
    folded = fold(events)
    assert state == folded  # incrementally maintained == fold of the log
    assert store.load(run.id).state == folded  # latest checkpoint + tail
    assert Checkpoint.objects.filter(run=run).count() >= len(events) // 3
    for cp in Checkpoint.objects.filter(run=run):
        assert cp.state == state_to_json(fold(events[: cp.seq]))
    expected = summary_fields(folded, store.definition_for(run.version_id), events[-1].at)
    assert summary_row(run.id) == expected
    for seq in (1, len(events) // 2, len(events)):
        assert store.state_as_of(run.id, seq) == fold(events[:seq])


def test_rebuild_projections_yields_identical_rows(acme):
    runs = [start_run(publish(acme, chain(3), name=f"w{i}"), {"i": i}) for i in range(3)]
    cancel_run(runs[1].id, actor="alice")
    before = {r.id: summary_row(r.id) for r in runs}
    RunSummary.objects.all().update(status="garbage", last_seq=0, wake_at=None)
    call_command("rebuild_projections", stdout=open("/dev/null", "w"))
    assert {r.id: summary_row(r.id) for r in runs} == before


def test_a_rebuilt_summary_equals_the_live_one_for_a_run_moved_to_a_newer_version(acme):
    first = chain(2, "tool", {"tool": "record"})
    first["steps"][0]["name"], first["steps"][1]["name"] = "Fetch (v1)", "Send (v1)"
    workflow = publish(acme, first)
    run = start_run(workflow, {})
    record(run.id, StepFailed("s0", 1, "permanent", "Unknown tool 'recrod'"))
    newer = json.loads(json.dumps(first))
    newer["steps"][0]["name"], newer["steps"][1]["name"] = "Fetch (v2)", "Send (v2)"
    v2 = WorkflowVersion.objects.create(
        workflow=workflow, number=2, definition=newer, content_hash=content_hash(newer)
    )
    resolve_attention(run.id, "s0", "retry", actor="alice", version=v2)
    live = summary_row(run.id)
    assert live["current_label"] == "Fetch (v2) (attempt 2)"  # named by the version it is on

    RunSummary.objects.filter(run_id=run.id).update(status="garbage", current_label="")
    call_command("rebuild_projections", str(run.id), stdout=open("/dev/null", "w"))
    assert summary_row(run.id) == live


def test_old_v1_payloads_in_the_table_replay_to_the_same_state_as_new_ones(acme):
    fixture = json.loads((FIXTURES / "v1_events.json").read_text())
    states = []
    for log in (fixture["v1_log"], fixture["current_log"]):
        run = new_run(acme)
        with connection.cursor() as cursor:
            for row in log:
                cursor.execute(
                    "INSERT INTO eventlog_event "
                    "(run_id, seq, type, schema_version, payload, created_at) "
                    "VALUES (%s, %s, %s, %s, %s::jsonb, %s)",
                    [
                        run.id,
                        row["seq"],
                        row["type"],
                        row["schema_version"],
                        json.dumps(row["payload"]),
                        row["at"],
                    ],
                )
        states.append(store.load(run.id).state)
    assert states[0] == states[1]
    assert states[0].status == "completed"


def test_an_idempotency_key_starts_one_run_only(acme):
    workflow = publish(acme, chain(2))
    first = start_run(workflow, {}, idempotency_key="order-42")
    again = start_run(workflow, {}, idempotency_key="order-42")
    other = start_run(workflow, {}, idempotency_key="order-43")
    assert first.id == again.id != other.id
    assert Run.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_racing_starts_with_one_idempotency_key_make_one_run(acme):
    workflow = publish(acme, chain(2))
    barrier = threading.Barrier(6)
    ids = []

    def start() -> None:
        barrier.wait()
        ids.append(start_run(workflow, {}, idempotency_key="same").id)
        connection.close()

    pool = [threading.Thread(target=start) for _ in range(6)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    assert len(set(ids)) == 1 and len(ids) == 6
    assert Run.objects.count() == 1


def test_run_input_is_validated_against_the_workflow_schema(acme):
    definition = chain(1)
    definition["input_schema"] = {
        "type": "object",
        "properties": {"ticket": {"type": "integer"}},
        "required": ["ticket"],
    }
    workflow = publish(acme, definition)
    with pytest.raises(InvalidRunInput) as caught:
        start_run(workflow, {"ticket": "seven"})
    assert caught.value.problems[0].path == "input.ticket"
    assert Run.objects.count() == 0


def test_a_run_keeps_its_version_while_new_runs_use_the_newest(acme):
    workflow = publish(acme, chain(1))
    old_run = start_run(workflow, {})
    WorkflowVersion.objects.create(
        workflow=workflow, number=2, definition=chain(4), content_hash="x"
    )
    new_run_ = start_run(workflow, {})
    assert old_run.version.number == 1 and new_run_.version.number == 2
    assert store.load(old_run.id).definition.steps.keys() == {"s0"}
    assert len(store.load(new_run_.id).definition.steps) == 4


def test_cancelling_a_run_revokes_its_leases_and_refuses_late_results(acme):
    from workers.runtime import record_outcome

    run = start_run(publish(acme, chain(2)), {})
    loaded = store.load(run.id)
    assert loaded.state.step("s0").status == "running"
    assert cancel_run(run.id, actor="alice") is True
    assert not cancel_run(run.id, actor="alice")  # already finished
    from vectorbea.engine import StepCompleted

    late = record_outcome(loaded, [StepCompleted("s0", 1, {})], claim=True)
    assert late is None
    assert store.load(run.id).state.status == "cancelled"
    assert [e.event.__class__.__name__ for e in store.read_events(run.id)][-1] == "RunCancelled"
