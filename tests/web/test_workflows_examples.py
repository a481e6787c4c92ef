"""The example workflows run on real workers, offline: a triage that branches and stops at an
approval gate, and a reminder that waits on a templated delay."""

import pytest

from tests.support.live import event_types, run_status, wait_for
from vectorbea.eventlog.models import RunSummary
from vectorbea.runs.commands import start_run
from vectorbea.workflows.examples import install_examples

pytestmark = pytest.mark.django_db(transaction=True)


def examples(workspace, user) -> dict:
    return {workflow.name: workflow for workflow in install_examples(workspace, user)}


def test_triage_files_a_normal_ticket_and_gates_an_urgent_one(live, acme, alice):
    triage = examples(acme, alice)["Triage a ticket"]
    live.worker()

    normal = start_run(triage, {"ticket": "How do I export my data?", "customer": "Ada"})
    urgent = start_run(triage, {"ticket": "URGENT: checkout is down"})

    wait_for(lambda: run_status(normal.id) == "completed")
    wait_for(lambda: "ApprovalRequested" in event_types(urgent.id))
    steps = RunSummary.objects.get(run=normal).steps
    assert steps["file"]["status"] == "completed"
    assert steps["approve"]["status"] == "skipped"
    assert run_status(urgent.id) not in ("completed", "failed")


def test_wait_and_remind_waits_for_the_templated_delay(live, acme, alice):
    remind = examples(acme, alice)["Wait and remind"]
    live.worker()
    live.scheduler()

    run = start_run(remind, {"message": "Stand-up", "wait_seconds": 0.5})

    wait_for(lambda: run_status(run.id) == "completed", timeout=30)
    assert "StepWaiting" in event_types(run.id)
