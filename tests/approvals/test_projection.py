"""The Gate rows are a projection of the log: what the writers keep up to date right after
each append is exactly what rebuilding from the log gives."""

import pytest
from django.core.management import call_command
from django.forms.models import model_to_dict

from tests.approvals.support import gated, publish_gated, two_gates_in_parallel
from tests.support.workflows import publish
from vectorbea.approvals import projection
from vectorbea.approvals.models import Gate
from vectorbea.eventlog import store
from vectorbea.eventlog.record import then_decide
from vectorbea.runs.commands import (
    cancel_run,
    decide_gate,
    retry_failed_step,
    start_run,
)
from workers import runtime

INPUT = {"amount": 40, "customer": "Ada"}


def rows() -> list[dict]:
    return [
        {k: v for k, v in model_to_dict(gate).items() if k != "id"}
        for gate in Gate.objects.order_by("run_id", "step_id", "attempt")
    ]


def advance_to_now(run_id, seconds: float) -> None:
    """Let the engine act as if `seconds` had passed (a timeout came): the scheduler's path."""
    from datetime import timedelta

    loaded = store.load(run_id)
    later = loaded.clock.now() + timedelta(seconds=seconds)
    store.append(  # the gate projection writes its rows with the append
        run_id,
        loaded.state,
        then_decide(loaded.definition, []),
        loaded.definition,
        now=later,
    )


def test_rebuilding_from_the_log_gives_the_rows_the_writers_wrote(acme, alice):
    workflow = publish_gated(acme)
    approved = start_run(workflow, INPUT, started_by=alice)
    decide_gate(approved.id, "gate", approve=True, actor="alice", reason="fine")
    denied = start_run(workflow, INPUT, started_by=alice)
    decide_gate(denied.id, "gate", approve=False, actor="alice", reason="no")
    retry_failed_step(denied.id, actor="alice")  # asks again: a second opening, attempt 2
    start_run(workflow, INPUT, started_by=alice)  # still waiting
    cancelled = start_run(workflow, INPUT, started_by=alice)
    cancel_run(cancelled.id, actor="alice")
    timing_out = start_run(publish_gated(acme, timeout_seconds=60), INPUT, started_by=alice)
    advance_to_now(timing_out.id, 61)
    escalating = start_run(
        publish_gated(
            acme,
            timeout_seconds=60,
            on_timeout="escalate",
            escalate={"approvers": {"roles": ["owner"]}, "timeout_seconds": 60},
        ),
        INPUT,
        started_by=alice,
    )
    advance_to_now(escalating.id, 61)
    twice = start_run(publish_gated(acme, required_approvals=2), INPUT, started_by=alice)
    decide_gate(twice.id, "gate", approve=True, actor="omar")
    parallel = start_run(publish(acme, two_gates_in_parallel()), INPUT, started_by=alice)
    runtime.execute_step(parallel.id, "start", 1)
    decide_gate(parallel.id, "finance", approve=False, actor="alice", reason="over budget")

    live = rows()
    statuses = sorted((row["step_id"], row["attempt"], row["status"]) for row in live)
    assert statuses == sorted(
        [
            ("gate", 1, "approved"),
            ("gate", 1, "denied"),
            ("gate", 2, "waiting"),
            ("gate", 1, "waiting"),
            ("gate", 1, "closed"),
            ("gate", 1, "timed_out"),
            ("gate", 1, "waiting"),  # escalated
            ("gate", 1, "waiting"),  # one of two approvals
            ("legal", 1, "closed"),  # the run failed at the other gate
            ("finance", 1, "denied"),
        ]
    )
    Gate.objects.all().delete()
    call_command("rebuild_gates")

    assert rows() == live


def test_an_escalated_gate_goes_to_its_new_approvers_with_a_new_deadline(acme, alice):
    escalate = {"approvers": {"users": ["carol"]}, "timeout_seconds": 120, "on_timeout": "approve"}
    workflow = publish_gated(acme, timeout_seconds=60, on_timeout="escalate", escalate=escalate)
    run = start_run(workflow, INPUT, started_by=alice)
    first = Gate.objects.get(run=run)

    advance_to_now(run.id, 61)

    gate = Gate.objects.get(run=run)
    assert (gate.status, gate.level) == ("waiting", 1)
    assert (gate.approver_roles, gate.approver_users) == ([], ["carol"])
    assert (gate.timeout_at - first.timeout_at).total_seconds() == pytest.approx(121, abs=1)


def test_a_late_writer_never_puts_an_older_row_back(acme, alice):
    run = start_run(publish_gated(acme), INPUT, started_by=alice)
    opened = store.load(run.id)
    decide_gate(run.id, "gate", approve=True, actor="alice")

    # The opening's projection arrives after the decision's (two processes racing).
    projection.project(
        run.id,
        opened.state,
        store.read_events(run.id, upto_seq=opened.state.last_seq),
        opened.definition,
    )

    assert Gate.objects.get(run=run).status == "approved"


def test_an_append_that_touches_no_gate_writes_no_row(acme, alice, django_assert_num_queries):
    run = start_run(publish(acme, gated(after="noop")), INPUT, started_by=alice)
    decide_gate(run.id, "gate", approve=True, actor="alice")
    loaded = store.load(run.id)
    started = [r for r in store.read_events(run.id) if type(r.event).__name__ == "StepStarted"]

    with django_assert_num_queries(0):
        assert projection.project(run.id, loaded.state, started, loaded.definition) == []
