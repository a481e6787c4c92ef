"""Provider adapters: one per wire format, each a function from a Prompt to an Answer.

"openai" speaks OpenAI's chat completions (OpenAI itself, and the servers that copy it:
Ollama, vLLM, llama.cpp); "anthropic" speaks Anthropic's messages API. Both use the
official SDK's async client with max_retries=0, awaited on a worker process's event loop
(workers.calls): the engine's RetryPolicy is the only thing that retries.
Every failure leaves as a CallError (a StepError) whose class comes from
vectorbea.llm.errors, saying what the failure means for the call's bill.

A caller that wants the words as they come gives `on_text`: the call is then streamed
(server-sent events, read by the SDK's own decoder), each piece of text is handed to
`on_text` as it arrives (on the event loop: it must not block), and the pieces are put
together into the message a call in one piece returns, built once as the SDK's object, so
the same Answer comes out. The events are read as plain JSON rather than through the SDKs'
stream helpers, which build and merge a typed object for every chunk: for a short answer
that is more than twice the CPU of the call itself (bench/RESULTS.md), and a worker holds a
thousand such calls at once. A stream that breaks off is an answer lost on the way,
classed and billed as one.

The SDKs are imported on first use, inside the attempt: together they take a second or two
to import, which a worker should spend under its lease heartbeat, not at boot of every
process that merely lists the step kinds.
"""

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx2
from django.conf import settings

from vectorbea.engine import ErrorClass, StepError
from vectorbea.llm.errors import (
    clip,
    error_class_for_status,
    network_error,
    network_failure_kind,
    redact,
    retry_after_seconds,
    url_target,
)

# What a failed call means for its bill (CallError.bill):
NOT_SENT = "not_sent"  # the request never reached the provider: nobody can have billed it
ANSWERED = "answered"  # the provider answered with an error status, which it does not bill
TIMED_OUT = "timed_out"  # sent, and no answer in time: the provider may have billed it
NO_ANSWER = "no_answer"  # sent, and the answer was lost or unreadable: it may have been billed

# Transport errors raised before a request is on the wire (httpx and httpx2 alike).
BEFORE_SENDING = frozenset({"ConnectError", "ConnectTimeout", "PoolTimeout", "UnsupportedProtocol"})


class CallError(StepError):
    """A failed provider call, and what the failure means for its bill (`bill`)."""

    def __init__(
        self,
        error_class: ErrorClass,
        message: str,
        retry_after_seconds: float | None = None,
        *,
        bill: str,
    ) -> None:
        super().__init__(error_class, message, retry_after_seconds)
        self.bill = bill


@dataclass(frozen=True)
class Prompt:
    model: str
    user: str
    system: str = ""
    temperature: float | None = None
    max_tokens: int = 1024
    # When set, the answer is asked for as JSON matching this schema.
    json_schema: dict[str, Any] | None = None
    # Turns after the user's message, as (role, text) with role "assistant" or "user": a
    # correction shows the model its refused answer and what was wrong with it.
    followups: tuple[tuple[str, str], ...] = ()

    def messages(self) -> list[dict[str, str]]:
        """The conversation after the system text, as both providers take it."""
        turns = [{"role": "user", "content": self.user}]
        return turns + [{"role": role, "content": text} for role, text in self.followups]


