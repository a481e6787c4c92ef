"""A local HTTP server that counts and records every request, for the HTTP step's tests.

    with CountingServer() as server:
        url = server.url("/echo")
        ...
        assert [r.headers["idempotency-key"] for r in server.requests] == [key, key]

Routes (any method):
  /echo                   200 JSON: method, path, body, idempotency_key, count
  /hold                   the FIRST request is recorded, then held until `server.release`
                          is set (or it times out); later ones answer like /echo
  /status/<code>          that status, JSON {"error": ...}; ?retry_after=N adds Retry-After;
                          ?echo=<header> puts that request header's value in the body
  /redirect?to=<url>      302 to <url> (?code=301|303|307|308 for others)
  /bytes/<n>              n bytes of text
  /text                   200 text/plain "hello"
  /slow?seconds=N         waits N seconds, then answers like /echo
  /drip?bytes=N&interval=S  200 text, one byte every S seconds
Worker processes reach it through an allow-list entry for `server.allow` (127.0.0.1:<port>).
"""

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def idempotency_key(self) -> str | None:
        return self.headers.get("idempotency-key")


class CountingServer:
    def __init__(self, hold_seconds: float = 60) -> None:
        self.requests: list[Seen] = []
        self.release = threading.Event()
        self.hold_seconds = hold_seconds
        self._held_one = False
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def allow(self) -> str:
        """The VECTORBEA_HTTP_ALLOWLIST entry that lets steps call this server."""
        return f"127.0.0.1:{self.port}"

    def url(self, path: str = "/echo") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def seen(self, path_prefix: str = "") -> list[Seen]:
        with self._lock:
            return [r for r in self.requests if r.path.startswith(path_prefix)]

    def _record(self, seen: Seen) -> tuple[int, bool]:
        with self._lock:
            self.requests.append(seen)
            hold = seen.path.startswith("/hold") and not self._held_one
            if hold:
                self._held_one = True
            return len(self.requests), hold

    def start(self) -> "CountingServer":
        self._thread.start()
        return self

    def close(self) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> "CountingServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def _handler_for(server: CountingServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def handle_any(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            seen = Seen(self.command, self.path, headers, body)
            count, hold = server._record(seen)
            parts = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(parts.query).items()}
            path = parts.path
            if hold:
                server.release.wait(server.hold_seconds)
            if path.startswith("/status/"):
                code = int(path.rsplit("/", 1)[1])
                extra = {"Retry-After": query["retry_after"]} if "retry_after" in query else {}
                payload = {"error": f"status {code}"}
                if "echo" in query:
                    payload["echo"] = headers.get(query["echo"].lower(), "")
                return self.send_json(code, payload, extra)
            if path == "/redirect":
                code = int(query.get("code", 302))
                return self.send(code, b"", "text/plain", {"Location": query["to"]})
            if path.startswith("/bytes/"):
                size = int(path.rsplit("/", 1)[1])
                return self.send(200, b"x" * size, "text/plain")
            if path == "/text":
                return self.send(200, b"hello", "text/plain; charset=utf-8")
            if path == "/drip":
                return self.drip(int(query.get("bytes", 10)), float(query.get("interval", 0.1)))
            if path == "/slow":
                time.sleep(float(query.get("seconds", 1)))
            self.send_json(
                200,
                {
                    "method": self.command,
                    "path": self.path,
                    "body": body.decode(errors="replace"),
                    "idempotency_key": seen.idempotency_key,
                    "count": count,
                },
            )

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = handle_any

        def drip(self, size: int, interval: float) -> None:
            try:
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(size))
                self.end_headers()
                for _ in range(size):
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    time.sleep(interval)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def send_json(self, code: int, payload: Any, headers: dict[str, str] | None = None) -> None:
            self.send(code, json.dumps(payload).encode(), "application/json", headers)

        def send(
            self, code: int, raw: bytes, content_type: str, headers: dict[str, str] | None = None
        ) -> None:
            try:
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(raw)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(raw)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the caller is gone (a killed worker)

    return Handler
