"""The "http" step: call an HTTP API as a tool.

Its URL and headers may use workspace secrets (``Authorization: Bearer {{ secrets.TOKEN }}``):
the step renders its own settings, with their values, just before it sends
(vectorbea.steps.workspace_secrets).

Every request carries `Idempotency-Key: <ctx.idempotency_key>`, the same for every attempt
of the step (retries, crashes, a person's retry), so an API that honours it does the work
once. Redirects are followed here, up to 5, and each hop goes through the SSRF guard again
(the guarded transport checks and pins every connection). A hop to another origin carries
only the harmless headers of CROSS_ORIGIN_HEADERS. The exchange is awaited on the worker
process's event loop: no thread and no database connection wait for a slow API.
"""

import json
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urljoin

import httpx

from vectorbea import queues
from vectorbea.engine import ErrorClass, StepError
from vectorbea.llm.errors import (
    clip,
    error_class_for_status,
    network_error,
    redact,
    retry_after_seconds,
    url_target,
)
from vectorbea.steps import ssrf
from vectorbea.steps.registry import PendingCall, StepContext, StepKind, call_outcome, register
from vectorbea.steps.workspace_secrets import render_with_secrets

DEFAULT_MAX_RESPONSE_BYTES = 1_000_000
HARD_MAX_RESPONSE_BYTES = 10_000_000
MAX_REDIRECTS = 5
REDIRECTS = {301, 302, 303, 307, 308}
USER_AGENT = "Vectorbea"
# Response headers worth keeping in the output (the rest are noise in the event log).
KEPT_HEADERS = (
    "content-type",
    "content-length",
    "content-encoding",
    "etag",
    "last-modified",
    "location",
    "retry-after",
    "request-id",
    "x-request-id",
)
# The only request headers that follow a redirect to another origin (scheme, host or
# port): ones that carry no credential. Every other header, the step's own and any custom
# one (Authorization, Cookie, X-API-Key, Api-Key, X-Auth-Token, PRIVATE-TOKEN, ...), was
# meant for the origin the step names and is dropped.
CROSS_ORIGIN_HEADERS = frozenset(
    {
        "accept",
        "accept-encoding",
        "accept-language",
        "cache-control",
        "content-language",
        "content-type",
        "idempotency-key",
        "user-agent",
    }
)
SECRET_HINTS = ("auth", "key", "token", "secret", "cookie", "password")

CONFIG_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "method": {
            "type": "string",
            "enum": ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"],
            "default": "GET",
            "title": "Method",
            "description": "The HTTP method.",
        },
        "url": {
            "type": "string",
            "minLength": 1,
            "title": "URL",
            "description": "An http or https URL. Private and local addresses are refused "
            "unless VECTORBEA_HTTP_ALLOWLIST allows them.",
        },
        "headers": {
            "type": "object",
            "additionalProperties": {"type": "string"},
            "title": "Headers",
            "description": "Request headers. Idempotency-Key is always set by Vectorbea.",
        },
        "body": {
            "title": "Body",
            "description": "Sent as JSON, or as text when it is a string (see Body format).",
        },
        "body_format": {
            "type": "string",
            "enum": ["json", "text"],
            "title": "Body format",
            "description": "json: send the body as JSON. text: send it as it is. Default: "
            "text for a string, JSON for anything else.",
        },
        "timeout_seconds": {
            "type": "number",
            "exclusiveMinimum": 0,
            "maximum": 600,
            "default": 30,
            "title": "Timeout (seconds)",
            "description": "How long the whole exchange may take, redirects included.",
        },
        "max_response_bytes": {
            "type": "integer",
            "minimum": 1,
            "maximum": HARD_MAX_RESPONSE_BYTES,
            "default": DEFAULT_MAX_RESPONSE_BYTES,
            "title": "Maximum response size (bytes)",
            "description": "A longer answer fails the step. At most 10 MB.",
        },
        "expected_status": {
            "type": "array",
            "items": {"type": "integer", "minimum": 100, "maximum": 599},
            "title": "Expected status codes",
            "description": "Status codes that count as success. Default: any 2xx.",
        },
    },
    "required": ["url"],
    "additionalProperties": False,
}


def run_http(config: Mapping[str, Any], ctx: StepContext) -> PendingCall:
    """Prepare the request (its settings rendered with the workspace's secrets) and hand it
    to the worker runtime; `finish` turns the answer into the step's output."""
    config, secret_values = render_with_secrets(config, ctx, "http")
    return rendered_request(config, ctx, secret_values)


def rendered_request(
    config: Mapping[str, Any], ctx: StepContext, secret_values: list[str]
) -> PendingCall:
    """The request of HTTP settings already rendered (`secret_values`: the values of the
    secrets they hold, kept out of messages), as run_http hands it to the runtime."""
    method = config.get("method", "GET").upper()
    url = config["url"]
    headers = {
        name: value
        for name, value in config.get("headers", {}).items()
        if name.lower() != "idempotency-key"
    }
    headers["Idempotency-Key"] = ctx.idempotency_key
    if not any(name.lower() == "user-agent" for name in headers):
        headers["User-Agent"] = USER_AGENT
    content, content_type = _body(config)
    if content_type and not any(k.lower() == "content-type" for k in headers):
        headers["Content-Type"] = content_type
    limit = min(
        int(config.get("max_response_bytes", DEFAULT_MAX_RESPONSE_BYTES)), HARD_MAX_RESPONSE_BYTES
    )
    expected = set(config.get("expected_status") or ())
    secrets = [v for k, v in headers.items() if any(h in k.lower() for h in SECRET_HINTS)]
    secrets += secret_values
    if ctx.is_cancelled:
        raise StepError(ErrorClass.CANCELLED, "The step was cancelled before the request")
    timeout_seconds = float(config.get("timeout_seconds", 30))
    request = (method, url, headers, content)

    def finish(answered: Any) -> dict[str, Any]:
        status, response_headers, raw, final_url = call_outcome(answered, ctx)
        body = _decoded(raw, response_headers)
        ok = status in expected if expected else 200 <= status < 300
        if not ok:
            raise _status_error(status, response_headers, body, final_url, secrets)
        return {
            "status": status,
            "headers": {k: response_headers[k] for k in KEPT_HEADERS if k in response_headers},
            "body": body,
            "url": final_url,
        }

    return PendingCall(
        lambda: _exchange(request, limit, timeout_seconds, expected, secrets), finish
    )


