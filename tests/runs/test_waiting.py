"""A run parked at a gate or a delay reads as waiting, and says why in plain language."""

from tests.support.workflows import publish
from vectorbea.eventlog.models import RunSummary
from vectorbea.runs.commands import decide_gate, start_run
from vectorbea.runs.timeline import timeline_rows


def gated() -> dict:
    return {
        "input_schema": {"type": "object"},
        "steps": [
            {
                "id": "gate",
                "kind": "approval",
                "name": "Refund",
                "config": {"title": "Refund {{ input.amount }} EUR?", "instructions": "Check it"},
            },
            {"id": "pay", "kind": "noop", "config": {}},
        ],
        "edges": [{"source": "gate", "target": "pay", "port": None}],
    }


def test_a_run_at_a_gate_is_waiting_and_the_timeline_says_for_what(acme):
    run = start_run(publish(acme, gated()), {"amount": 40})
    summary = RunSummary.objects.get(run=run)
    assert summary.status == "waiting"
    assert summary.current_steps == ["gate"]
    texts = [row.text for row in timeline_rows(run.id)]
    assert texts[-1] == "Step 'Refund' waits for approval: “Refund 40 EUR?”"


def test_a_decision_is_in_the_timeline_with_who_and_why(acme):
    run = start_run(publish(acme, gated()), {"amount": 40})
    decide_gate(run.id, "gate", approve=False, actor="bob", reason="too much")
    texts = [row.text for row in timeline_rows(run.id)]
    assert "Step 'Refund' denied by bob: too much" in texts
    assert RunSummary.objects.get(run=run).status == "denied"
