"""What the engine refuses to record, said plainly."""

import json
import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.hostile_json import hostile_texts, hostile_values
from vectorbea.engine import MAX_JSON_DEPTH, json_depth, json_problem
from vectorbea.engine.limits import (
    BadJson,
    nesting_of_text,
    parse_json,
    text_problem,
)


def test_text_that_postgres_cannot_store_is_named_with_where_it_is():
    assert text_problem({"a": ["ok", {"b": "x\x00y"}]}) == (
        "contains a NUL character (\\u0000) at a[1].b, which cannot be stored."
    )
    assert text_problem({"bad\x00key": 1}) == (
        "contains a NUL character (\\u0000), which cannot be stored."
    )
    assert text_problem(["\ud800"]) == (
        "contains an unpaired surrogate (\\ud800-\\udfff) at [0], which cannot be stored."
    )
    assert text_problem({"fine": ["é", "😀", 1, None]}) is None


def test_json_problem_reports_it_too():
    assert json_problem({"x": "\x00"}, "The output") == (
        "The output contains a NUL character (\\u0000) at x, which cannot be stored."
    )


# --- parse_json: the one reader of untrusted JSON --------------------------------------------


def refusal(raw: str | bytes, **limits: int) -> BadJson:
    with pytest.raises(BadJson) as caught:
        parse_json(raw, "The body", **limits)
    return caught.value


@pytest.mark.parametrize(
    ("raw", "message", "path"),
    [
        ('{"a": "x\\u0000y"}', "The body contains a NUL character (\\u0000) at a", "a"),
        ('{"a\\u0000": 1}', "The body contains a NUL character (\\u0000), which", ""),
        ('{"a": {"b\\u0000": 1}}', "The body contains a NUL character (\\u0000) at a,", "a"),
        ('{"a": ["\\ud800"]}', "contains an unpaired surrogate (\\ud800-\\udfff) at a[0]", "a[0]"),
        ('{"\\udfff": 1}', "contains an unpaired surrogate (\\ud800-\\udfff), which", ""),
        ('"\\u0000"', "The body contains a NUL character (\\u0000), which", ""),
    ],
)
def test_text_that_cannot_be_stored_is_refused_with_where_it_is(raw, message, path):
    refused = refusal(raw)

    assert message in refused.message
    assert refused.message.endswith("which cannot be stored.")
    assert refused.path == path


def test_a_bad_key_is_reported_at_its_object_so_the_path_itself_is_storable():
    refused = refusal('{"a\\u0000b": {"c": "\\u0000"}}')

    assert refused.path == ""
    assert "\x00" not in refused.message


def test_a_long_key_is_shortened_in_the_path():
    refused = refusal('{"' + "k" * 5000 + '": "\\u0000"}')

    assert refused.path == "k" * 40 + "…"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ('{"a": NaN}', "The body is not valid JSON: NaN is not a JSON number."),
        ('{"a": -Infinity}', "The body is not valid JSON: -Infinity is not a JSON number."),
        ('{"a": 1e999}', "The body holds too large a number: 1e999."),
        ('{"a": ' + "9" * 5000 + "}", "The body holds a number of 5,000 characters; the limit"),
        ('{"a": 0.' + "0" * 200 + "1}", "The body holds a number of 203 characters; the limit"),
        (
            '{"a": 1 "b": 2}',
            "The body is not valid JSON: expecting ',' delimiter at line 1, column",
        ),
        ('{"a": "\x01"}', "The body is not valid JSON: invalid control character at line 1,"),
        (b'{"a": "\xff"}', "The body is not UTF-8 text: byte 8 is not valid UTF-8."),
        (b'{"a": "\xed\xa0\x80"}', "The body is not UTF-8 text: byte 8 is not valid UTF-8."),
    ],
)
def test_numbers_syntax_and_encoding_are_refused_in_plain_words(raw, message):
    refused = refusal(raw)

    assert refused.message.startswith(message)
    assert refused.path is None


@pytest.mark.parametrize("depth", [65, 1_000, 5_000, 10_000, 1_000_000])
def test_nesting_past_the_limit_is_refused_before_parsing_at_any_depth(depth):
    for raw in ("[" * depth + "]" * depth, '{"a":' * depth + "1" + "}" * depth, "[" * depth):
        refused = refusal(raw, max_bytes=10_000_000)

        assert refused.message == (
            "The body is nested more than 64 levels deep; the limit is 64 levels."
        )


