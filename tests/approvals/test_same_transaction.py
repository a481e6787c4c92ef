"""A worker's append and the inbox's gate rows commit together, or not at all."""

import pytest

from tests.support.workflows import publish
from vectorbea.approvals import projection
from vectorbea.engine import StepCompleted
from vectorbea.eventlog import store
from vectorbea.runs.commands import start_run
from workers.runtime import record_outcome

GATED = {
    "input_schema": {"type": "object"},
    "steps": [
        {"id": "prep", "kind": "noop", "config": {}},
        {"id": "gate", "kind": "approval", "config": {"title": "Go?"}},
    ],
    "edges": [{"source": "prep", "target": "gate", "port": None}],
}


@pytest.mark.django_db(transaction=True)
def test_a_failing_gate_projection_rolls_back_the_workers_append(acme, monkeypatch):
    run = start_run(publish(acme, GATED), {})
    loaded = store.load(run.id)
    before = len(store.read_events(run.id))

    def broken(*args, **kwargs):
        raise RuntimeError("projection failed")

    monkeypatch.setattr(projection, "project", broken)
    with pytest.raises(RuntimeError, match="projection failed"):
        record_outcome(loaded, [StepCompleted("prep", 1, {})], claim=False)
    assert len(store.read_events(run.id)) == before  # the gate opening was not half-written
    monkeypatch.undo()
    appended = record_outcome(loaded, [StepCompleted("prep", 1, {})], claim=False)
    assert [type(r.event).__name__ for r in appended.events][-1] == "ApprovalRequested"
