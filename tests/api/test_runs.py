"""Starting and following runs through the API: idempotent starts, input problems by path,
polling events by seq, cancel and retry with plain refusals."""

import pytest
from django.utils import timezone

from tests.api.conftest import api_as
from tests.api.support import token_creator
from tests.support.workflows import chain, publish
from vectorbea.accounts.models import Role
from vectorbea.budgets.killswitch import stop_everything
from vectorbea.eventlog import store
from vectorbea.eventlog.models import Run
from vectorbea.runs.commands import start_run
from vectorbea.runs.timeline import describe
from vectorbea.workflows.models import Workflow
from workers import runtime

pytestmark = pytest.mark.django_db


def runs_path(workflow) -> str:
    return f"/workflows/{workflow.id}/runs"


def test_it_lists_workflows_with_their_newest_published_version(admin_api, acme, workflow):
    Workflow.objects.create(workspace=acme, name="Draft only", draft=chain(1))

    response = admin_api.get("/workflows")

    assert response.status_code == 200
    assert [w["name"] for w in response.json()] == ["Draft only", "Triage"]
    by_name = {w["name"]: w for w in response.json()}
    assert by_name["Triage"] == {
        "id": str(workflow.id),
        "name": "Triage",
        "archived": False,
        "latest_version": 1,
    }
    assert by_name["Draft only"]["latest_version"] is None


def test_it_lists_versions_with_their_input_schema(admin_api, workflow):
    response = admin_api.get(f"/workflows/{workflow.id}/versions")

    assert response.status_code == 200
    (version,) = response.json()
    assert version["number"] == 1
    assert version["input_schema"]["required"] == ["ticket"]


def test_it_starts_a_run_for_the_tokens_creator_and_records_the_token(admin_api, workflow, acme):
    response = admin_api.post(runs_path(workflow), {"input": {"ticket": "Printer on fire"}})

    assert response.status_code == 201
    body = response.json()
    run = Run.objects.get(pk=body["id"])
    creator = token_creator(acme)
    assert (run.workflow_id, run.started_by) == (workflow.id, creator)
    assert body["workflow"] == "Triage"
    assert body["version"] == 1
    assert body["status"] in ("running", "retrying", "waiting")
    assert body["output"] is None
    state = store.load(run.id).state
    assert state.input == {"ticket": "Printer on fire"}
    assert state.started_by == creator.username
    (started,) = store.read_events(run.id, limit=1)
    assert started.event.via == "api:ci"
    assert describe(started) == f"Run started by {creator.username} via the API token “ci”"


def test_the_same_idempotency_key_returns_the_same_run(admin_api, workflow):
    start = {"input": {"ticket": "Refund"}}
    first = admin_api.post(runs_path(workflow), start, headers={"Idempotency-Key": "order-42"})
    again = admin_api.post(runs_path(workflow), start, headers={"Idempotency-Key": "order-42"})
    other = admin_api.post(runs_path(workflow), start, headers={"Idempotency-Key": "order-43"})

    assert (first.status_code, again.status_code, other.status_code) == (201, 200, 201)
    assert again.json()["id"] == first.json()["id"]
    assert other.json()["id"] != first.json()["id"]
    assert Run.objects.filter(workflow=workflow).count() == 2


def test_a_key_used_for_another_workflow_is_a_conflict(admin_api, acme, workflow):
    other = publish(acme, chain(1), name="Other")
    headers = {"Idempotency-Key": "k1"}
    admin_api.post(runs_path(workflow), {"input": {"ticket": "a"}}, headers=headers)

    response = admin_api.post(runs_path(other), {"input": {}}, headers=headers)

    assert response.status_code == 409
    assert "another workflow" in response.json()["detail"]


def test_input_that_does_not_match_the_schema_is_refused_with_paths(admin_api, workflow):
    response = admin_api.post(runs_path(workflow), {"input": {"priority": 9}})

    assert response.status_code == 422
    body = response.json()
    assert body["detail"] == "The input does not match the workflow's input schema."
    assert body["problems"] == [
        {"path": "input", "message": "'ticket' is a required property"},
        {"path": "input.priority", "message": "9 is greater than the maximum of 5"},
    ]
    assert not Run.objects.exists()


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"input": "not an object"}, "input"),
        ({"input": {}, "version": 0}, "version"),
        ({"input": {}, "version": "two"}, "version"),
        ({"inputs": {"ticket": "a"}}, "inputs"),
    ],
)
def test_wrong_types_are_refused_at_the_edge(admin_api, workflow, body, path):
    response = admin_api.post(runs_path(workflow), body)

    assert response.status_code == 422
    assert path in [problem["path"] for problem in response.json()["problems"]]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("{not json", "The request body is not valid JSON"),
        ('["a", "list"]', "The request body must be a JSON object."),
        ("null", "The request body must be a JSON object."),
        ('{"input": {"x": NaN}}', "NaN is not a JSON number"),
        ('{"input": {"x": 1e999}}', "too large a number"),
        ('{"input": ' + "[" * 80 + "]" * 80 + "}", "nested more than 64 levels"),
        ('{"input": {"x": "' + "a" * 1_000_001 + '"}}', "larger than 1,000,000 bytes"),
    ],
)
def test_bodies_the_api_cannot_read_are_a_400_with_a_reason(admin_api, workflow, raw, message):
    response = admin_api.post_raw(runs_path(workflow), raw)

    assert response.status_code == 400
    assert message in response.json()["detail"]
    assert not Run.objects.exists()


