"""The builder's problems and the run form speak in labels and say what to do: no paths, no
schema words, each problem once."""

import json

import pytest
from django.test import Client
from django.urls import reverse

from vectorbea.eventlog.models import Run
from vectorbea.workflows import commands
from vectorbea.workflows.checks import draft_issues, issues_json
from vectorbea.workflows.models import Workflow

SCHEMA_WORDS = ("is not of type", "should be non-empty", "is a required property", "[0]")


def branch(when: str = "") -> dict:
    return {
        "id": "branch_1",
        "kind": "branch",
        "name": "Branch 1",
        "config": {"conditions": [{"port": "yes", "when": when}], "default_port": "no"},
    }


def messages_of(definition: dict) -> list[str]:
    return [item["message"] for item in issues_json(draft_issues(definition), definition)]


def test_a_problem_names_the_step_and_the_field_by_their_labels():
    definition = {"steps": [branch("")], "edges": []}

    assert messages_of(definition) == ["Branch 1 → Condition 1 → When: enter a condition"]


def test_a_wrong_type_says_what_to_enter():
    llm = {
        "id": "ask",
        "kind": "llm",
        "name": "Ask the model",
        "config": {"provider": "openai", "model": "m", "prompt": "hi", "temperature": "hot"},
    }

    messages = messages_of({"steps": [llm], "edges": []})

    assert "Ask the model → Temperature: enter a number" in messages
    assert not [m for m in messages if any(word in m for word in SCHEMA_WORDS)]


def test_step_wide_problems_use_the_steps_names_and_retry_fields_their_labels():
    first = {**branch("{{ true }}"), "retry": {"maximum_attempts": 0}}
    lone = {"id": "noop_1", "kind": "noop", "name": "Placeholder"}

    messages = messages_of({"steps": [first, lone], "edges": []})

    assert "Branch 1 → Maximum attempts: enter a whole number from 1 to 100" in messages
    assert "Step “Placeholder” is not connected to any other step." in messages
    assert not [m for m in messages if "noop_1" in m or "branch_1" in m]


def test_a_delay_with_neither_setting_names_both_choices():
    delay = {"id": "wait", "kind": "delay", "name": "Wait", "config": {}}

    assert messages_of({"steps": [delay], "edges": []}) == [
        "Wait → Settings: fill in “Wait (seconds)” or “Wait until”"
    ]


def test_each_problem_is_listed_once():
    definition = {"steps": [branch("")], "edges": []}
    issues = draft_issues(definition)

    listed = issues_json(issues + issues, definition)

    assert [item["message"] for item in listed] == [
        "Branch 1 → Condition 1 → When: enter a condition"
    ]
    assert listed[0]["where"] == "Branch 1 → Condition 1 → When"
    assert listed[0]["path"] == "steps[0].config.conditions[0].when"  # where to put it


@pytest.fixture
def as_alice(alice) -> Client:
    client = Client()
    client.force_login(alice)
    return client


def test_the_autosave_answers_with_plain_problems(as_alice, acme, alice):
    workflow = commands.create_workflow(acme, alice, "Plain", {"steps": [branch("")]})
    url = reverse("workflow-draft", args=["acme", workflow.id])

    saved = as_alice.post(
        url,
        json.dumps({"definition": {"steps": [branch("")], "edges": []}, "revision": 0}),
        content_type="application/json",
    )

    assert [issue["message"] for issue in saved.json()["issues"]] == [
        "Branch 1 → Condition 1 → When: enter a condition"
    ]


# --- the run form --------------------------------------------------------------------------


def wait_workflow(acme, alice, prop: dict) -> Workflow:
    definition = {
        "input_schema": {
            "type": "object",
            "properties": {"message": {"type": "string"}, "wait_seconds": prop},
            "required": ["message", "wait_seconds"],
        },
        "steps": [{"id": "done", "kind": "noop", "name": "Done"}],
        "edges": [],
    }
    workflow = commands.create_workflow(acme, alice, "Wait", definition)
    commands.publish_draft(workflow, 0, alice)
    return workflow


