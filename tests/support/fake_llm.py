"""A scripted LLM provider for tests and benchmarks: an asyncio HTTP/1.1 server on
127.0.0.1 (its own event loop, on a thread of its own) that speaks OpenAI's
`/v1/chat/completions` and Anthropic's `/v1/messages`.

    with FakeLLM() as fake:
        fake.script(status(529), ok("Hello", usage=(12, 3)))
        ...step config {"provider": "openai", "base_url": fake.openai_url, ...}
        assert len(fake.requests) == 2

Each request takes the next scripted response (shared by both endpoints, in arrival
order); when the script is empty it gets `fake.default` (an ok answer unless changed).
Every request is recorded, headers and JSON body (`tools`, the whole `messages`), in
`fake.requests`. Worker processes reach it through `base_url` in the step config or
VECTORBEA_*_BASE_URL in their env.

A reply can ask for tools, in each API's own shape (OpenAI `tool_calls` with
finish_reason "tool_calls"; Anthropic `tool_use` blocks with stop_reason "tool_use"):

    fake.script(calls(("lookup_order", {"id": 7}), ("refund", {"id": 7}), text="Checking"))

A request with `stream: true` is answered as the API streams (server-sent events: OpenAI
`chat.completion.chunk`s, with a last usage chunk when `stream_options.include_usage`;
Anthropic's message_start, content_block_*, message_delta, message_stop), text one word a
chunk, `chunk_delay` seconds apart: `ok("a b c", chunk_delay=0.05)`. `broken(...)` stops
such a stream after some chunks by closing the connection.

It holds thousands of requests open at once on one thread (a benchmark's slow calls):
`in_flight` and `peak_in_flight` count the requests it has not answered yet, and
`abandoned` the ones whose client closed the connection before the answer (a cancelled
call).
"""

import asyncio
import contextlib
import json
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any

import h11


@dataclass(frozen=True)
class ToolCall:
    name: str
    # A dict is sent as JSON; a string is sent as it is (malformed arguments, for a test).
    arguments: dict[str, Any] | str
    id: str | None = None  # None: "call_<request number>_<position>"


@dataclass(frozen=True)
class Reply:
    kind: str  # "ok", "status", "stall", "malformed"
    text: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    chunk_delay: float = 0.0  # seconds between a streamed answer's chunks
    cut_after: int | None = None  # a streamed answer's connection closes after this many chunks
    # A streamed answer sends the provider's error event (for `status`) after this many chunks.
    error_after: int | None = None
    usage: tuple[int, int] = (10, 5)
    model: str | None = None
    finish_reason: str | None = None
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    seconds: float = 0.0
    then: "Reply | None" = None


def ok(
    text: str = "Hello from the fake provider",
    usage: tuple[int, int] = (10, 5),
    model: str | None = None,
    finish_reason: str | None = None,
    chunk_delay: float = 0.0,
) -> Reply:
    """A successful answer; usage is (input_tokens, output_tokens); model defaults to the
    requested one; `chunk_delay` paces a streamed answer's chunks."""
    return Reply(
        "ok",
        text=text,
        usage=usage,
        model=model,
        finish_reason=finish_reason,
        chunk_delay=chunk_delay,
    )


def calls(
    *wanted: tuple[str, dict[str, Any] | str] | tuple[str, dict[str, Any] | str, str] | ToolCall,
    text: str = "",
    usage: tuple[int, int] = (10, 5),
    model: str | None = None,
    finish_reason: str | None = None,
    chunk_delay: float = 0.0,
) -> Reply:
    """An answer that calls tools: each `(name, arguments)` or `(name, arguments, id)`, after
    `text` if any. finish_reason defaults to each API's own ("tool_calls", "tool_use")."""
    tool_calls = tuple(call if isinstance(call, ToolCall) else ToolCall(*call) for call in wanted)
    return Reply(
        "ok",
        text=text,
        tool_calls=tool_calls,
        usage=usage,
        model=model,
        finish_reason=finish_reason,
        chunk_delay=chunk_delay,
    )