@pytest.mark.parametrize(
    ("raw", "path", "message"),
    [
        ('{"input": {"x": ["ok", "a\\u0000b"]}}', "input.x[1]", "a NUL character"),
        ('{"input": {"a\\u0000": 1}}', "input", "a NUL character"),
        ('{"input": {"x": "\\ud800"}}', "input.x", "an unpaired surrogate"),
    ],
)
def test_text_postgres_cannot_store_is_a_422_naming_where(admin_api, workflow, raw, path, message):
    response = admin_api.post_raw(runs_path(workflow), raw)

    assert response.status_code == 422
    (problem,) = response.json()["problems"]
    assert problem["path"] == path
    assert message in problem["message"]
    assert not Run.objects.exists()


def test_an_unknown_version_is_a_problem_with_the_version(admin_api, workflow):
    response = admin_api.post(runs_path(workflow), {"input": {"ticket": "a"}, "version": 7})

    assert response.status_code == 422
    assert response.json()["problems"][0]["path"] == "version"


def test_an_unpublished_workflow_or_a_stopped_workspace_is_a_conflict(admin_api, acme, workflow):
    draft = Workflow.objects.create(workspace=acme, name="Draft", draft=chain(1))
    response = admin_api.post(runs_path(draft), {"input": {}})
    assert response.status_code == 409
    assert "has no published version yet" in response.json()["detail"]

    Workflow.objects.filter(pk=draft.pk).update(archived_at=timezone.now())
    response = admin_api.post(runs_path(draft), {"input": {}})
    assert response.status_code == 409
    assert response.json()["detail"] == "Workflow 'Draft' is archived: restore it to start runs."

    stop_everything(acme.id, actor="alice", reason="incident 7")
    response = admin_api.post(runs_path(workflow), {"input": {"ticket": "a"}})
    assert response.status_code == 409
    assert "Runs are stopped in this workspace (incident 7)" in response.json()["detail"]


def test_a_completed_run_shows_its_output(admin_api, acme):
    run = start_run(publish(acme, chain(1)), {})
    runtime.execute_step(run.id, "s0", 1)  # no worker here: run the step inline

    body = admin_api.get(f"/runs/{run.id}").json()

    assert body["status"] == "completed"
    assert body["finished_at"] is not None
    assert body["output"] == store.load(run.id).state.output


def test_polling_events_returns_exactly_the_events_after_a_seq(admin_api, acme):
    run = start_run(publish(acme, chain(2)), {})
    runtime.execute_step(run.id, "s0", 1)
    recorded = store.read_events(run.id)
    assert len(recorded) > 4

    everything = admin_api.get(f"/runs/{run.id}/events").json()
    after_two = admin_api.get(f"/runs/{run.id}/events", after=2).json()
    page = admin_api.get(f"/runs/{run.id}/events", after=1, limit=2).json()
    nothing_new = admin_api.get(f"/runs/{run.id}/events", after=recorded[-1].seq).json()

    assert [e["seq"] for e in everything] == [r.seq for r in recorded]
    assert [e["type"] for e in everything] == [type(r.event).__name__ for r in recorded]
    assert everything[0]["type"] == "RunStarted"
    assert everything[0]["payload"]["input"] == {}
    assert [e["seq"] for e in after_two] == [r.seq for r in recorded if r.seq > 2]
    assert [e["seq"] for e in page] == [2, 3]
    assert nothing_new == []


def test_the_event_limit_is_capped(admin_api, acme):
    run = start_run(publish(acme, chain(1)), {})

    response = admin_api.get(f"/runs/{run.id}/events", limit=501)

    assert response.status_code == 422
    assert response.json()["problems"][0]["path"] == "query.limit"


def test_cancel_then_cancel_again_is_a_conflict(admin_api, acme):
    run = start_run(publish(acme, chain(2)), {})

    first = admin_api.post(f"/runs/{run.id}/cancel")
    again = admin_api.post(f"/runs/{run.id}/cancel")

    assert (first.status_code, first.json()["status"]) == (200, "cancelled")
    assert again.status_code == 409
    assert again.json()["detail"] == "The run has already finished; there is nothing to cancel."
    cancelled = [r.event for r in store.read_events(run.id, types=("RunCancelled",))]
    assert [(e.actor, e.reason) for e in cancelled] == [("api:ci", "Cancelled through the API")]


def test_retry_refuses_a_run_with_nothing_to_retry(admin_api, acme):
    run = start_run(publish(acme, chain(1)), {})

    response = admin_api.post(f"/runs/{run.id}/retry")

    assert response.status_code == 409
    assert "Only a run that failed at a step can be retried" in response.json()["detail"]


def test_retry_retries_the_step_that_needs_attention(admin_api, acme):
    broken = chain(1, "tool", {"tool": "no_such_tool"})
    run = start_run(publish(acme, broken), {})
    runtime.execute_step(run.id, "s0", 1)
    assert admin_api.get(f"/runs/{run.id}").json()["status"] == "needs_attention"

    response = admin_api.post(f"/runs/{run.id}/retry")

    assert response.status_code == 200
    retries = [r.event for r in store.read_events(run.id, types=("RetryScheduled",))]
    assert [(e.step_id, e.reason, e.actor) for e in retries][-1] == ("s0", "manual", "api:ci")


def test_an_editor_token_starts_and_operates_runs(acme, workflow):
    api = api_as(acme, Role.EDITOR)
    started = api.post(runs_path(workflow), {"input": {"ticket": "a"}})
    assert started.status_code == 201
    assert api.post(f"/runs/{started.json()['id']}/cancel").status_code == 200