@dataclass(frozen=True)
class ToolCall:
    """A tool the model asked to call: `arguments` as the model wrote them (JSON text, not
    necessarily valid)."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class Answer:
    text: str
    model: str
    finish_reason: str | None
    input_tokens: int
    output_tokens: int
    tool_calls: tuple[ToolCall, ...] = ()
    # The SDK's final message object (a ChatCompletion or a Message), streamed or not.
    raw: Any = field(default=None, repr=False, compare=False)


TextCallback = Callable[[str], None]


@dataclass(frozen=True)
class Call:
    """How to reach the provider for one call. Its repr (and str) never shows the key."""

    key: str = field(repr=False)
    base_url: str
    timeout_seconds: float
    # A client of our own (one pinned by the SSRF guard, for a server a step chose); None:
    # the process's shared client for the installation's own provider URLs.
    http_client: httpx2.AsyncClient | None = None


# One client per event loop for the installation's provider URLs, on the SDKs' own aiohttp
# transport (openai.DefaultAioHttpClient, which both SDKs accept): aiohttp parses responses
# in C and keeps its connections without looking at each of them per request: with 2,000
# calls at once, less than half the CPU per call of httpx's own transport (the figures are
# in bench/RESULTS.md).
KEPT_ALIVE = 1024  # connections kept open between calls


def shared_client() -> httpx2.AsyncClient:
    """The running event loop's client for the installation's provider URLs: its
    connections are kept alive for the loop's later calls. A loop that ends (asyncio.run)
    closes it with `close_shared_client` (see `run_closing`)."""
    loop = asyncio.get_running_loop()
    client = getattr(loop, "_vectorbea_llm_client", None)
    if client is None:
        import openai

        limits = httpx2.Limits(
            max_connections=settings.VECTORBEA_CALLS_IN_FLIGHT,
            max_keepalive_connections=KEPT_ALIVE,
        )
        client = openai.DefaultAioHttpClient(limits=limits, timeout=None, follow_redirects=False)
        loop._vectorbea_llm_client = client  # type: ignore[attr-defined]
    return client


async def close_shared_client() -> None:
    """Close the running loop's shared client, if it made one (and forget the SDK clients
    made on it)."""
    loop = asyncio.get_running_loop()
    client = getattr(loop, "_vectorbea_llm_client", None)
    if client is not None:
        del loop._vectorbea_llm_client  # type: ignore[attr-defined]
        loop._vectorbea_sdk_clients = {}  # type: ignore[attr-defined]
        await client.aclose()


def run_closing(coroutine: Any) -> Any:
    """asyncio.run(coroutine) on a loop of its own that closes its shared client at the end
    (an aiohttp session left open when its loop ends is reported as a leak)."""

    async def closing() -> Any:
        try:
            return await coroutine
        finally:
            await close_shared_client()

    return asyncio.run(closing())


SDK_CLIENTS_KEPT = 256


def sdk_client(make: Callable[..., Any], call: Call) -> Any:
    """An SDK client for `call`: one per (SDK, key, URL, timeout) on the running loop, kept
    (a client is costly to build, and thousands of calls a second share a few), on the
    loop's shared client; a call with a client of its own gets an SDK client of its own."""
    options = {
        "api_key": call.key,
        "base_url": call.base_url,
        "max_retries": 0,
        "timeout": call.timeout_seconds,
    }
    if call.http_client is not None:
        return make(**options, http_client=call.http_client)
    loop = asyncio.get_running_loop()
    kept: dict[tuple[Any, ...], Any] | None = getattr(loop, "_vectorbea_sdk_clients", None)
    if kept is None:
        kept = loop._vectorbea_sdk_clients = {}  # type: ignore[attr-defined]
    key = (make, call.key, call.base_url, call.timeout_seconds)
    client = kept.get(key)
    if client is None:
        if len(kept) >= SDK_CLIENTS_KEPT:
            kept.clear()
        client = kept[key] = make(**options, http_client=shared_client())
    return client


def json_instruction(schema: dict[str, Any]) -> str:
    return (
        "Answer with JSON only: a single JSON value, no prose and no code fences, that is "
        f"valid against this JSON Schema:\n{json.dumps(schema, sort_keys=True)}"
    )


def _system_text(prompt: Prompt) -> str:
    parts = [prompt.system] if prompt.system else []
    if prompt.json_schema is not None:
        parts.append(json_instruction(prompt.json_schema))
    return "\n\n".join(parts)


def load_sdks() -> None:
    """Import the providers' SDKs now (they are imported at their first call otherwise):
    a worker does it at start, so that no call's deadline pays for the import, and the
    memory they take is the process's from the start, not its first calls'."""
    import anthropic  # noqa: F401
    import openai  # noqa: F401


