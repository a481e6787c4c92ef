"""The one table from an HTTP status to an engine error class, used by the LLM step and
the HTTP step alike, plus Retry-After parsing and key redaction.

| status                         | error class                                      |
|--------------------------------|--------------------------------------------------|
| 429                            | rate_limited (retry_after_seconds from Retry-After) |
| 408, 500-599 (incl. 529)       | transient                                        |
| any other 4xx (400, 401, ...)  | permanent                                        |
| timeout, connection reset      | transient (mapped where the exception is caught) |
| malformed provider JSON        | transient                                        |
"""

import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from vectorbea.engine import ErrorClass

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