def broken(reply: Reply | str = "a b c d", after: int = 2) -> Reply:
    """A streamed answer whose connection closes after `after` chunks (its head counts
    as one); asked without streaming, the connection closes before any answer."""
    return replace(ok(reply) if isinstance(reply, str) else reply, cut_after=after)


def failing(reply: Reply | str = "a b c d", after: int = 2, code: int = 529) -> Reply:
    """A streamed answer that stops after `after` chunks (its head counts as one) with the
    provider's error event for status `code` (Anthropic's `event: error`, OpenAI's `error`
    object), as providers do when they fail mid-answer."""
    base = ok(reply) if isinstance(reply, str) else reply
    return replace(base, error_after=after, status=code)


def ok_json(obj: Any, **kwargs: Any) -> Reply:
    return ok(json.dumps(obj), **kwargs)


def status(code: int, headers: dict[str, str] | None = None, body: Any = None) -> Reply:
    """An error status with the provider's error body (or `body`, a dict or a string)."""
    return Reply("status", status=code, headers=dict(headers or {}), body=body)


def stall(seconds: float, then: Reply | None = None) -> Reply:
    """Say nothing for `seconds`, then send `then` (default: an ok answer)."""
    return Reply("stall", seconds=seconds, then=then or ok())


def malformed() -> Reply:
    """200 with a JSON content type and a body that is not JSON."""
    return Reply("malformed")


class _Cut(Exception):
    """The scripted reply closes the connection here."""


@dataclass(frozen=True)
class Request:
    path: str
    headers: dict[str, str]
    body: Any
    at: float = field(default_factory=time.monotonic)  # when it arrived

    @property
    def api(self) -> str:
        return "anthropic" if self.path.endswith("/messages") else "openai"

    @property
    def stream(self) -> bool:
        return isinstance(self.body, dict) and bool(self.body.get("stream"))

    @property
    def messages(self) -> list[dict[str, Any]]:
        return self.body.get("messages", []) if isinstance(self.body, dict) else []

    @property
    def tools(self) -> list[dict[str, Any]]:
        return self.body.get("tools", []) if isinstance(self.body, dict) else []

    @property
    def tool_names(self) -> list[str]:
        """The names of the tools offered, in either API's shape."""
        return [tool.get("name") or tool.get("function", {}).get("name") for tool in self.tools]


