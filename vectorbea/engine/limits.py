"""Size and depth limits for JSON values the engine records (step outputs, rendered configs).

A value over a limit is refused with a plain-language reason instead of crashing a worker
or bloating the event log.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

MAX_JSON_BYTES = 1_000_000
MAX_JSON_DEPTH = 64


def json_problem(
    value: Any, what: str, max_bytes: int = MAX_JSON_BYTES, max_depth: int = MAX_JSON_DEPTH
) -> str | None:
    """Why ``value`` may not be recorded as ``what`` ("The step's output"), or None if it may."""
    depth = json_depth(value, max_depth)
    if depth > max_depth:
        return (
            f"{what} is nested more than {max_depth} levels deep; the limit is {max_depth} levels."
        )
    try:
        size = len(json.dumps(value, allow_nan=False).encode("utf-8"))
    except (TypeError, ValueError, RecursionError) as exc:
        return f"{what} is not JSON: {exc}"[:500]
    text = text_problem(value)
    if text:
        return f"{what} {text}"
    if size > max_bytes:
        return f"{what} is {size:,} bytes of JSON; the limit is {max_bytes:,} bytes."
    return None


def json_depth(value: Any, stop_after: int = MAX_JSON_DEPTH) -> int:
    """How deeply lists and objects nest in ``value`` (a scalar is 0), without recursion;
    stops counting once past ``stop_after``."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, Mapping):
            children: Any = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        depth += 1
        deepest = max(deepest, depth)
        if deepest > stop_after:
            return deepest
        stack.extend((child, depth) for child in children)
    return deepest


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
    ("" for the value itself or its top-level keys), what is e.g. "a NUL character"."""
    stack: list[tuple[Any, str]] = [(value, "")]
    while stack:
        item, path = stack.pop()
        if isinstance(item, str):
            texts = [(item, path)]
        elif isinstance(item, Mapping):
            texts = [(key, path) for key in item if isinstance(key, str)]
            stack.extend((child, f"{path}.{key}".lstrip(".")) for key, child in item.items())
        elif isinstance(item, list | tuple):
            stack.extend((child, f"{path}[{index}]") for index, child in enumerate(item))
            continue
        else:
            continue
        for text, where in texts:
            if "\x00" in text:
                return where, "a NUL character (\\u0000)"
            if not text.isascii() and _has_lone_surrogate(text):
                return where, "an unpaired surrogate (\\ud800-\\udfff)"
    return None


def _has_lone_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False
