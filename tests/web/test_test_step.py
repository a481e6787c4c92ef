"""“Test this step” in the builder: one step of the draft, run with sample values, shows its
output or its error, and starts no run."""

import json

import pytest
from django.test import Client
from django.urls import reverse

import tests.support.tools  # noqa: F401  (registers the echo_outputs tool)
from tests.conftest import make_member
from tests.keys.support import canary
from tests.support.counting_server import CountingServer
from tests.support.fake_llm import FakeLLM, ok
from vectorbea.accounts.models import Role
from vectorbea.budgets.models import LedgerScope, SpendLedger
from vectorbea.eventlog.models import Event, Run
from vectorbea.keys import vault
from vectorbea.workflows import commands
from vectorbea.workflows.models import Workflow

pytestmark = pytest.mark.django_db


def definition(*steps: dict, edges=()) -> dict:
    return {
        "input_schema": {
            "type": "object",
            "properties": {"ticket": {"type": "string"}, "count": {"type": "integer"}},
        },
        "steps": list(steps),
        "edges": list(edges),
    }


READ = {
    "id": "read",
    "kind": "transform",
    "name": "Read",
    "config": {"output": {"text": "{{ input.ticket | upper }}", "n": "{{ input.count * 2 }}"}},
}
ECHO = {
    "id": "echo",
    "kind": "tool",
    "name": "Echo",
    "config": {"tool": "echo_outputs", "args": {}},
}


@pytest.fixture
def workflow(acme, alice) -> Workflow:
    return commands.create_workflow(acme, alice, "Trial", definition(READ))


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def try_step(client: Client, workflow: Workflow, draft: dict, step: str, sample=None, outputs=None):
    return client.post(
        reverse("workflow-test-step", args=[workflow.workspace.slug, workflow.id]),
        {
            "definition": json.dumps(draft),
            "step": step,
            "input": json.dumps(sample if sample is not None else {}),
            "outputs": json.dumps(outputs if outputs is not None else {}),
        },
    )


def test_it_shows_a_steps_output_for_the_sample_input_and_starts_no_run(alice, workflow):
    response = try_step(
        client_for(alice), workflow, definition(READ), "read", {"ticket": "hi", "count": 4}
    )

    page = response.content.decode()
    assert response.status_code == 200
    assert 'data-trial="ok"' in page
    assert "&quot;text&quot;: &quot;HI&quot;" in page
    assert "&quot;n&quot;: 8" in page
    assert "no run was started" in page
    assert not Run.objects.exists() and not Event.objects.exists()


def test_earlier_steps_outputs_come_from_the_sample_json(alice, workflow):
    draft = definition(READ, ECHO, edges=[{"source": "read", "target": "echo"}])

    response = try_step(client_for(alice), workflow, draft, "echo", {}, {"read": {"text": "X"}})

    assert 'data-trial="ok"' in response.content.decode()
    assert "&quot;read&quot;: {" in response.content.decode()


def test_a_branch_says_which_output_it_takes(alice, workflow):
    route = {
        "id": "route",
        "kind": "branch",
        "name": "Route",
        "config": {
            "conditions": [{"port": "big", "when": "{{ input.count > 10 }}"}],
            "default_port": "small",
        },
    }

    response = try_step(client_for(alice), workflow, definition(route), "route", {"count": 11})

    assert "takes big" in response.content.decode()


def test_an_error_is_shown_with_what_a_run_would_do(alice, workflow):
    broken = {**READ, "config": {"output": "{{ input.ticket.missing.deeper }}"}}

    response = try_step(client_for(alice), workflow, definition(broken), "read", {"ticket": "t"})

    page = response.content.decode()
    assert 'data-trial="failed"' in page
    assert "a run would not retry it" in page


def test_the_ssrf_guard_refuses_a_private_address(alice, workflow):
    call = {
        "id": "call",
        "kind": "http",
        "name": "Call",
        # The address comes from the input, so only the guard at call time can see it.
        "config": {"method": "GET", "url": "http://{{ input.host }}:9/"},
    }

    response = try_step(
        client_for(alice), workflow, definition(call), "call", {"host": "127.0.0.1"}
    )

    page = response.content.decode()
    assert 'data-trial="failed"' in page
    assert "loopback" in page


def test_a_secret_is_sent_but_never_shown(alice, acme, workflow, settings):
    value = canary("ghp_")
    vault.set_secret(acme, "TOKEN", value, alice)
    with CountingServer() as server:
        settings.VECTORBEA_HTTP_ALLOWLIST = [server.allow]
        call = {
            "id": "call",
            "kind": "http",
            "name": "Call",
            "config": {
                "method": "GET",
                "url": server.url("/echo"),
                "headers": {"Authorization": "Bearer {{ secrets.TOKEN }}"},
            },
        }
        response = try_step(client_for(alice), workflow, definition(call), "call")

    assert response.status_code == 200
    assert server.requests and server.requests[-1].headers["authorization"] == f"Bearer {value}"
    assert value not in response.content.decode()


