"""A fuzz pass over the template renderer: hostile templates (NUL, lone surrogates, deep
nesting, huge numbers and sizes; every filter and test with hostile arguments) against
hostile data. Whatever it is given, a render gives a value or a TemplateProblem, never
another exception (a 500 on the page, a crashed step), the save-time check never raises, and
the memory one render takes stays under its byte budget plus one operation's working room."""

import tracemalloc
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vectorbea.steps.templating import (
    _ENV,
    FILTERS,
    TESTS,
    RenderLimits,
    TemplateProblem,
    render_config,
    static_problems,
    template_context,
    template_problems,
)

# A smaller budget than a worker's keeps each example quick; the bound is stated against it.
LIMITS = RenderLimits(seconds=0.5, steps=500_000, bytes=16 * 2**20)
# One operation may hold its inputs' printed form (up to ten characters per measured
# character for escapes, four bytes each) while its result is checked.
WORKING_ROOM = 48 * 2**20


def deep(levels: int) -> Any:
    value: Any = "bottom"
    for _ in range(levels):
        value = {"next": [value]}
    return value


CONTEXT = template_context(
    {
        "nul": "a\x00b" * 1000,
        "surrogate": "\ud800x\udfff",
        "huge": int("9" * 4000),
        "negative": -(2**4000),
        "float": 1.7976931348623157e308,
        "tiny": 5e-324,
        "deep": deep(30),
        "text": "z" * 900_000,
        "wide": "\u8a9e\U0001f600" * 100_000,
        "escapes": "\x00\x01\n\\'\"" * 100_000,
        "words": "ab " * 200_000,
        "numbers": list(range(5_000)),
        "rows": [{"k": i, "v": "x" * 10} for i in range(500)],
        "empty": {},
    },
    {"fetch": {"body": "hello", "items": [{"title": "x"}, {"title": "\x00"}]}},
)

ATOMS = [
    "input.nul",
    "input.surrogate",
    "input.huge",
    "input.negative",
    "input.float",
    "input.tiny",
    "input.deep",
    "input.text",
    "input.wide",
    "input.escapes",
    "input.words",
    "input.numbers",
    "input.rows",
    "input.empty",
    "input",
    "steps",
    "steps.fetch.output.items",
    "'\x00'",
    "'\ud800'",
    "'\\x00\\ud800'",
    "'ab '",
    "''",
    "'k'",
    "9" * 400,
    "1e308",
    "-1e308",
    "50000000",
    "-50000000",
    "1000000",
    "0",
    "-1",
    "2",
    "none",
    "true",
    "[]",
    "{}",
]
OPERATORS = ["+", "-", "*", "/", "//", "%", "**", "~", "==", "<", "in", "not in", "and", "or"]
METHODS = ["split", "rsplit", "splitlines", "replace", "join", "count", "lower", "get", "items"]
NAMES = [name for name in TESTS if name.isidentifier()]