def test_nesting_up_to_the_limit_is_read():
    assert json_depth(parse_json("[" * 64 + "]" * 64, "The body")) == 64


def test_brackets_inside_strings_are_not_nesting():
    text = json.dumps({"a": "[" * 1000 + "{" * 1000, "b": ['\\"[[[', "\\\\"]})

    assert parse_json(text, "The body")["a"].startswith("[[[")
    assert nesting_of_text(text) == 2


def test_the_size_limit_is_in_utf8_bytes():
    assert refusal("[" + '"é",' * 300_000 + "1]").message == (
        "The body is larger than 1,000,000 bytes: it is 1,500,003 bytes."
    )
    assert parse_json(json.dumps(["x" * 100]), "The body", max_bytes=104) == ["x" * 100]
    assert refusal(json.dumps(["x" * 100]), max_bytes=103).message.startswith(
        "The body is larger than 103 bytes"
    )


def test_surrogate_pairs_and_escaped_backslashes_are_fine():
    value = parse_json('{"a": "\\ud83d\\ude00", "b": "\\\\u0000", "c": "\\\\ud800"}', "The body")

    assert value == {"a": "😀", "b": "\\u0000", "c": "\\ud800"}


@settings(max_examples=300, deadline=None)
@given(hostile_texts())
def test_parse_json_refuses_hostile_text_plainly_or_returns_storable_json(text):
    """Fuzz: whatever the text, parse_json answers with a value that is fine to store, or
    BadJson with a message that is itself storable text; never another exception."""
    try:
        value = parse_json(text, "The body", max_bytes=200_000)
    except BadJson as refused:
        assert refused.message.startswith("The body ")
        assert text_problem(refused.message) is None
        assert "recursion" not in refused.message
        return
    assert json_depth(value) <= MAX_JSON_DEPTH
    assert text_problem(value) is None
    assert json_problem(value, "The body", max_bytes=10_000_000) is None


@settings(max_examples=200, deadline=None)
@given(hostile_values())
def test_nesting_of_text_counts_exactly_what_the_parser_builds(value):
    text = json.dumps(value)

    assert nesting_of_text(text) == json_depth(value, stop_after=10_000)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet='[]{}"\\,:1 ', max_size=200))
def test_nesting_of_text_never_counts_less_than_the_parser_reaches(text):
    """For malformed text too: if the count is within a limit, the parser cannot go deeper
    than it (checked here with a limit the parser would hit)."""
    depth = nesting_of_text(text)
    try:
        value = json.loads(text)
    except ValueError:
        return
    assert json_depth(value, stop_after=10_000) <= depth


# The most memory parse_json may use per byte of its size limit, measured on the worst
# shapes of text (one small container for every 2-3 bytes: about 45 bytes per byte for
# "[[1]],[[1]],..."), with room for the allocator. Anything that grows faster than the text
# (a copy per level, a path string per value, a stack of every value) breaks it at once.
MEMORY_PER_BYTE = 64
LIMIT = 250_000  # bytes; the bound is per byte of whatever limit a caller passes


def hostile_at_the_limit() -> dict[str, str]:
    def many(unit: str, tail: str = "") -> str:
        return "[" + ",".join([unit] * ((LIMIT - 2 - len(tail)) // (len(unit) + 1))) + tail + "]"

    return {
        "empty objects": many("{}"),
        "one-element lists": many("[1]"),
        "64 levels, many times": many("[" * 63 + "]" * 63),
        "small objects": many('{"a":{"b":[]}}'),
        "floats": many("1.5"),
        "keys": "{" + ",".join(f'"{i}":0' for i in range(LIMIT // 10)) + "}",
        "a NUL after many lists": many("[[]]", ',"\\u0000"'),
        "deep past the limit": "[" * LIMIT,
        "over the size limit": "[" + "1," * LIMIT + "1]",
    }


@pytest.mark.parametrize("name", list(hostile_at_the_limit()))
def test_memory_stays_in_proportion_to_the_size_limit(name):
    text = hostile_at_the_limit()[name]

    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        try:
            parse_json(text, "The body", max_bytes=LIMIT)
        except BadJson:
            pass
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()

    assert peak < MEMORY_PER_BYTE * LIMIT, f"{peak:,} bytes for {name}"
