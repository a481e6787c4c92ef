"""What the engine refuses to record, said plainly."""

from vectorbea.engine import json_problem
from vectorbea.engine.limits import text_problem


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
