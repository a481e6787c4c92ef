"""A conversation with tools: one model turn of an agent, for both wire formats.

Messages are kept in one neutral shape and written in each API's own at the call:

    {"role": "user", "text": ...}
    {"role": "assistant", "text": ..., "tool_calls": [{"id", "name", "arguments"}]}
    {"role": "tool", "call_id": ..., "name": ..., "content": ..., "is_error": bool}

A turn is streamed when the caller gives `on_text` (read as the provider clients read a
stream, vectorbea.llm.providers), its words handed over as they come. A turn's answer (a Turn)
has the model's words and the tool calls it asks for, their arguments parsed from JSON
(kept as the raw text when they are not a JSON object: the agent gives the model that back
as a tool error). Failures leave as CallErrors, classed
as for the LLM step (the same SDK clients and error table, in vectorbea.llm.providers).
"""

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from vectorbea.engine import ErrorClass
from vectorbea.llm.providers import (
    NOT_SENT,
    Answer,
    Call,
    CallError,
    TextCallback,
    _mapped_errors,
    _shape_checked,
    anthropic_answer,
    anthropic_message,
    json_instruction,
    openai_answer,
    openai_completion,
    sdk_client,
)


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    parameters: dict[str, Any]  # a JSON Schema of an object


@dataclass(frozen=True)
class Conversation:
    model: str
    messages: Sequence[dict[str, Any]]
    system: str = ""
    tools: Sequence[Tool] = ()
    max_tokens: int = 1024
    temperature: float | None = None
    # When set, the final answer is asked for as JSON matching this schema.
    json_schema: dict[str, Any] | None = None


@dataclass(frozen=True)
class Turn:
    text: str
    model: str
    finish_reason: str | None
    input_tokens: int
    output_tokens: int
    tool_calls: tuple[dict[str, Any], ...] = field(default_factory=tuple)


async def converse(
    provider: str, conversation: Conversation, call: Call, on_text: TextCallback | None = None
) -> Turn:
    """One turn of `conversation` from `provider`; a CallError with its class on failure.
    With `on_text`, the turn is streamed and each piece of its text handed to `on_text`."""
    if provider == "openai":
        return await _openai(conversation, call, on_text)
    if provider == "anthropic":
        return await _anthropic(conversation, call, on_text)
    raise CallError(ErrorClass.PERMANENT, f"Unknown LLM provider {provider!r}", bill=NOT_SENT)


def parsed_arguments(raw: Any) -> Any:
    """A call's arguments as an object, or the raw text when it is not a JSON object."""
    if isinstance(raw, dict):
        return raw
    if isinstance(raw, str):
        try:
            value = json.loads(raw or "{}")
        except ValueError:
            return raw
        return value if isinstance(value, dict) else raw
    return raw


def _system(conversation: Conversation) -> str:
    parts = [conversation.system] if conversation.system else []
    if conversation.json_schema is not None:
        instruction = json_instruction(conversation.json_schema)
        parts.append(f"Your final answer, once you need no more tools: {instruction}")
    return "\n\n".join(parts)


def openai_messages(conversation: Conversation) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    if system := _system(conversation):
        messages.append({"role": "system", "content": system})
    for message in conversation.messages:
        role = message["role"]
        if role == "user":
            messages.append({"role": "user", "content": message["text"]})
        elif role == "assistant":
            said: dict[str, Any] = {"role": "assistant", "content": message.get("text") or None}
            if message.get("tool_calls"):
                said["tool_calls"] = [
                    {
                        "id": c["id"],
                        "type": "function",
                        "function": {"name": c["name"], "arguments": _arguments_text(c)},
                    }
                    for c in message["tool_calls"]
                ]
            messages.append(said)
        else:
            messages.append(
                {"role": "tool", "tool_call_id": message["call_id"], "content": message["content"]}
            )
    return messages


def anthropic_messages(conversation: Conversation) -> list[dict[str, Any]]:
    """Anthropic's turns alternate: a turn's tool results go in one user message."""
    messages: list[dict[str, Any]] = []
    for message in conversation.messages:
        role = message["role"]
        if role == "assistant":
            blocks: list[dict[str, Any]] = []
            if message.get("text"):
                blocks.append({"type": "text", "text": message["text"]})
            for c in message.get("tool_calls") or ():
                arguments = c["arguments"] if isinstance(c["arguments"], dict) else {}
                blocks.append(
                    {"type": "tool_use", "id": c["id"], "name": c["name"], "input": arguments}
                )
            messages.append(
                {"role": "assistant", "content": blocks or [{"type": "text", "text": ""}]}
            )
            continue
        if role == "user":
            block: dict[str, Any] = {"type": "text", "text": message["text"]}
        else:
            block = {
                "type": "tool_result",
                "tool_use_id": message["call_id"],
                "content": message["content"],
                "is_error": bool(message.get("is_error")),
            }
        if messages and messages[-1]["role"] == "user":
            messages[-1]["content"].append(block)
        else:
            messages.append({"role": "user", "content": [block]})
    return messages


def _arguments_text(call: dict[str, Any]) -> str:
    arguments = call.get("arguments")
    return arguments if isinstance(arguments, str) else json.dumps(arguments)


async def _openai(conversation: Conversation, call: Call, on_text: TextCallback | None) -> Turn:
    import openai

    client = sdk_client(openai.AsyncOpenAI, call)
    options: dict[str, Any] = {
        "model": conversation.model,
        "messages": openai_messages(conversation),
    }
    if urlsplit(call.base_url).hostname == "api.openai.com":
        options["max_completion_tokens"] = conversation.max_tokens
    else:
        options["max_tokens"] = conversation.max_tokens
    if conversation.temperature is not None:
        options["temperature"] = conversation.temperature
    if conversation.tools:
        options["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": tool.name,
                    "description": tool.description,
                    "parameters": tool.parameters,
                },
            }
            for tool in conversation.tools
        ]
    with _mapped_errors("openai", call.key, call.base_url):
        response = await openai_completion(client, options, on_text)
        with _shape_checked():
            return _turn(openai_answer(response, conversation.model))


async def _anthropic(conversation: Conversation, call: Call, on_text: TextCallback | None) -> Turn:
    import anthropic

    client = sdk_client(anthropic.AsyncAnthropic, call)
    options: dict[str, Any] = {
        "model": conversation.model,
        "max_tokens": conversation.max_tokens,
        "messages": anthropic_messages(conversation),
    }
    if system := _system(conversation):
        options["system"] = system
    if conversation.temperature is not None:
        options["extra_body"] = {"temperature": conversation.temperature}
    if conversation.tools:
        options["tools"] = [
            {"name": tool.name, "description": tool.description, "input_schema": tool.parameters}
            for tool in conversation.tools
        ]
    with _mapped_errors("anthropic", call.key, call.base_url):
        message = await anthropic_message(client, options, on_text)
        with _shape_checked():
            return _turn(anthropic_answer(message, conversation.model))


def _turn(answer: Answer) -> Turn:
    """A turn from the provider's answer, read as every call's answer is (providers), its
    tool calls' arguments parsed."""
    return Turn(
        text=answer.text,
        model=answer.model,
        finish_reason=answer.finish_reason,
        input_tokens=answer.input_tokens,
        output_tokens=answer.output_tokens,
        tool_calls=tuple(
            {"id": c.id, "name": c.name, "arguments": parsed_arguments(c.arguments)}
            for c in answer.tool_calls
        ),
    )