async def complete_openai(
    prompt: Prompt, call: Call, on_text: TextCallback | None = None
) -> Answer:
    import openai

    client = sdk_client(openai.AsyncOpenAI, call)
    messages: list[dict[str, str]] = []
    if system := _system_text(prompt):
        messages.append({"role": "system", "content": system})
    messages += prompt.messages()
    options: dict[str, Any] = {"model": prompt.model, "messages": messages}
    # OpenAI's own API wants max_completion_tokens (its reasoning models refuse max_tokens);
    # the servers that copy its format know max_tokens.
    if urlsplit(call.base_url).hostname == "api.openai.com":
        options["max_completion_tokens"] = prompt.max_tokens
    else:
        options["max_tokens"] = prompt.max_tokens
    if prompt.temperature is not None:
        options["temperature"] = prompt.temperature
    if prompt.json_schema is not None:
        options["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "output", "schema": prompt.json_schema},
        }
    with _mapped_errors("openai", call.key, call.base_url):
        response = await openai_completion(client, options, on_text)
        with _shape_checked():
            return openai_answer(response, prompt.model)


async def openai_completion(
    client: Any, options: dict[str, Any], on_text: TextCallback | None = None
) -> Any:
    """The ChatCompletion for `options`: asked in one piece, or streamed (its usage
    included) with each piece of its text handed to `on_text` as it arrives."""
    from openai._streaming import SSEDecoder
    from openai.types.chat import ChatCompletion

    if on_text is None:
        return await client.chat.completions.create(**options)
    streamed = {**options, "stream": True, "stream_options": {"include_usage": True}}
    chunks, done = OpenAIChunks(), False
    async with client.chat.completions.with_streaming_response.create(**streamed) as response:
        async for event in SSEDecoder().aiter_bytes(response.http_response.aiter_bytes()):
            # Read on after [DONE] to the body's end, so that its connection is kept.
            done = done or event.data.startswith("[DONE]")
            if done:
                continue
            chunk = event.json()
            if isinstance(chunk, dict) and chunk.get("error"):
                raise StreamFailed(chunk["error"])
            with _shape_checked():
                if text := chunks.add(chunk):
                    on_text(text)
    return ChatCompletion.construct(**chunks.completion())


class OpenAIChunks:
    """A streamed chat completion's chunks (parsed JSON) put together into the completion a
    call in one piece returns: the first choice's text and tool calls (each call's name and
    arguments arrive in pieces, by index), its finish reason, and the usage the last chunk
    carries."""

    def __init__(self) -> None:
        self.head: dict[str, Any] = {}
        self.text: list[str] = []
        self.tool_calls: dict[int, dict[str, Any]] = {}
        self.finish_reason: str | None = None
        self.usage: dict[str, Any] | None = None

    def add(self, chunk: dict[str, Any]) -> str:
        """Take one chunk in; the text it adds ("" if none)."""
        if not self.head.get("model"):
            self.head = {key: chunk.get(key) for key in ("id", "created", "model")}
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        added = ""
        for choice in chunk.get("choices") or ():
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            if delta.get("content"):
                added += delta["content"]
            for piece in delta.get("tool_calls") or ():
                call = self.tool_calls.setdefault(
                    piece.get("index", 0),
                    {"id": "", "type": "function", "function": {"name": "", "arguments": ""}},
                )
                call["id"] = piece.get("id") or call["id"]
                call["type"] = piece.get("type") or call["type"]
                function = piece.get("function") or {}
                call["function"]["name"] += function.get("name") or ""
                call["function"]["arguments"] += function.get("arguments") or ""
            self.finish_reason = choice.get("finish_reason") or self.finish_reason
        if added:
            self.text.append(added)
        return added

    def completion(self) -> dict[str, Any]:
        if not self.head:
            raise MalformedAnswer("the stream ended before its message began")
        message = {
            "role": "assistant",
            "content": "".join(self.text),
            "tool_calls": [self.tool_calls[i] for i in sorted(self.tool_calls)] or None,
        }
        return {
            **self.head,
            "object": "chat.completion",
            "choices": [{"index": 0, "message": message, "finish_reason": self.finish_reason}],
            "usage": self.usage,
        }


