"""Gates on real worker and scheduler processes: timeouts and escalation fired by the
scheduler, gates in parallel branches, and a waiting run surviving a restart."""

import time

from django.test import Client

from tests.approvals.support import gated, payloads, publish_gated, two_gates_in_parallel
from tests.conftest import make_member
from tests.support.live import event_types, run_status, side_effects, wait_for
from tests.support.workflows import publish
from vectorbea.accounts.models import Role
from vectorbea.approvals.models import Gate
from vectorbea.runs.commands import start_run

INPUT = {"amount": 40, "customer": "Ada"}
RECORD = "tool"  # the test tool kind: records each run of a step in test_side_effect


def finished(run_id):
    return lambda: run_status(run_id) in ("completed", "failed", "denied", "cancelled")


def gate_status(run_id, step_id="gate"):
    gate = Gate.objects.filter(run_id=run_id, step_id=step_id).first()
    return gate.status if gate else None


def decide(user, run, step_id, decision, reason="ok") -> int:
    client = Client()
    client.force_login(user)
    gate = Gate.objects.get(run=run, step_id=step_id)
    response = client.post(
        f"/w/acme/inbox/{run.id}/{step_id}/decide/",
        {"decision": decision, "gate": gate.key, "reason": reason},
    )
    return response.status_code


def recorded(definition: dict) -> dict:
    """Make every non-gate step the recording tool, so the test sees what really ran."""
    for step in definition["steps"]:
        if step["kind"] != "approval":
            step["kind"], step["config"] = "tool", {"tool": "record"}
    return definition


def test_a_gate_nobody_decides_is_denied_by_the_scheduler_at_its_timeout(live, acme, alice):
    workflow = publish_gated(acme, recorded(gated(timeout_seconds=1)))
    live.worker()
    live.scheduler()

    run = start_run(workflow, INPUT, started_by=alice)
    assert gate_status(run.id) == "waiting"
    wait_for(finished(run.id), timeout=30)

    assert run_status(run.id) == "denied"
    assert payloads(run.id, "ApprovalTimedOut") == [
        {"step_id": "gate", "outcome": "denied", "gate": "gate:1"}
    ]
    assert "nobody decided before its timeout" in payloads(run.id, "RunFailed")[0]["reason"]
    # Projected by the worker that recorded it, right after its append committed.
    wait_for(lambda: gate_status(run.id) == "timed_out", timeout=5)
    assert [effect[0] for effect in side_effects(run.id)] == []  # "pay" never ran


def test_an_unanswered_gate_escalates_then_the_new_approver_decides(live, acme, alice):
    carol = make_member("carol", acme, Role.VIEWER)
    omar = make_member("omar", acme, Role.APPROVER)
    escalate = {"approvers": {"users": ["carol"]}, "timeout_seconds": 60}
    workflow = publish_gated(
        acme,
        recorded(gated(timeout_seconds=1, on_timeout="escalate", escalate=escalate)),
    )
    live.worker()
    live.scheduler()

    run = start_run(workflow, INPUT, started_by=alice)
    wait_for(lambda: "ApprovalEscalated" in event_types(run.id), timeout=30)
    wait_for(lambda: Gate.objects.get(run=run).level == 1)

    assert gate_status(run.id) == "waiting"
    assert decide(omar, run, "gate", "approve") == 403  # no longer one of its approvers
    assert decide(carol, run, "gate", "approve") == 302
    wait_for(finished(run.id), timeout=30)
    assert run_status(run.id) == "completed"
    assert [e[0] for e in side_effects(run.id)] == ["pay", "pay"]  # start, end


def test_an_escalated_gate_that_times_out_again_takes_its_verdict(live, acme, alice):
    escalate = {"approvers": {"roles": ["owner"]}, "timeout_seconds": 1, "on_timeout": "approve"}
    workflow = publish_gated(
        acme, recorded(gated(timeout_seconds=1, on_timeout="escalate", escalate=escalate))
    )
    live.worker()
    live.scheduler()

    run = start_run(workflow, INPUT, started_by=alice)
    wait_for(finished(run.id), timeout=30)

    types = event_types(run.id)
    assert types.index("ApprovalEscalated") < types.index("ApprovalTimedOut")
    assert payloads(run.id, "ApprovalTimedOut")[0]["outcome"] == "approved"
    assert run_status(run.id) == "completed"


def test_two_gates_in_parallel_branches_wait_and_are_decided_independently(live, acme, alice):
    omar = make_member("omar", acme, Role.APPROVER)
    workflow = publish(acme, recorded(two_gates_in_parallel()))
    live.worker()

    run = start_run(workflow, INPUT, started_by=alice)
    wait_for(lambda: gate_status(run.id, "legal") and gate_status(run.id, "finance"))
    assert (gate_status(run.id, "legal"), gate_status(run.id, "finance")) == ("waiting", "waiting")

    assert decide(omar, run, "legal", "approve", "contract is fine") == 302
    time.sleep(0.5)
    assert gate_status(run.id, "finance") == "waiting"  # never passes with its sibling
    assert "join" not in [effect[0] for effect in side_effects(run.id)]
    assert run_status(run.id) == "waiting"

    assert decide(omar, run, "finance", "approve", "budget ok") == 302
    wait_for(finished(run.id))
    assert run_status(run.id) == "completed"
    assert [effect[0] for effect in side_effects(run.id)].count("join") == 2


def test_a_run_waiting_at_a_gate_survives_a_restart_and_continues_after_the_decision(
    live, acme, alice
):
    omar = make_member("omar", acme, Role.APPROVER)
    definition = gated()
    definition["steps"].insert(0, {"id": "prepare", "kind": "noop", "config": {}})
    definition["edges"].insert(0, {"source": "prepare", "target": "gate", "port": None})
    workflow = publish(acme, recorded(definition), name="Prepared refunds")
    worker, scheduler = live.worker(), live.scheduler()

    run = start_run(workflow, INPUT, started_by=alice)
    wait_for(lambda: gate_status(run.id) == "waiting")
    live.kill(worker)
    live.kill(scheduler)
    time.sleep(0.5)
    live.worker()
    live.scheduler()

    assert decide(omar, run, "gate", "approve", "after the restart") == 302
    wait_for(finished(run.id))

    assert run_status(run.id) == "completed"
    steps = [effect[0] for effect in side_effects(run.id)]
    assert steps == ["prepare", "prepare", "pay", "pay"]  # "prepare" ran once: start, end
