"""The agent step's settings, tools and conversation, without a worker."""

import pytest

import tests.support.tools  # noqa: F401  (registers the Python tools named below)
from vectorbea.engine import transcript as tr
from vectorbea.llm.conversation import (
    Conversation,
    anthropic_messages,
    openai_messages,
    parsed_arguments,
)
from vectorbea.steps.agent import conversation_messages
from vectorbea.steps.tools import derived_schema
from vectorbea.workflows.checks import draft_issues


def agent(*tools, **config):
    step = {"provider": "openai", "model": "m", "task": "Do it", "tools": list(tools), **config}
    return {"steps": [{"id": "a", "kind": "agent", "config": step}], "edges": []}


def messages_of(definition):
    return [issue.message for issue in draft_issues(definition)]


@pytest.mark.django_db
def test_a_valid_agent_step_has_no_problems():
    http = {
        "type": "http",
        "name": "orders",
        "method": "GET",
        "url": "https://api.example.com/orders",
        "headers": {"Authorization": "Bearer {{ secrets.TOKEN }}"},
        "parameters": {"type": "object", "properties": {"id": {"type": "integer"}}},
    }
    assert messages_of(agent({"type": "python", "name": "record"}, http)) == []


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("tool", "said"),
    [
        ({"type": "python", "name": "no_such_tool"}, "No Python tool named 'no_such_tool'"),
        ({"type": "http", "name": "x", "url": "ftp://example.com"}, "needs an http or https URL"),
        (
            {"type": "http", "name": "x", "url": "https://e.com", "parameters": {"type": 7}},
            "not a valid JSON Schema",
        ),
        (
            {"type": "http", "name": "x", "url": "https://e.com", "parameters": {"type": "array"}},
            "must be a JSON Schema of an object",
        ),
    ],
)
def test_a_tool_that_cannot_be_offered_is_a_problem_before_publishing(tool, said):
    problems = messages_of(agent(tool))
    assert any(said in problem for problem in problems), problems


@pytest.mark.django_db
def test_a_tool_name_given_twice_is_a_problem():
    tool = {"type": "python", "name": "record"}
    assert any("used twice" in problem for problem in messages_of(agent(tool, tool)))


def test_a_tools_schema_comes_from_its_keyword_only_parameters():
    def lookup(args, ctx, *, order_id: int, note: str = "", flags: list = ()):
        return None

    assert derived_schema(lookup) == {
        "type": "object",
        "properties": {
            "order_id": {"type": "integer"},
            "note": {"type": "string"},
            "flags": {"type": "array"},
        },
        "required": ["order_id"],
        "additionalProperties": False,
    }
    assert derived_schema(lambda args, ctx: None) == {"type": "object"}


def test_arguments_that_are_not_a_json_object_are_kept_as_sent():
    assert parsed_arguments('{"a": 1}') == {"a": 1}
    assert parsed_arguments("{not json") == "{not json"
    assert parsed_arguments("[1]") == "[1]"


def conversation():
    t = tr.turn_completed(
        None,
        1,
        1,
        {"text": "Looking", "tool_calls": [{"id": "c1", "name": "f", "arguments": {"x": 1}}]},
        None,
    )
    t = tr.call_started(t, "c1", "f", {"x": 1}, "key")
    t = tr.call_failed(t, "c1", "f", "tool_error", "boom")
    return Conversation("m", conversation_messages("Task", t), system="Be brief")


def test_a_conversation_is_written_in_openais_shape():
    assert openai_messages(conversation()) == [
        {"role": "system", "content": "Be brief"},
        {"role": "user", "content": "Task"},
        {
            "role": "assistant",
            "content": "Looking",
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"x": 1}'}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "Error (tool_error): boom"},
    ]


def test_a_conversation_is_written_in_anthropics_shape():
    assert anthropic_messages(conversation()) == [
        {"role": "user", "content": [{"type": "text", "text": "Task"}]},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Looking"},
                {"type": "tool_use", "id": "c1", "name": "f", "input": {"x": 1}},
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "c1",
                    "content": "Error (tool_error): boom",
                    "is_error": True,
                }
            ],
        },
    ]
