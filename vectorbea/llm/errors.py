"""The one table from an HTTP status to an engine error class, used by the LLM step and
the HTTP step alike, plus Retry-After parsing and key redaction.

| status                         | error class                                      |
|--------------------------------|--------------------------------------------------|
| 429                            | rate_limited (retry_after_seconds from Retry-After) |
| 408, 500-599 (incl. 529)       | transient                                        |
| any other 4xx (400, 401, ...)  | permanent                                        |
| malformed provider JSON        | transient                                        |

And the one table of network failures (NETWORK_FAILURES), for every call out of a step: the
HTTP step, the LLM step, the SSRF guard's DNS lookup. The same failure gets the same class
and the same words, whoever made the call.
"""

import re
import socket
import ssl
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

from vectorbea.engine import ErrorClass, StepError

TRANSIENT_4XX = frozenset({408})
MAX_MESSAGE_CHARS = 1000


def error_class_for_status(status: int) -> ErrorClass | None:
    """The error class for an HTTP status; None for one that is not a failure (< 400)."""
    if status == 429:
        return ErrorClass.RATE_LIMITED
    if status >= 500 or status in TRANSIENT_4XX:
        return ErrorClass.TRANSIENT
    if status >= 400:
        return ErrorClass.PERMANENT
    return None


def retry_after_seconds(headers: Mapping[str, str], now: datetime | None = None) -> float | None:
    """Seconds to wait from `retry-after-ms`, or `Retry-After` (seconds or an HTTP-date)."""
    lowered = {key.lower(): value for key, value in headers.items()}
    try:
        return max(0.0, float(lowered["retry-after-ms"]) / 1000)
    except (KeyError, ValueError):
        pass
    value = lowered.get("retry-after", "").strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


# Things that look like credentials: provider key shapes and bearer tokens.
KEY_SHAPES = re.compile(
    r"(sk-[A-Za-z0-9_\-]{8,}|sk-ant-[A-Za-z0-9_\-]{8,}|Bearer\s+[A-Za-z0-9_\-\.=]{8,})"
)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with every secret in any of its encodings (those of
    vectorbea.keys.redaction.encodings: JSON, URL, hex, base64), any part of one 8+
    characters long that a provider echoed back (keys are often shown truncated:
    "sk-abc...xyz"), and anything shaped like a key, replaced by "[redacted]"."""
    from vectorbea.keys.redaction import encodings

    for secret in secrets:
        if not secret:
            continue
        for form in sorted(encodings(secret) | {secret}, key=len, reverse=True):
            text = text.replace(form, "[redacted]")
        if len(secret) >= 16:
            # Echoed fragments: a provider may print the first or last characters.
            for fragment in (secret[:12], secret[-8:]):
                text = text.replace(fragment, "[redacted]")
    return KEY_SHAPES.sub("[redacted]", text)


def clip(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True)
class NetworkFailure:
    error_class: ErrorClass
    # The plain message: {target} is the host (and port) called, {detail} the system's words.
    message: str


NETWORK_FAILURES: dict[str, NetworkFailure] = {
    "dns_not_found": NetworkFailure(
        ErrorClass.PERMANENT,
        "Could not reach {target}: no such host name (the DNS lookup found nothing). "
        "Check the address.",
    ),
    "dns_temporary": NetworkFailure(
        ErrorClass.TRANSIENT,
        "Could not reach {target}: the DNS lookup failed for now ({detail})",
    ),
    "refused": NetworkFailure(
        ErrorClass.TRANSIENT,
        "Could not reach {target}: the connection was refused (is the server running and "
        "listening on that port?)",
    ),
    "tls": NetworkFailure(
        ErrorClass.PERMANENT,
        "Could not reach {target}: the secure (TLS) connection failed ({detail})",
    ),
    "timeout": NetworkFailure(ErrorClass.TRANSIENT, "{target} did not answer in time"),
    "lost": NetworkFailure(
        ErrorClass.TRANSIENT,
        "Could not reach {target}: the connection closed before an answer came ({detail})",
    ),
    "unreachable": NetworkFailure(ErrorClass.TRANSIENT, "Could not reach {target}: {detail}"),
}

# What the system's words say when the exception's type does not (a transport may keep
# only the text of the error it wrapped).
_WORDS = (
    ("dns_temporary", ("temporary failure in name resolution",)),
    (
        "dns_not_found",
        (
            "name or service not known",
            "nodename nor servname",
            "no address associated",
            "getaddrinfo failed",
            "name does not resolve",
        ),
    ),
    ("tls", ("certificate_verify_failed", "[ssl", "ssl handshake")),
    ("refused", ("connection refused", "errno 111")),
    ("lost", ("connection reset", "server disconnected", "remoteprotocolerror", "broken pipe")),
)
TIMEOUT_NAMES = ("Timeout", "TimeoutError")
LOST_NAMES = ("RemoteProtocolError", "ReadError", "WriteError")


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """`exc`, what caused it, and what those were raised in, exception groups opened."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        current = todo.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        if isinstance(current, BaseExceptionGroup):
            todo.extend(current.exceptions)
        for linked in (current.__cause__, current.__context__):
            if linked is not None:
                todo.append(linked)


def network_failure_kind(exc: BaseException) -> str:
    """Which row of NETWORK_FAILURES a transport's exception is."""
    chain = list(_chain(exc))
    for current in chain:
        if isinstance(current, socket.gaierror):
            temporary = current.errno == socket.EAI_AGAIN
            return "dns_temporary" if temporary else "dns_not_found"
        if isinstance(current, ssl.SSLError | ssl.CertificateError):
            return "tls"
        if isinstance(current, ConnectionRefusedError):
            return "refused"
    for current in chain:
        names = [cls.__name__ for cls in type(current).__mro__]
        if isinstance(current, TimeoutError) or any(n.endswith(TIMEOUT_NAMES) for n in names):
            return "timeout"
    text = " ".join(str(current) for current in chain).lower()
    for kind, words in _WORDS:
        if any(word in text for word in words):
            return kind
    for current in chain:
        if isinstance(current, ConnectionError) or type(current).__name__ in LOST_NAMES:
            return "lost"
    return "unreachable"


DEFAULT_PORTS = {"http": 80, "https": 443}


def shown_target(host: str, port: int | None, scheme: str = "http") -> str:
    """host, or host:port when the port is not the scheme's own: how network failures and
    refusals name what was called."""
    shown = f"[{host}]" if ":" in host else host
    return shown if port in (None, DEFAULT_PORTS.get(scheme)) else f"{shown}:{port}"


def url_target(url: str) -> str:
    """shown_target of a URL ("" when it has no host)."""
    parts = urlsplit(url)
    if not parts.hostname:
        return ""
    try:
        port = parts.port
    except ValueError:
        port = None
    return shown_target(parts.hostname, port, parts.scheme.lower())


def network_error(
    exc: BaseException, target: str, secrets: Iterable[str] = (), kind: str | None = None
) -> StepError:
    """The StepError for a call to `target` (host, or host:port) that failed on the network
    with `exc`, from NETWORK_FAILURES; the system's words redacted of `secrets`."""
    kind = kind or network_failure_kind(exc)
    row = NETWORK_FAILURES[kind]
    words = next((str(e) for e in _chain(exc) if str(e)), "") or type(exc).__name__
    if isinstance(exc, socket.gaierror) and exc.strerror:
        words = exc.strerror
    detail = clip(redact(words, secrets), 200)
    return StepError(row.error_class, row.message.format(target=target, detail=detail))