class FakeLLM:
    def __init__(self, delay_seconds: float = 0.0) -> None:
        self.default = ok()
        # Every answer waits this long first (a model's time to think), scripted or not.
        self.delay_seconds = delay_seconds
        self.requests: list[Request] = []
        self.in_flight = 0
        self.peak_in_flight = 0
        self.abandoned = 0
        # When each streamed answer's first word was on the wire (time.time()), by request
        # number: where a benchmark starts the clock of a word's way to a page.
        self.first_word_at: dict[int, float] = {}
        self._script: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._server: asyncio.AbstractServer | None = None
        self.port = 0
        self._thread = threading.Thread(target=self._serve, name="fake-llm", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def openai_url(self) -> str:
        return f"{self.url}/v1"

    @property
    def anthropic_url(self) -> str:
        return self.url

    def script(self, *replies: Reply) -> None:
        with self._lock:
            self._script.extend(replies)

    def next_reply(self, request: Request) -> tuple[Reply, int]:
        """The reply for `request`, and the request's number (from 0, in arrival order)."""
        with self._lock:
            self.requests.append(request)
            reply = self._script.popleft() if self._script else self.default
            return reply, len(self.requests) - 1

    def start(self) -> "FakeLLM":
        self._thread.start()
        self._ready.wait(10)
        return self

    def close(self) -> None:
        async def stop() -> None:
            if self._server is not None:
                self._server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        if self._loop.is_running():
            asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def __enter__(self) -> "FakeLLM":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def listen() -> None:
            self._server = await asyncio.start_server(
                self._connection, "127.0.0.1", 0, backlog=4096, limit=2**20
            )
            self.port = self._server.sockets[0].getsockname()[1]
            self._ready.set()

        self._loop.run_until_complete(listen())
        self._loop.run_forever()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h11.Connection(h11.SERVER)
        try:
            while True:
                request = await _read_request(conn, reader)
                if request is None:
                    return
                with self._lock:
                    self.in_flight += 1
                    self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
                try:
                    reply, number = self.next_reply(request)
                    answered = await self._answer(conn, reader, writer, reply, request, number)
                except _Cut:
                    return
                finally:
                    with self._lock:
                        self.in_flight -= 1
                if not answered:
                    with self._lock:
                        self.abandoned += 1
                    return
                if conn.our_state is h11.MUST_CLOSE:
                    return
                conn.start_next_cycle()
        except (ConnectionError, h11.ProtocolError, asyncio.IncompleteReadError):
            return
        except asyncio.CancelledError:  # the server is closing
            return
        finally:
            writer.close()

    async def _answer(
        self,
        conn: h11.Connection,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        reply: Reply,
        request: Request,
        number: int,
    ) -> bool:
        """Send `reply`; False when the client closed the connection first."""
        wait = self.delay_seconds + (reply.seconds if reply.kind == "stall" else 0.0)
        if reply.kind == "stall":
            reply = reply.then or self.default
        if wait > 0 and not await _wait_unless_closed(conn, reader, wait):
            return False
        if reply.kind == "ok" and reply.cut_after is not None and not request.stream:
            raise _Cut  # the connection closes before any answer
        if reply.kind in ("ok", "malformed") and request.stream:
            return await self._stream(conn, reader, writer, reply, request, number)
        if reply.kind == "malformed":
            code, raw = 200, b'{"choices": [ {"message": '
        elif reply.kind == "status":
            body = _error_body(reply, request)
            code, raw = reply.status, (body if isinstance(body, str) else json.dumps(body)).encode()
        else:
            render = _anthropic_body if request.api == "anthropic" else _openai_body
            code, raw = 200, json.dumps(render(reply, request, number)).encode()
        headers = [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(raw))),
            *reply.headers.items(),
        ]
        writer.write(conn.send(h11.Response(status_code=code, headers=headers)))
        writer.write(conn.send(h11.Data(data=raw)))
        writer.write(conn.send(h11.EndOfMessage()))
        try:
            await writer.drain()
        except ConnectionError:
            return False
        return True

    async def _stream(
        self,
        conn: h11.Connection,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        reply: Reply,
        request: Request,
        number: int,
    ) -> bool:
        """Send `reply` as server-sent events, `reply.chunk_delay` apart; False when the
        client closed the connection first."""
        if reply.kind == "malformed":  # an event whose JSON is cut short
            head = "event: message_start\n" if request.api == "anthropic" else ""
            events = [(head + 'data: {"choices": [ {"delta": \n\n', False)]
        elif request.api == "anthropic":
            events = _anthropic_events(reply, request, number)
        else:
            events = _openai_events(reply, request, number)
        headers = [
            ("Content-Type", "text/event-stream"),
            ("Cache-Control", "no-cache"),
            ("Transfer-Encoding", "chunked"),
            *reply.headers.items(),
        ]
        writer.write(conn.send(h11.Response(status_code=200, headers=headers)))
        for sent, (event, has_word) in enumerate(events):
            if reply.cut_after is not None and sent >= reply.cut_after:
                with contextlib.suppress(ConnectionError):
                    await writer.drain()
                raise _Cut
            if reply.error_after is not None and sent >= reply.error_after:
                error = _error_body(reply, request)
                event = _sse(error, "error") if request.api == "anthropic" else _sse(error)
                writer.write(conn.send(h11.Data(data=event.encode())))
                break
            if sent and reply.chunk_delay > 0:
                try:
                    await writer.drain()
                except ConnectionError:
                    return False
                if not await _wait_unless_closed(conn, reader, reply.chunk_delay):
                    return False
            writer.write(conn.send(h11.Data(data=event.encode())))
            if has_word and number not in self.first_word_at:
                try:
                    await writer.drain()
                except ConnectionError:
                    return False
                self.first_word_at[number] = time.time()
        writer.write(conn.send(h11.EndOfMessage()))
        try:
            await writer.drain()
        except ConnectionError:
            return False
        return True