def post_run(client: Client, workflow: Workflow, values: dict):
    url = reverse("workflow-run", args=["acme", workflow.id])
    form = client.get(url).context["form"]
    field = {name: key for key, name in form.input_names.items()}
    data = {field[name]: value for name, value in values.items()}
    return client.post(url, {**data, "idempotency_key": "k"}), field


def test_the_run_form_refuses_a_number_below_the_minimum_plainly(as_alice, acme, alice):
    workflow = wait_workflow(acme, alice, {"type": "number", "minimum": 0})

    response, field = post_run(as_alice, workflow, {"message": "hi", "wait_seconds": "-5"})

    assert response.status_code == 400
    assert response.context["form"].errors[field["wait_seconds"]] == ["Enter 0 or more."]
    assert not Run.objects.exists()


def test_the_run_form_tells_the_browser_the_limits(as_alice, acme, alice):
    workflow = wait_workflow(acme, alice, {"type": "integer", "minimum": 0, "maximum": 60})

    page = as_alice.get(reverse("workflow-run", args=["acme", workflow.id])).content.decode()

    assert 'type="number"' in page
    assert 'min="0"' in page and 'max="60"' in page and 'step="1"' in page
    assert "A whole number, 0 or more and 60 or less." in page


def test_a_missing_field_is_reported_once(as_alice, acme, alice):
    workflow = wait_workflow(acme, alice, {"type": "number"})

    response, field = post_run(as_alice, workflow, {"message": "", "wait_seconds": "3"})

    form = response.context["form"]
    assert form.errors[field["message"]] == ["This field is required."]
    assert form.non_field_errors() == []
    assert response.content.decode().count("This field is required.") == 1


def test_a_word_where_a_number_goes_is_refused_in_words(as_alice, acme, alice):
    workflow = wait_workflow(acme, alice, {"type": "number"})

    response, field = post_run(as_alice, workflow, {"message": "hi", "wait_seconds": "hot"})

    assert response.context["form"].errors[field["wait_seconds"]] == ["Enter a number."]


@pytest.mark.parametrize(
    ("prop", "value", "error"),
    [
        ({"type": "string", "format": "email"}, "nope", "Enter an email address"),
        ({"type": "string", "format": "uri"}, "example", "Enter a full address"),
        ({"type": "string", "format": "date"}, "31/12/2026", "Enter a date, like 2026-12-31."),
        ({"type": "string", "minLength": 3}, "ab", "Use at least 3 characters."),
        ({"type": "number", "exclusiveMinimum": 0}, "0", "Enter more than 0."),
    ],
)
def test_the_run_form_checks_formats_and_lengths(as_alice, acme, alice, prop, value, error):
    workflow = wait_workflow(acme, alice, prop)

    response, field = post_run(as_alice, workflow, {"message": "hi", "wait_seconds": value})

    assert response.status_code == 400
    assert response.context["form"].errors[field["wait_seconds"]][0].startswith(error)


def test_a_valid_input_starts_the_run(as_alice, acme, alice):
    workflow = wait_workflow(acme, alice, {"type": "number", "minimum": 0})

    response, _ = post_run(as_alice, workflow, {"message": "hi", "wait_seconds": "5"})

    assert response.status_code == 302
    assert Run.objects.get().workflow_id == workflow.id


def test_a_reference_to_a_later_step_names_both_steps_by_their_names():
    read = {"id": "read", "kind": "transform", "name": "Read", "config": {"output": "x"}}
    write = {
        "id": "write",
        "kind": "transform",
        "name": "Write it down",
        "config": {"output": "{{ steps.read.output }}"},
    }
    later = {"steps": [write, read], "edges": [{"source": "write", "target": "read"}]}

    (message,) = messages_of(later)

    assert message.startswith("Write it down → Output: It uses the output of step “Read”")
    assert "'read'" not in message
