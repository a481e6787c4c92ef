"""A scripted LLM provider for tests: a threaded HTTP server on 127.0.0.1 that speaks
OpenAI's `/v1/chat/completions` and Anthropic's `/v1/messages`.

    with FakeLLM() as fake:
        fake.script(status(529), ok("Hello", usage=(12, 3)))
        ...step config {"provider": "openai", "base_url": fake.openai_url, ...}
        assert len(fake.requests) == 2

Each request takes the next scripted response (shared by both endpoints, in arrival
order); when the script is empty it gets `fake.default` (an ok answer unless changed).
Every request is recorded, headers and JSON body, in `fake.requests`. Worker processes
reach it through `base_url` in the step config or VECTORBEA_*_BASE_URL in their env.
"""

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


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
    def __init__(self) -> None:
        self.default = ok()
        self.requests: list[Request] = []
        self._script: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

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
        return self

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> "FakeLLM":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


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


def _handler_for(fake: FakeLLM) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            try:
                body = json.loads(raw or b"{}")
            except ValueError:
                body = raw.decode(errors="replace")
            request = Request(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            self.answer(fake.next_reply(request), request)

        def answer(self, reply: Reply, request: Request) -> None:
            if reply.kind == "stall":
                time.sleep(reply.seconds)
                return self.answer(reply.then or fake.default, request)
            if reply.kind == "malformed":
                return self.send(200, b'{"choices": [ {"message": ', {})
            if reply.kind == "status":
                body = _error_body(reply, request)
                raw = body if isinstance(body, str) else json.dumps(body)
                return self.send(reply.status, raw.encode(), reply.headers)
            render = _anthropic_body if request.api == "anthropic" else _openai_body
            self.send(200, json.dumps(render(reply, request)).encode(), reply.headers)

        def send(self, code: int, raw: bytes, headers: dict[str, str]) -> None:
            try:
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(raw)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (a stall past its timeout)

    return Handler
