"""Known keys are replaced, in every obvious encoding, in log records and in events."""

import base64
import json
import logging
from urllib.parse import quote, quote_plus

import pytest

from tests.keys.support import assert_no_leak, canary
from vectorbea.engine import StepFailed
from vectorbea.keys import redaction
from vectorbea.keys.redaction import RedactKeys, redact, redact_events, remember


@pytest.fixture
def key():
    value = canary()
    remember(value)
    return value


def test_it_replaces_a_known_key_with_its_last_four(key):
    assert redact(f"auth failed for {key}!") == f"auth failed for [redacted …{key[-4:]}]!"


def test_it_leaves_text_without_a_known_key_alone(key):
    text = "nothing secret here: sk-proj-not-a-known-key"
    assert redact(text) is text or redact(text) == text


@pytest.mark.parametrize("offset", [0, 1, 2, 3, 7])
@pytest.mark.parametrize("encode", [base64.b64encode, base64.urlsafe_b64encode])
def test_it_finds_a_key_base64_encoded_inside_a_longer_string(key, offset, encode):
    blob = encode(b"u" * offset + f"user:{key}:tail".encode()).decode()
    text = f"Authorization: Basic {blob}"
    assert_no_leak(redact(text), key, "the redacted text")
    assert "[redacted" in redact(text)


def test_it_finds_json_escaped_and_url_encoded_forms():
    tricky = 'sk-quote"back\\slash/plus+and=amp&end'
    remember(tricky)
    for form in (json.dumps(tricky)[1:-1], quote(tricky, safe=""), quote_plus(tricky)):
        assert form in redaction.encodings(tricky)
        assert form not in redact(f"<<{form}>>")
    doubly = json.dumps({"body": json.dumps({"error": tricky})})
    assert tricky not in json.loads(json.loads(redact(doubly))["body"]).get("error", "")


@pytest.mark.parametrize(
    "encode",
    [
        lambda v: v.encode().hex(),
        lambda v: v.encode().hex().upper(),
        lambda v: f"0x{b'Bearer '.hex()}{v.encode().hex()}",  # inside a longer hex string
        lambda v: "".join(f"%{b:02X}" for b in v.encode()),
        lambda v: "".join(f"%{b:02x}" for b in v.encode()),
        lambda v: quote(v, safe="").lower(),
        lambda v: quote(v),
        lambda v: quote(quote(v, safe=""), safe=""),
    ],
    ids=["hex", "HEX", "hex-inside", "every-byte", "every-byte-lower", "lower", "slash", "twice"],
)
def test_it_finds_hex_and_every_url_encoding(encode):
    tricky = "sk-proj-slash/plus+eq=0123456789"
    remember(tricky)
    text = f"provider said: {encode(tricky)}."
    assert "[redacted …6789]" in redact(text), encode(tricky)
    assert_no_leak(redact(text), tricky, "the redacted text")


def test_short_values_are_not_treated_as_secrets():
    remember("abc")
    assert redact("abc abc") == "abc abc"


def test_events_with_a_known_key_are_rewritten_and_others_pass_through(key):
    clean = StepFailed("s0", 1, "permanent", "HTTP 401: bad key")
    leaky = StepFailed(
        "s0",
        1,
        "permanent",
        f"HTTP 401: {key} / {base64.b64encode(key.encode()).decode()} / {key.encode().hex()}",
        usage={"key_id": "k1", "echo": json.dumps({"k": key})},
    )
    first, second = redact_events([clean, leaky])
    assert first is clean
    assert isinstance(second, StepFailed)
    assert_no_leak(json.dumps(second.message), key, "the event message")
    assert_no_leak(json.dumps(second.usage), key, "the event usage")
    assert second.usage["key_id"] == "k1"
    assert f"[redacted …{key[-4:]}]" in second.message


def test_the_logging_filter_redacts_messages_arguments_and_tracebacks(key):
    records: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(self.format(record))

    handler = Collect()
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.addFilter(RedactKeys())
    logger = logging.getLogger("tests.keys.redaction")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        logger.debug("calling with %s", key)
        logger.info(f"json body {json.dumps({'key': key})}")
        logger.warning("header %r", {"Authorization": f"Bearer {key}"})
        try:
            raise RuntimeError(f"provider said {key}")
        except RuntimeError:
            logger.exception("step raised")
        logger.info("bad %s %s", "args")  # a broken call never raises from the filter
    finally:
        logger.removeHandler(handler)
    assert len(records) == 5
    assert_no_leak("\n".join(records), key, "log output")
    assert "RuntimeError" in records[3] and "[redacted" in records[3]


def test_the_settings_put_the_filter_on_the_console_handler():
    console = [
        handler
        for handler in logging.getLogger().handlers
        if isinstance(handler, logging.StreamHandler) and type(handler) is logging.StreamHandler
    ]
    assert console and all(
        any(isinstance(f, RedactKeys) for f in handler.filters) for handler in console
    )


def test_an_event_holding_a_key_with_quotes_and_backslashes_stays_valid():
    tricky = 'sk-"quoted"\\back-0123456789'
    remember(tricky)
    event = StepFailed(
        "s0", 1, "permanent", f"said {tricky}", usage={tricky: json.dumps({"k": tricky})}
    )
    [cleaned] = redact_events([event])
    text = json.dumps({"message": cleaned.message, "usage": cleaned.usage})
    assert tricky not in cleaned.message and json.dumps(tricky)[1:-1] not in text
    assert all(
        tricky not in key and tricky not in json.loads(v)["k"] for key, v in cleaned.usage.items()
    )
