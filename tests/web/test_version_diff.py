"""Version history shows what changed in each setting: its old and its new value."""

import pytest
from django.test import Client
from django.urls import reverse

from vectorbea.workflows import commands
from vectorbea.workflows.diff import diff_definitions


def llm(**config) -> dict:
    base = {"provider": "openai", "model": "gpt-4o", "prompt": "Summarise {{ input.text }}"}
    return {"id": "ask", "kind": "llm", "name": "Ask", "config": {**base, **config}}


def definition(step: dict, **schema) -> dict:
    return {
        "input_schema": {"type": "object", "properties": {"text": {"type": "string"}}, **schema},
        "steps": [step],
        "edges": [],
    }


def values(old: dict, new: dict) -> list[tuple[str, str | None, str | None]]:
    return [(c.text, c.old, c.new) for c in diff_definitions(old, new)]


def test_a_changed_setting_shows_its_label_and_old_and_new_value():
    old, new = definition(llm()), definition(llm(model="gpt-4o-mini", temperature=0.2))

    assert values(old, new) == [
        ("Changed step “Ask” (ask): Model", "gpt-4o", "gpt-4o-mini"),
        ("Changed step “Ask” (ask): Temperature", "not set", "0.2"),
    ]


def test_retry_and_timeout_changes_name_their_fields():
    old = definition({**llm(), "retry": {"maximum_attempts": 3}})
    new = definition({**llm(), "retry": {"maximum_attempts": 5}, "timeout_seconds": 60})

    assert values(old, new) == [
        ("Changed step “Ask” (ask): Maximum attempts", "3", "5"),
        ("Changed step “Ask” (ask): Step timeout (seconds)", "not set", "60"),
    ]


def test_a_long_value_is_cut_short():
    old, new = definition(llm()), definition(llm(prompt="x" * 500))

    (change,) = diff_definitions(old, new)

    assert change.new == "x" * 159 + "…"


def test_an_input_field_change_shows_before_and_after():
    old = definition(llm())
    new = definition(llm(), required=["text"])

    (change,) = diff_definitions(old, new)

    assert change.text == "Changed input field “text”"
    assert change.old == '{"type": "string", "required": false}'
    assert change.new == '{"type": "string", "required": true}'


@pytest.mark.django_db
def test_the_history_page_shows_old_and_new_values_escaped(acme, alice):
    workflow = commands.create_workflow(acme, alice, "Summary", definition(llm()))
    commands.publish_draft(workflow, 0, alice)
    commands.save_draft(workflow, definition(llm(model="<b>new</b>")), 0, alice)
    commands.publish_draft(workflow, 1, alice)
    client = Client()
    client.force_login(alice)

    page = client.get(reverse("workflow-versions", args=["acme", workflow.id])).content.decode()

    assert '<del class="change-old" title="Before">gpt-4o</del>' in page
    assert '<ins class="change-new" title="After">&lt;b&gt;new&lt;/b&gt;</ins>' in page