async def _exchange(
    request: tuple[str, str, dict[str, str], bytes | None],
    limit: int,
    timeout_seconds: float,
    expected: set[int],
    secrets: list[str],
) -> tuple[int, dict[str, str], bytes, str]:
    """The whole exchange, redirects followed: (status, headers, body, final URL)."""
    method, url, headers, content = request
    deadline = time.monotonic() + timeout_seconds
    async with httpx.AsyncClient(
        transport=ssrf.GuardedAsyncTransport(),
        timeout=httpx.Timeout(timeout_seconds),
        follow_redirects=False,
    ) as client:
        for _hop in range(MAX_REDIRECTS + 1):
            sent = (method, url, headers, content)
            status, response_headers, raw = await _send(client, sent, limit, deadline, secrets)
            location = response_headers.get("location")
            if status in REDIRECTS and location and status not in expected:
                next_url = urljoin(url, location)
                if _origin(next_url) != _origin(url):
                    headers = {
                        k: v for k, v in headers.items() if k.lower() in CROSS_ORIGIN_HEADERS
                    }
                if status == 303 or (status in (301, 302) and method not in ("GET", "HEAD")):
                    method, content = "GET", None
                    headers = {k: v for k, v in headers.items() if k.lower() != "content-type"}
                url = next_url
                continue
            return status, response_headers, raw, url
    raise StepError(
        ErrorClass.PERMANENT,
        f"Too many redirects (more than {MAX_REDIRECTS}) from {_shown(url)}",
    )


def _body(config: Mapping[str, Any]) -> tuple[bytes | None, str | None]:
    if "body" not in config or config["body"] is None:
        return None, None
    body = config["body"]
    as_text = config.get("body_format", "text" if isinstance(body, str) else "json") == "text"
    if as_text:
        text = body if isinstance(body, str) else json.dumps(body)
        return text.encode(), "text/plain; charset=utf-8"
    return json.dumps(body).encode(), "application/json"


async def _send(
    client: httpx.AsyncClient,
    request: tuple[str, str, dict[str, str], bytes | None],
    limit: int,
    deadline: float,
    secrets: list[str],
) -> tuple[int, dict[str, str], bytes]:
    """Send one request and read at most `limit` bytes of the answer."""
    method, url, headers, content = request
    shown = _shown(url)
    try:
        built = client.build_request(method, url, headers=headers, content=content)
        response = await client.send(built, stream=True)
        try:
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                if time.monotonic() > deadline:
                    raise httpx.ReadTimeout("past timeout_seconds")
                size += len(chunk)
                if size > limit:
                    raise StepError(
                        ErrorClass.PERMANENT,
                        f"The response from {shown} is larger than {limit:,} bytes "
                        "(max_response_bytes)",
                    )
                chunks.append(chunk)
        finally:
            await response.aclose()
    except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
        raise StepError(ErrorClass.PERMANENT, f"Cannot call {shown}: {exc}") from None
    except httpx.TransportError as exc:  # timeouts too: the one table of network failures
        raise network_error(exc, url_target(url) or "the URL", secrets) from None
    headers_out = {k.lower(): v for k, v in response.headers.items()}
    return response.status_code, headers_out, b"".join(chunks)


def _shown(url: str) -> str:
    """The URL for messages: without its query string (which may carry a token)."""
    try:
        return str(httpx.URL(url).copy_with(query=None, fragment=None))
    except httpx.InvalidURL:
        return "the URL"


def _decoded(raw: bytes, headers: Mapping[str, str]) -> Any:
    content_type = headers.get("content-type", "").lower()
    charset = "utf-8"
    if "charset=" in content_type:
        charset = content_type.split("charset=", 1)[1].split(";")[0].strip() or "utf-8"
    try:
        text = raw.decode(charset, errors="replace")
    except LookupError:
        text = raw.decode("utf-8", errors="replace")
    media = content_type.split(";")[0].strip()
    if media == "application/json" or media.endswith("+json"):
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text


def _status_error(
    status: int, headers: Mapping[str, str], body: Any, url: str, secrets: list[str]
) -> StepError:
    error_class = error_class_for_status(status) or ErrorClass.PERMANENT
    snippet = body if isinstance(body, str) else json.dumps(body)
    detail = clip(redact(snippet, secrets), 300)
    message = f"{_shown(url)} answered HTTP {status}" + (f": {detail}" if detail else "")
    if error_class == ErrorClass.PERMANENT and status < 400:
        message += " (not one of the expected status codes)"
    return StepError(
        error_class,
        message,
        retry_after_seconds(headers) if error_class == ErrorClass.RATE_LIMITED else None,
    )


def _origin(url: str) -> tuple[str, str, int | None]:
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        return "", "", None
    return parsed.scheme, parsed.host, parsed.port


register(
    StepKind(
        name="http",
        label="HTTP request",
        config_schema=CONFIG_SCHEMA,
        handler=run_http,
        queue=queues.STEPS,
        # Rendered by run_http itself, as it calls out: the only moment secrets have values.
        render_config=False,
    )
)
