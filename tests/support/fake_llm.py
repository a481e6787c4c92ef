"""A scripted LLM provider for tests and benchmarks: an asyncio HTTP/1.1 server on
127.0.0.1 (its own event loop, on a thread of its own) that speaks OpenAI's
`/v1/chat/completions` and Anthropic's `/v1/messages`.

    with FakeLLM() as fake:
        fake.script(status(529), ok("Hello", usage=(12, 3)))
        ...step config {"provider": "openai", "base_url": fake.openai_url, ...}
        assert len(fake.requests) == 2

Each request takes the next scripted response (shared by both endpoints, in arrival
order); when the script is empty it gets `fake.default` (an ok answer unless changed).
Every request is recorded, headers and JSON body, in `fake.requests`. Worker processes
reach it through `base_url` in the step config or VECTORBEA_*_BASE_URL in their env.

It holds thousands of requests open at once on one thread (a benchmark's slow calls):
`in_flight` and `peak_in_flight` count the requests it has not answered yet, and
`abandoned` the ones whose client closed the connection before the answer (a cancelled
call).
"""

import asyncio
import contextlib
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import h11


@dataclass(frozen=True)
class Reply:
    kind: str  # "ok", "status", "stall", "malformed"
    text: str = ""
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
) -> Reply:
    """A successful answer; usage is (input_tokens, output_tokens); model defaults to the
    requested one."""
    return Reply("ok", text=text, usage=usage, model=model, finish_reason=finish_reason)


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


@dataclass(frozen=True)
class Request:
    path: str
    headers: dict[str, str]
    body: Any
    at: float = field(default_factory=time.monotonic)  # when it arrived

    @property
    def api(self) -> str:
        return "anthropic" if self.path.endswith("/messages") else "openai"


class FakeLLM:
    def __init__(self, delay_seconds: float = 0.0) -> None:
        self.default = ok()
        # Every answer waits this long first (a model's time to think), scripted or not.
        self.delay_seconds = delay_seconds
        self.requests: list[Request] = []
        self.in_flight = 0
        self.peak_in_flight = 0
        self.abandoned = 0
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

    def next_reply(self, request: Request) -> Reply:
        with self._lock:
            self.requests.append(request)
            return self._script.popleft() if self._script else self.default

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
                    reply = self.next_reply(request)
                    answered = await self._answer(conn, reader, writer, reply, request)
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
    ) -> bool:
        """Send `reply`; False when the client closed the connection first."""
        wait = self.delay_seconds + (reply.seconds if reply.kind == "stall" else 0.0)
        if reply.kind == "stall":
            reply = reply.then or self.default
        if wait > 0 and not await _wait_unless_closed(conn, reader, wait):
            return False
        if reply.kind == "malformed":
            code, raw = 200, b'{"choices": [ {"message": '
        elif reply.kind == "status":
            body = _error_body(reply, request)
            code, raw = reply.status, (body if isinstance(body, str) else json.dumps(body)).encode()
        else:
            render = _anthropic_body if request.api == "anthropic" else _openai_body
            code, raw = 200, json.dumps(render(reply, request)).encode()
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


def _openai_body(reply: Reply, request: Request) -> dict[str, Any]:
    model = reply.model or request.body.get("model", "fake")
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": reply.text},
                "finish_reason": reply.finish_reason or "stop",
            }
        ],
        "usage": {
            "prompt_tokens": reply.usage[0],
            "completion_tokens": reply.usage[1],
            "total_tokens": sum(reply.usage),
        },
    }


def _anthropic_body(reply: Reply, request: Request) -> dict[str, Any]:
    model = reply.model or request.body.get("model", "fake")
    return {
        "id": "msg_fake",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": reply.text}],
        "stop_reason": reply.finish_reason or "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": reply.usage[0], "output_tokens": reply.usage[1]},
    }


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
