"""Hypothesis strategies for hostile JSON: what an attacker or a broken client sends to an
entry point. Text Postgres cannot store (NUL, unpaired surrogates) in strings and keys,
nesting far past any limit (balanced or not), numbers too large for a float or with
thousands of digits, NaN and Infinity, bytes that are not UTF-8, and plain junk.

`hostile_texts()` draws JSON text; `hostile_values(...)` draws a value that still has to be
serialised (for entry points that take the JSON inside a document of their own)."""

import json
from typing import Any

from hypothesis import strategies as st

# Characters that break storage or parsing, mixed with ordinary ones.
NASTY_CHARS = ["\x00", "\ud800", "\udbff", "\udc00", "\udfff", "😀", "é", '"', "\\", "\n", "a"]

nasty_text = st.lists(
    st.one_of(st.sampled_from(NASTY_CHARS), st.characters(codec=None)), max_size=12
).map("".join)

huge_numbers = st.one_of(
    st.integers(min_value=-(10**400), max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([2**64, -(2**63), 1e308, 5e-324]),
)

scalars = st.one_of(st.none(), st.booleans(), huge_numbers, nasty_text)


def hostile_values(max_leaves: int = 20) -> st.SearchStrategy[Any]:
    """JSON-shaped values whose leaves and keys are hostile (may hold NaN or Infinity)."""
    return st.recursive(
        scalars,
        lambda children: st.one_of(
            st.lists(children, max_size=4),
            st.dictionaries(nasty_text, children, max_size=4),
        ),
        max_leaves=max_leaves,
    )


def _dumped(value: Any, ensure_ascii: bool) -> str:
    try:
        return json.dumps(value, ensure_ascii=ensure_ascii)
    except ValueError:  # an int of more digits than Python will write
        return "1" * 5000


@st.composite
def _deep(draw: st.DrawFn) -> str:
    depth = draw(st.sampled_from([63, 64, 65, 100, 1_000, 5_000, 10_000, 100_000]))
    opener, closer = draw(st.sampled_from([("[", "]"), ('{"a":', "}"), ('[{"b":', "}]")]))
    inner = draw(st.sampled_from(["1", '"\\u0000"', "[]", ""]))
    closed = draw(st.booleans())
    return opener * depth + inner + (closer * depth if closed else "")


@st.composite
def _wrapped_deep(draw: st.DrawFn) -> str:
    """A deep value inside an ordinary object, where a run's input would be."""
    return '{"input": ' + draw(_deep()) + ', "x": 1}'


_numbers_text = st.sampled_from(
    [
        "1e999",
        "-1e999",
        "1E400",
        "9" * 5000,
        "-" + "9" * 400,
        "1" + "0" * 400 + ".5",
        "0." + "0" * 5000 + "1",
        "NaN",
        "Infinity",
        "-Infinity",
        "1e-999999999",
    ]
).map(lambda number: '{"n": ' + number + "}")

_escapes_text = st.sampled_from(
    [
        '{"a": "\\u0000"}',
        '{"\\u0000": 1}',
        '{"a": {"b\\u0000c": {"d": "\\u0000"}}}',
        '{"a": "\\ud800"}',
        '{"\\udc00": "x"}',
        '{"a": ["ok", "\\udfff\\ud800"]}',
        '{"a": "\\ud83d\\ude00"}',
        '{"a": "\\\\u0000"}',
        '{"a": "x", "a": "\\u0000"}',
        '{"' + "k" * 5000 + '\\u0000": 1}',
    ]
)


def hostile_texts() -> st.SearchStrategy[str]:
    """JSON text (or what claims to be): each entry point must refuse it plainly or take it."""
    return st.one_of(
        st.builds(_dumped, hostile_values(), st.booleans()),
        _deep(),
        _wrapped_deep(),
        _numbers_text,
        _escapes_text,
        st.text(max_size=50),
        st.text(alphabet='[]{}",:\\u0d8 ', max_size=80),
    )


def hostile_bodies() -> st.SearchStrategy[bytes]:
    """Raw request bodies: hostile JSON text as UTF-8, or bytes that are not UTF-8 at all."""
    return st.one_of(
        hostile_texts().map(lambda text: text.encode("utf-8", "surrogatepass")),
        st.sampled_from(
            [b'{"a": "\xed\xa0\x80"}', b'{"a": "\xff"}', b"\xfe\xff{}", b'{"a": "\xc0\x80"}']
        ),
        st.binary(max_size=40),
    )


def hostile_objects() -> st.SearchStrategy[str]:
    """Hostile JSON text that is still an object, so it reaches past "must be an object"."""
    return st.one_of(
        st.builds(
            _dumped,
            st.dictionaries(nasty_text, hostile_values(10), min_size=1, max_size=4),
            st.booleans(),
        ),
        _wrapped_deep(),
        _numbers_text,
        _escapes_text,
    )