def openai_answer(response: Any, model: str) -> Answer:
    """The Answer in a ChatCompletion (`model`: the one asked for, if it names none)."""
    choice = response.choices[0]
    return Answer(
        text=choice.message.content or "",
        model=response.model or model,
        finish_reason=choice.finish_reason,
        input_tokens=int(response.usage.prompt_tokens if response.usage else 0),
        output_tokens=int(response.usage.completion_tokens if response.usage else 0),
        tool_calls=tuple(
            ToolCall(c.id, c.function.name, c.function.arguments or "")
            for c in choice.message.tool_calls or ()
            if c.type == "function"
        ),
        raw=response,
    )


async def complete_anthropic(
    prompt: Prompt, call: Call, on_text: TextCallback | None = None
) -> Answer:
    import anthropic

    client = sdk_client(anthropic.AsyncAnthropic, call)
    options: dict[str, Any] = {
        "model": prompt.model,
        "max_tokens": prompt.max_tokens,
        "messages": prompt.messages(),
    }
    if system := _system_text(prompt):
        options["system"] = system
    if prompt.temperature is not None:
        # This SDK no longer names temperature (the newest models fix it); older models
        # still take it, and a model that refuses it answers 400, a permanent error.
        options["extra_body"] = {"temperature": prompt.temperature}
    with _mapped_errors("anthropic", call.key, call.base_url):
        message = await anthropic_message(client, options, on_text)
        with _shape_checked():
            return anthropic_answer(message, prompt.model)


async def anthropic_message(
    client: Any, options: dict[str, Any], on_text: TextCallback | None = None
) -> Any:
    """The Message for `options`: asked in one piece, or streamed with each piece of its
    text handed to `on_text` as it arrives."""
    from anthropic._streaming import SSEDecoder
    from anthropic.types import Message

    if on_text is None:
        return await client.messages.create(**options)
    events = AnthropicEvents()
    async with client.messages.with_streaming_response.create(**options, stream=True) as response:
        async for event in SSEDecoder().aiter_bytes(response.http_response.aiter_bytes()):
            if event.event in (None, "ping"):  # as the SDK's own stream
                continue
            if event.event == "error":
                try:
                    body = event.json()
                except ValueError:
                    body = {"message": event.data}
                raise StreamFailed(body.get("error", body) if isinstance(body, dict) else body)
            if not event.data:
                continue
            with _shape_checked():
                if text := events.add(event.json()):
                    on_text(text)
    return Message.construct(**events.message())


class AnthropicEvents:
    """A streamed message's events (parsed JSON) put together into the Message a call in one
    piece returns: message_start gives its head and input usage, each content block grows
    by its deltas (text, a tool call's input as JSON in pieces, thinking), message_delta
    gives the stop reason and the output usage."""

    def __init__(self) -> None:
        self.head: dict[str, Any] | None = None
        self.blocks: dict[int, dict[str, Any]] = {}
        self.pieces: dict[int, list[str]] = {}

    def add(self, event: dict[str, Any]) -> str:
        """Take one event in; the text it adds ("" if none)."""
        kind = event["type"]
        if kind == "message_start":
            self.head = {**event["message"], "content": []}
        elif kind == "content_block_start":
            self.blocks[event["index"]] = dict(event["content_block"])
            self.pieces[event["index"]] = []
        elif kind == "content_block_delta":
            delta, index = event["delta"], event["index"]
            if delta["type"] == "text_delta":
                self.pieces[index].append(delta["text"])
                return delta["text"]
            if delta["type"] == "input_json_delta":
                self.pieces[index].append(delta["partial_json"])
            elif delta["type"] == "thinking_delta":
                self.pieces[index].append(delta["thinking"])
            elif delta["type"] == "signature_delta":
                self.blocks[index]["signature"] = delta["signature"]
        elif kind == "message_delta" and self.head is not None:
            self.head.update({k: v for k, v in event["delta"].items() if k.startswith("stop_")})
            usage = {k: v for k, v in (event.get("usage") or {}).items() if v is not None}
            self.head["usage"] = {**(self.head.get("usage") or {}), **usage}
        return ""

    def message(self) -> dict[str, Any]:
        if self.head is None:
            raise MalformedAnswer("the stream ended before its message began")
        content = []
        for index in sorted(self.blocks):
            block, joined = self.blocks[index], "".join(self.pieces[index])
            if block.get("type") == "text":
                block["text"] = block.get("text", "") + joined
            elif block.get("type") == "tool_use" and joined:
                block["input"] = joined  # the model's own JSON text, as OpenAI's arguments
            elif block.get("type") == "thinking":
                block["thinking"] = block.get("thinking", "") + joined
            content.append(block)
        return {**self.head, "content": content}


