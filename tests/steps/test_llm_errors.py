"""The one error table, Retry-After parsing and key redaction."""

from datetime import UTC, datetime

import pytest

from vectorbea.engine import ErrorClass
from vectorbea.llm import error_class_for_status, redact, retry_after_seconds
from vectorbea.llm.errors import clip


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (429, ErrorClass.RATE_LIMITED),
        (500, ErrorClass.TRANSIENT),
        (502, ErrorClass.TRANSIENT),
        (503, ErrorClass.TRANSIENT),
        (504, ErrorClass.TRANSIENT),
        (529, ErrorClass.TRANSIENT),
        (408, ErrorClass.TRANSIENT),
        (400, ErrorClass.PERMANENT),
        (401, ErrorClass.PERMANENT),
        (403, ErrorClass.PERMANENT),
        (404, ErrorClass.PERMANENT),
        (422, ErrorClass.PERMANENT),
        (200, None),
        (302, None),
    ],
)
def test_each_status_maps_to_one_error_class(status, expected):
    assert error_class_for_status(status) == expected


def test_retry_after_in_seconds():
    assert retry_after_seconds({"Retry-After": "2"}) == 2.0
    assert retry_after_seconds({"retry-after": " 1.5 "}) == 1.5


def test_retry_after_as_an_http_date():
    now = datetime(2026, 11, 21, 12, 0, 0, tzinfo=UTC)
    headers = {"Retry-After": "Sat, 21 Nov 2026 12:00:30 GMT"}
    assert retry_after_seconds(headers, now=now) == 30.0


def test_retry_after_ms_wins_and_bad_values_are_ignored():
    assert retry_after_seconds({"retry-after-ms": "250", "Retry-After": "9"}) == 0.25
    assert retry_after_seconds({"Retry-After": "soon"}) is None
    assert retry_after_seconds({}) is None
    past = {"Retry-After": "Sat, 21 Nov 2020 12:00:30 GMT"}
    assert retry_after_seconds(past) == 0.0


def test_redact_removes_the_key_its_fragments_and_key_shaped_strings():
    key = "sk-live-0123456789abcdefghijklmn"
    text = (
        f"Incorrect API key provided: {key}. You sent {key[:12]}...{key[-8:]}; "
        "also sk-ant-api03-XYZXYZXYZXYZ and Bearer abcdefghijklmnop"
    )
    cleaned = redact(text, [key])
    assert key not in cleaned and key[:12] not in cleaned and key[-8:] not in cleaned
    assert "sk-ant-api03" not in cleaned and "abcdefghijklmnop" not in cleaned
    assert cleaned.startswith("Incorrect API key provided: [redacted]")


def test_clip_keeps_messages_short_and_on_one_line():
    assert clip("a\n  b") == "a b"
    assert len(clip("x" * 5000)) == 1000
