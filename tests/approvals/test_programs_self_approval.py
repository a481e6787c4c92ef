"""A run started by a program (an API token, a webhook, a schedule) is the run of the
person who created that program: they may not approve it unless the gate allows
self-approval, from the inbox or through any token of theirs. The timeline still says
which program started it."""

from datetime import timedelta

import pytest
from django.test import Client

from tests.api.support import ApiClient, token_for
from tests.approvals.support import decisions, publish_gated
from tests.conftest import make_member
from tests.triggers.conftest import deliver
from vectorbea.accounts.models import Role
from vectorbea.approvals.models import Gate
from vectorbea.eventlog import store
from vectorbea.eventlog.models import Run
from vectorbea.runs.timeline import describe
from vectorbea.triggers import schedules, webhooks
from vectorbea.triggers.models import Schedule

pytestmark = pytest.mark.django_db

INPUT = {"amount": 40, "customer": "Ada"}


def started_by_token(workflow, creator) -> tuple[Run, str]:
    api = ApiClient(token_for(workflow.workspace, Role.EDITOR, "starter", by=creator))
    response = api.post(f"/workflows/{workflow.id}/runs", {"input": INPUT})
    assert response.status_code == 201, response.json()
    return Run.objects.get(pk=response.json()["id"]), "via the API token “starter”"


def started_by_webhook(workflow, creator) -> tuple[Run, str]:
    endpoint, secret = webhooks.create_endpoint(workflow, creator)
    response = deliver(Client(), endpoint, secret, INPUT)
    assert response.status_code == 202, response.json()
    return Run.objects.get(pk=response.json()["run_id"]), "via a webhook"


def started_by_schedule(workflow, creator) -> tuple[Run, str]:
    schedule = schedules.save_schedule(
        Schedule(workflow=workflow, cron="0 9 * * *", input=INPUT, created_by=creator)
    )
    due = schedules.latest_fire_at_or_before(schedule.cron, "UTC", store.db_now())
    Schedule.objects.filter(pk=schedule.pk).update(next_fire_at=due - timedelta(seconds=1))
    assert schedules.fire_due_schedules() == 1
    schedule.refresh_from_db()
    assert schedule.last_error == ""
    return schedule.last_run, "via a schedule"


PROGRAMS = [started_by_token, started_by_webhook, started_by_schedule]


def decide(user, run, decision: str = "approve"):
    client = Client()
    client.force_login(user)
    gate = Gate.objects.get(run=run, step_id="gate")
    data = {"decision": decision, "gate": gate.key, "reason": "because"}
    return client.post(f"/w/acme/inbox/{run.id}/gate/decide/", data)


@pytest.fixture
def dave(acme):
    """An admin of Acme: he makes the token, the webhook or the schedule."""
    return make_member("dave", acme, Role.ADMIN)


@pytest.mark.parametrize("start", PROGRAMS, ids=lambda f: f.__name__)
def test_the_creator_of_the_program_that_started_a_run_may_not_approve_it(acme, dave, start):
    run, via = start(publish_gated(acme), dave)

    response = decide(dave, run)

    assert response.status_code == 403
    assert "You started this run" in response.content.decode()
    assert decisions(run.id) == []
    assert Gate.objects.get(run=run).initiator == "dave"
    (started,) = store.read_events(run.id, limit=1)
    assert describe(started) == f"Run started by dave {via}"
    assert run.started_by == dave


@pytest.mark.parametrize("start", PROGRAMS, ids=lambda f: f.__name__)
def test_someone_else_may_approve_it(acme, dave, start):
    run, _ = start(publish_gated(acme), dave)

    assert decide(make_member("omar", acme, Role.APPROVER), run).status_code == 302
    assert decisions(run.id) == ["ApprovalGranted"]


@pytest.mark.parametrize("start", PROGRAMS, ids=lambda f: f.__name__)
def test_the_creator_may_approve_it_when_the_gate_allows_self_approval(acme, dave, start):
    run, _ = start(publish_gated(acme, allow_self_approval=True), dave)

    assert decide(dave, run).status_code == 302
    assert decisions(run.id) == ["ApprovalGranted"]


@pytest.mark.parametrize("start", PROGRAMS, ids=lambda f: f.__name__)
def test_nor_may_another_token_of_the_creator_approve_it(acme, dave, start):
    run, _ = start(publish_gated(acme), dave)
    approver = ApiClient(token_for(acme, Role.APPROVER, "approver bot", by=dave))

    assert approver.get("/approvals").json() == []
    response = approver.post(f"/approvals/{run.id}/gate", {"approve": True})

    assert response.status_code == 403
    assert response.json()["detail"] == (
        "api:approver bot was created by dave, who started this run; this approval does not "
        "let anyone approve their own run."
    )
    assert decisions(run.id) == []