def anthropic_answer(message: Any, model: str) -> Answer:
    """The Answer in a Message (`model`: the one asked for, if it names none); its input
    tokens count the cache's too, as Anthropic bills them."""
    usage = message.usage
    return Answer(
        text="".join(block.text for block in message.content if block.type == "text"),
        model=message.model or model,
        finish_reason=message.stop_reason,
        input_tokens=int(
            usage.input_tokens
            + (getattr(usage, "cache_creation_input_tokens", 0) or 0)
            + (getattr(usage, "cache_read_input_tokens", 0) or 0)
        ),
        output_tokens=int(usage.output_tokens),
        tool_calls=tuple(
            ToolCall(block.id, block.name, _input_text(block.input))
            for block in message.content
            if block.type == "tool_use"
        ),
        raw=message,
    )


def _input_text(value: Any) -> str:
    """A tool_use block's input as JSON text (the SDK hands it over parsed)."""
    return value if isinstance(value, str) else json.dumps(value)


class MalformedAnswer(ValueError):
    """The provider's answer parsed, but is not the shape its API promises."""


class StreamFailed(Exception):
    """The provider sent an error event in place of the rest of a streamed answer
    (Anthropic's `event: error`, an OpenAI-style `{"error": ...}` chunk)."""

    def __init__(self, error: Any) -> None:
        fields = error if isinstance(error, dict) else {"message": error}
        self.kind = str(fields.get("type") or fields.get("code") or "")
        self.detail = str(fields.get("message") or "no details")
        super().__init__(self.detail)


class _shape_checked:
    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: type | None, exc: BaseException | None, tb: Any) -> bool:
        if isinstance(exc, IndexError | AttributeError | TypeError | KeyError):
            raise MalformedAnswer(f"unexpected answer shape: {type(exc).__name__}: {exc}")
        return False


PROVIDERS: dict[str, Callable[[Prompt, Call, TextCallback | None], Awaitable[Answer]]] = {
    "openai": complete_openai,
    "anthropic": complete_anthropic,
}


def complete(
    provider: str, prompt: Prompt, call: Call, on_text: TextCallback | None = None
) -> Awaitable[Answer]:
    """Ask `provider` for an answer to `prompt` (await it on an event loop); a StepError
    with its class on failure. With `on_text`, the answer is streamed and each piece of its
    text handed to `on_text` as it arrives."""
    try:
        adapter = PROVIDERS[provider]
    except KeyError:
        message = f"Unknown LLM provider {provider!r}"
        raise CallError(ErrorClass.PERMANENT, message, bill=NOT_SENT) from None
    return adapter(prompt, call, on_text)


