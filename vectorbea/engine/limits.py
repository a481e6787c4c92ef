"""Limits on JSON: the one reader of untrusted JSON text (`parse_json`) and the check of
JSON values the engine records (`json_problem`: step outputs, rendered configs).

Every JSON entry point (the API's bodies, webhook deliveries, workflow import, draft saves,
run input from forms and the command line) reads its text with `parse_json`, so one set of
rules holds everywhere: a size limit, a nesting limit checked before the parser runs (so it
never recurses deeper than the limit), strict numbers (no NaN or Infinity, no overflowing
floats, no integers of thousands of digits), and no text Postgres cannot store (a NUL
character, an unpaired surrogate), in strings and in keys. What is refused is said plainly,
with where it is.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping
from itertools import accumulate
from typing import Any

from vectorbea.engine.errors import VectorbeaError

MAX_JSON_BYTES = 1_000_000
MAX_JSON_DEPTH = 64
MAX_NUMBER_CHARS = 100  # a number written with more characters is refused
MAX_KEY_IN_PATH = 40  # longer keys are shortened where a message names a path


class BadJson(VectorbeaError):
    """JSON text `parse_json` refuses. `message` says what is wrong, plainly; `path` says
    where, for a value that cannot be stored ("a.b[2]"; "" for the document itself or one
    of its top-level keys), and is None when the text as a whole is refused (its size,
    syntax, nesting or numbers)."""

    def __init__(self, message: str, path: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.path = path


def parse_json(
    raw: str | bytes,
    what: str,
    *,
    max_bytes: int = MAX_JSON_BYTES,
    max_depth: int = MAX_JSON_DEPTH,
) -> Any:
    """The value of untrusted JSON text, or BadJson naming what is wrong with it.

    `what` names the text in messages ("The request body", "The file"). Bytes must be
    UTF-8. Memory stays proportional to `max_bytes`: larger text is refused before it is
    decoded, and the nesting is counted without building anything."""
    size = len(raw) if isinstance(raw, bytes) else _utf8_length(raw)
    if size > max_bytes:
        raise BadJson(f"{what} is larger than {max_bytes:,} bytes: it is {size:,} bytes.")
    if isinstance(raw, bytes):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BadJson(
                f"{what} is not UTF-8 text: byte {exc.start + 1:,} is not valid UTF-8."
            ) from None
    else:
        text = raw
    if nesting_of_text(text) > max_depth:
        raise BadJson(_too_deep(what, max_depth))
    try:
        value = json.loads(
            text,
            parse_constant=_refuse_constant,
            parse_float=_checked_float,
            parse_int=_checked_int,
        )
    except json.JSONDecodeError as exc:
        reason = exc.msg.removesuffix(" at")  # "Invalid control character at"
        raise BadJson(
            f"{what} is not valid JSON: {reason[:1].lower()}{reason[1:]} "
            f"at line {exc.lineno}, column {exc.colno}."
        ) from None
    except _BadNumber as exc:
        raise BadJson(f"{what} {exc}") from None
    except RecursionError:  # not reached: the nesting is counted first
        raise BadJson(_too_deep(what, max_depth)) from None
    found = text_problem_at(value) if _may_hold_unstorable_text(text) else None
    if found is not None:
        path, reason = found
        at = f" at {path}" if path else ""
        raise BadJson(f"{what} contains {reason}{at}, which cannot be stored.", path)
    return value


def _utf8_length(text: str) -> int:
    if text.isascii():
        return len(text)
    return len(text.encode("utf-8", "surrogatepass"))


def _too_deep(what: str, max_depth: int) -> str:
    return f"{what} is nested more than {max_depth} levels deep; the limit is {max_depth} levels."


# A JSON string literal, escapes included, or an unterminated one up to the end (the parser
# stops there). Possessive, and matching at every opening quote, so the scan is linear.
_STRING = re.compile(r'"[^"\\]*+(?:\\.[^"\\]*+)*+(?:"|\\?\Z)', re.DOTALL)
_NOT_A_BRACKET = re.compile(r"[^\[\]{}]+")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


def nesting_of_text(text: str) -> int:
    """How deeply arrays and objects nest in JSON `text`, counted from its brackets outside
    string literals, without parsing it (so without recursion). For malformed text it may
    count more than a parser would reach before failing, never less."""
    if text.count("[") + text.count("{") == 0:
        return 0
    brackets = _NOT_A_BRACKET.sub("", _STRING.sub("", text))
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0)


class _BadNumber(ValueError):
    pass


def _refuse_constant(name: str) -> Any:
    raise _BadNumber(f"is not valid JSON: {name} is not a JSON number.")


def _checked_float(text: str) -> float:
    if len(text) > MAX_NUMBER_CHARS:
        raise _BadNumber(
            f"holds a number of {len(text):,} characters; the limit is {MAX_NUMBER_CHARS}."
        )
    value = float(text)
    if not math.isfinite(value):
        raise _BadNumber(f"holds too large a number: {text}.")
    return value


def _checked_int(text: str) -> int:
    if len(text) > MAX_NUMBER_CHARS:
        raise _BadNumber(
            f"holds a number of {len(text):,} characters; the limit is {MAX_NUMBER_CHARS}."
        )
    return int(text)


def json_problem(
    value: Any, what: str, max_bytes: int = MAX_JSON_BYTES, max_depth: int = MAX_JSON_DEPTH
) -> str | None:
    """Why ``value`` may not be recorded as ``what`` ("The step's output"), or None if it may."""
    depth = json_depth(value, max_depth)
    if depth > max_depth:
        return _too_deep(what, max_depth)
    try:
        text = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        return f"{what} is not JSON: {exc}"[:500]
    problem = text_problem(value) if _may_hold_unstorable_text(text) else None
    if problem:
        return f"{what} {problem}"
    size = len(text)  # ASCII: non-ASCII characters are written as escapes
    if size > max_bytes:
        return f"{what} is {size:,} bytes of JSON; the limit is {max_bytes:,} bytes."
    return None


def json_depth(value: Any, stop_after: int = MAX_JSON_DEPTH) -> int:
    """How deeply lists and objects nest in ``value`` (a scalar is 0), without recursion
    and in memory proportional to the depth; stops counting once past ``stop_after``."""
    children = _children(value)
    if children is None:
        return 0
    deepest = 1
    stack = [children]
    while stack:
        for _, child in stack[-1]:
            if type(child) in _SCALARS:
                continue
            children = _children(child)
            if children is not None:
                stack.append(children)
                deepest = max(deepest, len(stack))
                if deepest > stop_after:
                    return deepest
                break
        else:
            stack.pop()
    return deepest


_SCALARS = frozenset({str, int, float, bool, type(None)})


def _children(value: Any) -> Iterator[tuple[Any, Any]] | None:
    """(key or index, child) of a JSON object or array; None for anything else."""
    if type(value) is dict or isinstance(value, Mapping):
        return iter(value.items())
    if type(value) is list or isinstance(value, list | tuple):
        return enumerate(value)
    return None


def text_problem(value: Any) -> str | None:
    """Why the text in `value` (keys and strings, at any depth) cannot be stored: a NUL
    character (which Postgres refuses in JSON) or an unpaired UTF-16 surrogate (which is
    not Unicode text). None when it is fine."""
    found = text_problem_at(value)
    if found is None:
        return None
    path, reason = found
    at = f" at {path}" if path else ""
    return f"contains {reason}{at}, which cannot be stored."


def text_problem_at(value: Any) -> tuple[str, str] | None:
    """(where, what) for the first such text in `value`: where is a path like "a[1].b"
    ("" for the value itself or its top-level keys), what is e.g. "a NUL character". A path
    names only keys that are fine themselves (a bad key is reported at its object).

    Depth first, without recursion, in memory proportional to the depth."""
    if isinstance(value, str):
        reason = _text_reason(value)
        return ("", reason) if reason else None
    children = _children(value)
    if children is None:
        return None
    reason = _key_reason(value)
    if reason:
        return "", reason
    keys: list[Any] = []  # the path to the container whose children are on top of the stack
    stack = [children]
    while stack:
        for key, child in stack[-1]:
            kind = type(child)
            if kind is str:
                reason = _text_reason(child)
            elif kind in _SCALARS:
                continue
            elif isinstance(child, str):
                reason = _text_reason(child)
            else:
                children = _children(child)
                if children is None:
                    continue
                reason = _key_reason(child)
                if not reason:
                    keys.append(key)
                    stack.append(children)
                    break
            if reason:
                return _path([*keys, key]), reason
        else:
            stack.pop()
            if keys:
                keys.pop()
    return None


def _key_reason(container: Any) -> str | None:
    if isinstance(container, Mapping):
        for key in container:
            reason = _text_reason(key) if isinstance(key, str) else None
            if reason:
                return reason
    return None


# A NUL or a surrogate written as an escape (a surrogate pair is fine, but looks alike).
_SUSPECT_ESCAPE = re.compile(r"\\u(?:0000|[dD][89a-fA-F])")


def _may_hold_unstorable_text(json_text: str) -> bool:
    """False when JSON text cannot hold a NUL or an unpaired surrogate, so its value needs
    no walk; True when it may (the walk then says whether, and where)."""
    if _SUSPECT_ESCAPE.search(json_text):
        return True
    return not json_text.isascii() and _has_lone_surrogate(json_text)


def _text_reason(text: str) -> str | None:
    if "\x00" in text:
        return "a NUL character (\\u0000)"
    if not text.isascii() and _has_lone_surrogate(text):
        return "an unpaired surrogate (\\ud800-\\udfff)"
    return None


def _path(keys: list[Any]) -> str:
    parts = []
    for key in keys:
        if isinstance(key, int):
            parts.append(f"[{key}]")
        else:
            shown = key if len(key) <= MAX_KEY_IN_PATH else key[:MAX_KEY_IN_PATH] + "…"
            parts.append(f".{shown}")
    return "".join(parts).removeprefix(".")


def _has_lone_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False