async def _read_request(conn: h11.Connection, reader: asyncio.StreamReader) -> Request | None:
    """The next request on the connection, or None when the client is done with it."""
    head: h11.Request | None = None
    chunks: list[bytes] = []
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            data = await reader.read(65536)
            conn.receive_data(data)
            if not data and conn.their_state is not h11.SEND_BODY and head is None:
                return None
            continue
        if isinstance(event, h11.ConnectionClosed):
            return None
        if isinstance(event, h11.Request):
            head = event
        elif isinstance(event, h11.Data):
            chunks.append(bytes(event.data))
        elif isinstance(event, h11.EndOfMessage):
            assert head is not None
            raw = b"".join(chunks)
            try:
                body = json.loads(raw or b"{}")
            except ValueError:
                body = raw.decode(errors="replace")
            headers = {name.decode().lower(): value.decode() for name, value in head.headers}
            return Request(head.target.decode(), headers, body)


async def _wait_unless_closed(
    conn: h11.Connection, reader: asyncio.StreamReader, seconds: float
) -> bool:
    """Wait `seconds`; False as soon as the client closes the connection (bytes it sends
    meanwhile are kept for the connection's next request)."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        read = asyncio.ensure_future(reader.read(65536))
        try:
            done, _ = await asyncio.wait({read}, timeout=left)
        finally:
            if not read.done():
                read.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await read  # the reader is free again for the next request
        if not done:
            return True
        data = read.result()
        if not data:
            return False
        conn.receive_data(data)
    return True


def _call_id(reply: Reply, number: int, position: int) -> str:
    call = reply.tool_calls[position]
    return call.id or f"call_{number}_{position}"


def _arguments_text(call: ToolCall) -> str:
    if isinstance(call.arguments, str):
        return call.arguments
    return json.dumps(call.arguments)


def _arguments_object(call: ToolCall) -> Any:
    """Anthropic's `input` is an object; a string that is not JSON is sent as a string."""
    if not isinstance(call.arguments, str):
        return call.arguments
    try:
        return json.loads(call.arguments)
    except ValueError:
        return call.arguments


def _model(reply: Reply, request: Request) -> str:
    body = request.body if isinstance(request.body, dict) else {}
    return reply.model or body.get("model", "fake")


def _openai_finish(reply: Reply) -> str:
    return reply.finish_reason or ("tool_calls" if reply.tool_calls else "stop")


def _anthropic_stop(reply: Reply) -> str:
    return reply.finish_reason or ("tool_use" if reply.tool_calls else "end_turn")


def _openai_usage(reply: Reply) -> dict[str, int]:
    return {
        "prompt_tokens": reply.usage[0],
        "completion_tokens": reply.usage[1],
        "total_tokens": sum(reply.usage),
    }


def _openai_body(reply: Reply, request: Request, number: int) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.text}
    if reply.tool_calls:
        message["content"] = reply.text or None
        message["tool_calls"] = [
            {
                "id": _call_id(reply, number, position),
                "type": "function",
                "function": {"name": call.name, "arguments": _arguments_text(call)},
            }
            for position, call in enumerate(reply.tool_calls)
        ]
    return {
        "id": f"chatcmpl-fake-{number}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": _model(reply, request),
        "choices": [{"index": 0, "message": message, "finish_reason": _openai_finish(reply)}],
        "usage": _openai_usage(reply),
    }


def _anthropic_body(reply: Reply, request: Request, number: int) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if reply.text or not reply.tool_calls:
        content.append({"type": "text", "text": reply.text})
    for position, call in enumerate(reply.tool_calls):
        content.append(
            {
                "type": "tool_use",
                "id": _call_id(reply, number, position),
                "name": call.name,
                "input": _arguments_object(call),
            }
        )
    return {
        "id": f"msg_fake_{number}",
        "type": "message",
        "role": "assistant",
        "model": _model(reply, request),
        "content": content,
        "stop_reason": _anthropic_stop(reply),
        "stop_sequence": None,
        "usage": {"input_tokens": reply.usage[0], "output_tokens": reply.usage[1]},
    }


def words(text: str) -> list[str]:
    """`text` in the chunks a stream sends it in: each word with the spaces after it."""
    return re.findall(r"\s*\S+\s*", text) or ([text] if text else [])