class _mapped_errors:
    """Turns what the SDKs raise into CallErrors (the same for both: their exception
    classes are parallel). Messages are redacted: provider error bodies can echo the key."""

    def __init__(self, provider: str, key: str, base_url: str = "") -> None:
        self.provider = provider
        self.key = key
        self.target = url_target(base_url) or provider

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: type | None, exc: BaseException | None, tb: Any) -> bool:
        if exc is None or isinstance(exc, CallError):
            return False
        error = self.step_error(exc)
        if error is None:
            return False  # not the provider's doing: a bug, left for the executor to log
        raise error from None

    def step_error(self, exc: BaseException) -> CallError | None:
        name = self.provider
        # The SSRF guard refuses a request before it is sent (raised as it is, or wrapped).
        cause = exc.__cause__ or exc.__context__
        for refusal in (exc, cause):
            if isinstance(refusal, StepError):
                return CallError(
                    refusal.error_class,
                    refusal.message,
                    refusal.retry_after_seconds,
                    bill=NOT_SENT,
                )
        if isinstance(exc, StreamFailed):  # mid-answer: part of it may have been billed
            rate_limited = "rate_limit" in exc.kind
            error_class = ErrorClass.RATE_LIMITED if rate_limited else ErrorClass.TRANSIENT
            detail = self.safe(f"{exc.detail} ({exc.kind})" if exc.kind else exc.detail)
            message = f"{name} stopped its answer with an error: {detail}"
            return CallError(error_class, message, bill=NO_ANSWER)
        if _is_sdk_error(exc, "APIStatusError"):
            status = exc.status_code
            error_class = error_class_for_status(status) or ErrorClass.TRANSIENT
            detail = self.safe(_error_detail(exc))
            return CallError(
                error_class,
                f"{name} answered HTTP {status}: {detail}",
                retry_after_seconds(exc.response.headers)
                if error_class == ErrorClass.RATE_LIMITED
                else None,
                bill=ANSWERED,
            )
        if _is_sdk_error(exc, "APITimeoutError") or _is_sdk_error(exc, "APIConnectionError"):
            # The one table of network failures, as for the HTTP step. The kind comes from
            # the whole chain: the aiohttp transport reports a refused connection or an
            # unknown host as a connect timeout, with the system's error as its cause.
            kind = network_failure_kind(cause or exc)
            timed_out = kind == "timeout"
            failed = network_error(cause or exc, self.target, [self.key], kind)
            if _before_sending(cause):
                bill = NOT_SENT
            else:
                bill = TIMED_OUT if timed_out else NO_ANSWER
            return CallError(failed.error_class, failed.message, bill=bill)
        if _is_transport_error(exc):  # a streamed answer broke off while it was read
            if _is_transport_error(exc, "TimeoutException"):
                return CallError(
                    ErrorClass.TRANSIENT, f"{name} did not answer in time", bill=TIMED_OUT
                )
            reason = self.safe(f"{type(exc).__name__}: {exc}")
            message = f"{name}'s answer broke off before its end ({reason})"
            return CallError(ErrorClass.TRANSIENT, message, bill=NO_ANSWER)
        # JSONDecodeError, pydantic's ValidationError, MalformedAnswer are ValueErrors.
        if _is_sdk_error(exc, "APIResponseValidationError") or isinstance(exc, ValueError):
            detail = self.safe(f"{type(exc).__name__}: {exc}")
            message = f"{name} sent a malformed answer ({detail})"
            return CallError(ErrorClass.TRANSIENT, message, bill=NO_ANSWER)
        if _is_sdk_error(exc, "OpenAIError") or _is_sdk_error(exc, "AnthropicError"):
            message = f"{name} call failed: {self.safe(str(exc))}"
            return CallError(ErrorClass.TRANSIENT, message, bill=NO_ANSWER)
        return None

    def safe(self, text: str) -> str:
        return clip(redact(text, [self.key]), 500)


def _before_sending(cause: BaseException | None) -> bool:
    """Whether the transport failed before the request was on the wire."""
    return cause is not None and any(
        cls.__name__ in BEFORE_SENDING and cls.__module__.startswith("httpx")
        for cls in type(cause).__mro__
    )


def _is_transport_error(exc: BaseException, name: str = "TransportError") -> bool:
    """Whether `exc` is httpx's (or httpx2's) `name` error: the SDKs wrap what the
    transport raises while sending, but not always what it raises while a stream is read."""
    return any(
        cls.__name__ == name and cls.__module__.startswith("httpx") for cls in type(exc).__mro__
    )


def _is_sdk_error(exc: BaseException, name: str) -> bool:
    """isinstance against an exception class of whichever SDKs are loaded (the one that
    raised `exc` is)."""
    for module in (sys.modules.get("openai"), sys.modules.get("anthropic")):
        cls = getattr(module, name, None) if module else None
        if cls is not None and isinstance(exc, cls):
            return True
    return False


def _error_detail(exc: Any) -> str:
    """The provider's own words: error.message from its JSON body, else the body text."""
    body = exc.body
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        if isinstance(error, str):
            return error
    try:
        return exc.response.text or exc.response.reason_phrase
    except Exception:  # a streamed body we cannot read: say less
        return exc.response.reason_phrase
