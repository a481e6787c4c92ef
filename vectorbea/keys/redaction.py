"""Replace known provider keys wherever they turn up: in log records and in events.

The known keys are the ones this process has decrypted (provider_key() remembers each one)
or received in a form. A key is replaced in its plain form and its obvious encodings
(JSON-escaped, url-encoded with either case of escapes, once or twice or every byte, hex in
either case, base64 and url-safe base64 at any alignment inside a longer encoded string)
by "[redacted …last4]".

With nothing known (a web process that never decrypts a key) every function here returns
its input untouched after one attribute read: the event append path pays nothing.
"""

import base64
import json
import logging
import re
import threading
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, quote_plus

from vectorbea.engine import Event, event_from_payload, event_to_payload

# Shorter values are not treated as secrets: redacting them would mangle ordinary text.
MIN_SECRET_CHARS = 8


class _Known:
    """The process-local set of secrets, compiled into one regex of all their forms."""

    def __init__(self) -> None:
        self.secrets: set[str] = set()
        self.replacement: dict[str, str] = {}
        self.pattern: re.Pattern[str] | None = None
        self.lock = threading.Lock()

    def add(self, secret: str) -> None:
        if len(secret) < MIN_SECRET_CHARS or secret in self.secrets:
            return
        with self.lock:
            replacement = dict(self.replacement)
            label = f"[redacted …{secret[-4:]}]"
            for form in encodings(secret):
                replacement.setdefault(form, label)
            forms = sorted(replacement, key=len, reverse=True)  # longest form wins
            self.pattern = re.compile("|".join(re.escape(form) for form in forms))
            self.replacement = replacement
            self.secrets = {*self.secrets, secret}


KNOWN = _Known()


def encodings(secret: str) -> set[str]:
    """`secret` and the forms it takes in JSON, URLs, hex and base64."""
    escaped = json.dumps(secret)[1:-1]
    raw = secret.encode()
    url_encoded = quote(secret, safe="")
    every_byte = "".join(f"%{byte:02X}" for byte in raw)
    forms = {
        secret,
        escaped,
        json.dumps(escaped)[1:-1],  # JSON inside a JSON string (an error body in a message)
        json.dumps(secret, ensure_ascii=False)[1:-1],
        url_encoded,
        _lower_escapes(url_encoded),  # %2f as well as %2F
        quote(secret),  # "/" left as it is
        quote_plus(secret, safe=""),
        quote(url_encoded, safe=""),  # encoded twice (a URL inside a query string)
        every_byte,  # every byte percent-encoded, unreserved characters too
        every_byte.lower(),
        raw.hex(),
        raw.hex().upper(),
    }
    for offset in range(3):
        # The characters that encode only the secret's bytes when it starts `offset` bytes
        # into a longer base64 string (e.g. "Basic " + b64("user:" + key)).
        padded = b"\0" * offset + raw + b"\0\0"
        start = -(-offset * 8 // 6)
        end = (offset + len(raw)) * 8 // 6
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            forms.add(encode(padded).decode()[start:end])
    return {form for form in forms if len(form) >= MIN_SECRET_CHARS}


def _lower_escapes(text: str) -> str:
    return re.sub(r"%[0-9A-F]{2}", lambda match: match.group(0).lower(), text)


def remember(secret: str) -> None:
    """Treat `secret` as known from now on, in this process."""
    KNOWN.add(secret)


def redact(text: str) -> str:
    """`text` with every known secret, in any of its encodings, replaced."""
    pattern = KNOWN.pattern
    if pattern is None or not text:
        return text
    replacement = KNOWN.replacement
    return pattern.sub(lambda match: replacement[match.group(0)], text)


def redact_events(events: Iterable[Event]) -> list[Event]:
    """The events to append, with any known secret in their payloads replaced. An event
    holding none is passed through as it is."""
    pattern = KNOWN.pattern
    if pattern is None:
        return list(events)
    cleaned = []
    for event in events:
        text = json.dumps(event_to_payload(event))
        if pattern.search(text) is None:
            cleaned.append(event)
            continue
        payload = _redacted(event_to_payload(event))
        cleaned.append(event_from_payload(type(event).__name__, event.schema_version, payload))
    return cleaned


def _redacted(value: Any) -> Any:
    """`value` (JSON-safe) with every string in it, keys included, redacted."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {redact(str(key)): _redacted(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_redacted(item) for item in value]
    return value


class RedactKeys(logging.Filter):
    """A logging filter that rewrites a record whose message, arguments, exception or
    stack text holds a known secret. Attach it to handlers (settings.LOGGING)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if KNOWN.pattern is None:
            return True
        try:
            self.clean(record)
        except Exception:  # a filter must never make a logging call raise
            record.msg, record.args, record.exc_info, record.exc_text = (
                "[a log message was dropped: it could not be checked for secrets]",
                None,
                None,
                None,
            )
        return True

    @staticmethod
    def clean(record: logging.LogRecord) -> None:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