def expressions() -> st.SearchStrategy[str]:
    atoms = st.sampled_from(ATOMS)

    def grow(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        args = st.lists(inner, max_size=3).map(", ".join)
        return st.one_of(
            st.tuples(inner, st.sampled_from(FILTERS)).map(lambda t: f"({t[0]})|{t[1]}"),
            st.tuples(inner, st.sampled_from(FILTERS), args).map(
                lambda t: f"({t[0]})|{t[1]}({t[2]})"
            ),
            st.tuples(inner, st.sampled_from(NAMES), args).map(
                lambda t: f"({t[0]}) is {t[1]}({t[2]})"
            ),
            st.tuples(inner, st.sampled_from(OPERATORS), inner).map(
                lambda t: f"({t[0]}) {t[1]} ({t[2]})"
            ),
            st.tuples(inner, st.sampled_from(METHODS), args).map(
                lambda t: f"({t[0]}).{t[1]}({t[2]})"
            ),
            st.tuples(inner, inner).map(lambda t: f"[{t[0]}, {t[1]}, {t[0]}]"),
            st.tuples(inner, inner).map(lambda t: f"{{'a': {t[0]}, 'b': {t[1]}}}"),
            st.tuples(inner, inner).map(lambda t: f"({t[0]})[{t[1]}]"),
            inner.map(lambda e: f"({e})[::-1]"),
            st.tuples(inner, inner, inner).map(lambda t: f"({t[0]}) if ({t[1]}) else ({t[2]})"),
        )

    return st.recursive(atoms, grow, max_leaves=6)


def nested() -> st.SearchStrategy[str]:
    levels = st.integers(min_value=1, max_value=200)
    return st.one_of(
        levels.map(lambda n: "{{ " + "(" * n + "1" + ")" * n + " }}"),
        levels.map(lambda n: "{{ " + "[" * n + "]" * n + " }}"),
        levels.map(lambda n: "{{ " + "not " * n + "1 }}"),
        levels.map(lambda n: "{{ " + "-" * n + "1 }}"),
        levels.map(lambda n: "{{ input.numbers" + "|reverse" * n + "|first }}"),
        levels.map(lambda n: "{{ 1" + " ** 2" * n + " }}"),
        levels.map(lambda n: "{% if true %}" * n + "x" + "{% endif %}" * n),
        levels.map(lambda n: "{{ input.deep" + ".next[0]" * n + " }}"),
    )


def filter_calls() -> st.SearchStrategy[str]:
    """One filter or test, with the most hostile values and arguments: sizes, repeated
    large parts, huge and negative numbers."""
    values = st.sampled_from(
        ["input.text", "[input.text] * 2", "input.numbers", "input.huge", "input.escapes"]
    )
    arguments = st.sampled_from(
        [
            "",
            "(50000000)",
            "(-50000000)",
            "(" + "9" * 400 + ")",
            "(input.text)",
            "(input.text, input.text)",
            "([input.numbers] * 40)",
            "(attribute='k')",
            "(indent=50000000)",
            "(start=[input.numbers] * 40)",
            "('upper')",
            "('divisibleby', 0)",
        ]
    )
    return st.one_of(
        st.tuples(values, st.sampled_from(FILTERS), arguments).map(
            lambda t: f"{{{{ ({t[0]})|{t[1]}{t[2]} }}}}"
        ),
        st.tuples(values, st.sampled_from(NAMES), arguments).map(
            lambda t: f"{{{{ ({t[0]}) is {t[1]}{t[2]} }}}}"
        ),
    )


def templates() -> st.SearchStrategy[str]:
    expression = expressions()
    pieces = st.one_of(
        st.sampled_from(["{{", "}}", "{%", "%}", "{#", "#}", "|", "(", "[", "\x00", "\ud800"]),
        st.characters(codec=None),
    )
    garbage = st.lists(pieces, max_size=40).map("".join)
    return st.one_of(
        filter_calls(),
        expression.map(lambda e: "{{ " + e + " }}"),
        expression.map(lambda e: "\x00\ud800 {{ " + e + " }} \udfff"),
        st.tuples(expression, expression).map(
            lambda t: "{% for x in " + t[0] + " %}{{ x }}{{ " + t[1] + " }}{% endfor %}"
        ),
        st.tuples(expression, expression).map(
            lambda t: "{% if " + t[0] + " %}{{ " + t[1] + " }}{% else %}-{% endif %}"
        ),
        nested(),
        garbage.map(lambda text: "{{ " + text),
        garbage,
    )


def render_bounded(template: str) -> tuple[int, Any]:
    """Render ``template`` in a config (and check it as saved); the peak memory allocated
    meanwhile, and what the render gave. Any exception but TemplateProblem fails the test."""
    definition = {"steps": [{"id": "a", "kind": "noop", "config": {"t": template}}]}
    tracemalloc.start()
    try:
        static_problems(template)
        template_problems(definition)
        try:
            outcome: Any = render_config({"t": template}, CONTEXT, limits=LIMITS)["t"]
        except TemplateProblem as exc:
            outcome = exc
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak, outcome


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(templates())
def test_any_template_renders_or_is_refused_plainly_within_its_memory(template: str) -> None:
    peak, outcome = render_bounded(template)

    assert peak < LIMITS.bytes + WORKING_ROOM
    if isinstance(outcome, TemplateProblem):
        assert outcome.message.startswith("Setting '")
        assert "Traceback" not in outcome.message


def test_every_filter_and_test_has_the_guard_in_front() -> None:
    # The sandbox wraps each one where it is built; one added there later is wrapped too.
    assert FILTERS and NAMES
    for function in [*_ENV.filters.values(), *_ENV.tests.values()]:
        assert getattr(function, "template_guard", False) is True