def test_a_step_with_invalid_settings_is_not_tried(alice, workflow):
    route = {
        "id": "branch_1",
        "kind": "branch",
        "name": "Branch 1",
        "config": {"conditions": [{"port": "yes", "when": ""}]},
    }

    response = try_step(client_for(alice), workflow, definition(route), "branch_1")

    assert response.status_code == 400
    assert "Branch 1 → Condition 1 → When: enter a condition" in response.content.decode()


def test_a_delay_or_approval_has_nothing_to_try(alice, workflow):
    wait = {"id": "wait", "kind": "delay", "name": "Wait", "config": {"seconds": 5}}

    response = try_step(client_for(alice), workflow, definition(wait), "wait")

    assert response.status_code == 400
    assert "nothing to try" in response.content.decode()


def test_sample_input_that_is_not_a_json_object_is_refused_plainly(alice, workflow):
    url = reverse("workflow-test-step", args=["acme", workflow.id])

    bad_json = client_for(alice).post(url, {"step": "read", "input": "{ticket: 1}"})
    a_list = client_for(alice).post(url, {"step": "read", "input": "[1]"})

    assert bad_json.status_code == 400 and "The sample input" in bad_json.content.decode()
    assert a_list.status_code == 400
    assert "The sample input must be a JSON object" in a_list.content.decode()


def test_only_editors_and_above_may_try_a_step(acme, workflow):
    viewer = client_for(make_member("vera", acme, Role.VIEWER))
    approver = client_for(make_member("abe", acme, Role.APPROVER))
    editor = client_for(make_member("eddie", acme, Role.EDITOR))

    assert try_step(viewer, workflow, definition(READ), "read").status_code == 403
    assert try_step(approver, workflow, definition(READ), "read").status_code == 403
    assert try_step(editor, workflow, definition(READ), "read").status_code == 200


def test_another_workspaces_workflow_is_not_found(bob, workflow):
    url = reverse("workflow-test-step", args=["globex", workflow.id])

    response = client_for(bob).post(url, {"step": "read", "definition": json.dumps({})})

    assert response.status_code == 404


def test_it_needs_the_csrf_token(alice, workflow):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)

    response = try_step(client, workflow, definition(READ), "read")

    assert response.status_code == 403


def test_the_panel_offers_it_with_sample_values_to_editors_only(alice, acme, workflow):
    draft = definition(READ, ECHO, edges=[{"source": "read", "target": "echo"}])
    url = reverse("workflow-panel", args=["acme", workflow.id])
    viewer = client_for(make_member("vera", acme, Role.VIEWER))

    page = client_for(alice).post(url, {"definition": json.dumps(draft), "step": "echo"})
    seen = viewer.post(url, {"definition": json.dumps(draft), "step": "echo"})

    text = page.content.decode()
    assert "Test this step" in text
    assert "&quot;ticket&quot;: &quot;&quot;" in text and "&quot;count&quot;: 0" in text
    assert "&quot;read&quot;: null" in text
    assert "Test this step" not in seen.content.decode()


def test_an_llm_step_calls_with_the_workspaces_key_and_is_charged_to_the_ledger(
    alice, acme, workflow, settings
):
    key = canary("sk-ant-")
    vault.add_key(acme, "anthropic", key, "", alice)
    ask = {
        "id": "ask",
        "kind": "llm",
        "name": "Ask",
        "config": {
            "provider": "anthropic",
            "model": "claude-haiku-4-5",
            "prompt": "{{ input.ticket }}",
        },
    }
    with FakeLLM() as fake:
        settings.VECTORBEA_ANTHROPIC_BASE_URL = fake.anthropic_url
        fake.script(ok("It is urgent."))
        response = try_step(client_for(alice), workflow, definition(ask), "ask", {"ticket": "help"})

    page = response.content.decode()
    assert 'data-trial="ok"' in page and "It is urgent." in page
    headers = fake.requests[0].headers
    sent = headers.get("x-api-key") or headers.get("authorization", "").removeprefix("Bearer ")
    assert sent == key
    assert key not in page
    month = SpendLedger.objects.get(workspace=acme, scope=LedgerScope.MONTH)
    assert month.spent_usd > 0 and month.reserved_usd == 0
    assert "charged to this workspace’s budget" in page
    assert not Run.objects.exists()