def _pieces(text: str, size: int = 8) -> list[str]:
    """A tool call's arguments in the pieces a stream sends them in."""
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def _sse(data: Any, event: str | None = None) -> str:
    head = f"event: {event}\n" if event else ""
    body = data if isinstance(data, str) else json.dumps(data)
    return f"{head}data: {body}\n\n"


def _openai_events(reply: Reply, request: Request, number: int) -> list[tuple[str, bool]]:
    """The answer's server-sent events, each with whether it carries a word of text."""
    options = request.body.get("stream_options") or {}
    with_usage = isinstance(options, dict) and bool(options.get("include_usage"))
    head = {
        "id": f"chatcmpl-fake-{number}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": _model(reply, request),
    }
    if with_usage:
        head["usage"] = None

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> str:
        choice = {"index": 0, "delta": delta, "finish_reason": finish_reason}
        return _sse({**head, "choices": [choice]})

    events = [(chunk({"role": "assistant", "content": ""}), False)]
    events += [(chunk({"content": word}), True) for word in words(reply.text)]
    for position, call in enumerate(reply.tool_calls):
        start = {
            "index": position,
            "id": _call_id(reply, number, position),
            "type": "function",
            "function": {"name": call.name, "arguments": ""},
        }
        events.append((chunk({"tool_calls": [start]}), False))
        for piece in _pieces(_arguments_text(call)):
            delta = {"index": position, "function": {"arguments": piece}}
            events.append((chunk({"tool_calls": [delta]}), False))
    events.append((chunk({}, _openai_finish(reply)), False))
    if with_usage:
        events.append((_sse({**head, "choices": [], "usage": _openai_usage(reply)}), False))
    events.append((_sse("[DONE]"), False))
    return events


def _anthropic_events(reply: Reply, request: Request, number: int) -> list[tuple[str, bool]]:
    """The answer's server-sent events, each with whether it carries a word of text."""
    start = {
        "id": f"msg_fake_{number}",
        "type": "message",
        "role": "assistant",
        "model": _model(reply, request),
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": reply.usage[0], "output_tokens": 1},
    }
    events = [(_sse({"type": "message_start", "message": start}, "message_start"), False)]

    def block(index: int, content_block: dict[str, Any], deltas: list[dict[str, Any]]) -> None:
        opening = {"type": "content_block_start", "index": index, "content_block": content_block}
        events.append((_sse(opening, "content_block_start"), False))
        for delta in deltas:
            moved = {"type": "content_block_delta", "index": index, "delta": delta}
            events.append((_sse(moved, "content_block_delta"), delta["type"] == "text_delta"))
        closing = {"type": "content_block_stop", "index": index}
        events.append((_sse(closing, "content_block_stop"), False))

    index = 0
    if reply.text or not reply.tool_calls:
        deltas = [{"type": "text_delta", "text": word} for word in words(reply.text)]
        block(index, {"type": "text", "text": ""}, deltas)
        index += 1
    for position, call in enumerate(reply.tool_calls):
        opening = {
            "type": "tool_use",
            "id": _call_id(reply, number, position),
            "name": call.name,
            "input": {},
        }
        pieces = _pieces(_arguments_text(call))
        block(index, opening, [{"type": "input_json_delta", "partial_json": p} for p in pieces])
        index += 1
    ending = {
        "type": "message_delta",
        "delta": {"stop_reason": _anthropic_stop(reply), "stop_sequence": None},
        "usage": {"output_tokens": reply.usage[1]},
    }
    events.append((_sse(ending, "message_delta"), False))
    events.append((_sse({"type": "message_stop"}, "message_stop"), False))
    return events


ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
    529: "overloaded_error",
}


def _error_body(reply: Reply, request: Request) -> Any:
    if reply.body is not None:
        return reply.body
    kind = ERROR_TYPES.get(reply.status, "api_error")
    message = f"Scripted {reply.status}"
    if request.api == "anthropic":
        return {"type": "error", "error": {"type": kind, "message": message}}
    return {"error": {"message": message, "type": kind, "code": None}}
