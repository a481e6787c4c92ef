"""Templated step configs: native values, text, missing references, injection attempts,
size limits, and the save-time check."""

import tracemalloc
from typing import Any

import pytest

from tests.engine.builders import KINDS
from vectorbea.engine import ErrorClass, StepError, validate_definition
from vectorbea.steps.templating import (
    MAX_RENDERED_CHARS,
    RENDER_LIMITS,
    RenderLimits,
    TemplateProblem,
    evaluate_condition,
    render_config,
    template_context,
    template_problems,
)

CONTEXT = template_context(
    {"ticket": 42, "priority": "high", "tags": ["a", "b"], "customer": {"name": "Ada"}},
    {
        "fetch": {"body": "hello", "count": 3, "items": [{"title": "x"}, {"title": "y"}]},
        "big": {"text": "z" * 900_000, "list": list(range(1000))},
    },
)


def render(value: Any, context: dict[str, Any] = CONTEXT) -> Any:
    return render_config({"value": value}, context)["value"]


# --- what renders to what -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ input.ticket }}", 42),
        ("  {{ steps.fetch.output.count }}  ", 3),
        ("{{ input.tags }}", ["a", "b"]),
        ("{{ input.customer }}", {"name": "Ada"}),
        ("{{ input.priority == 'high' }}", True),
        ("{{ steps.fetch.output.items|map(attribute='title')|list }}", ["x", "y"]),
        ("{{ steps.fetch.output.items|map(attribute='title') }}", ["x", "y"]),
        ("{{ {'id': input.ticket, 'tags': input.tags} }}", {"id": 42, "tags": ["a", "b"]}),
        ("{{ input.missing|default('none') }}", "none"),
        ("{{ steps['fetch'].output.body|upper }}", "HELLO"),
        ("{{ input.tags|length }}", 2),
    ],
)
def test_a_string_that_is_one_expression_renders_to_its_value(template: str, expected: Any) -> None:
    assert render(template) == expected


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("Ticket {{ input.ticket }}", "Ticket 42"),
        ("{{ input.ticket }} and {{ steps.fetch.output.count }}", "42 and 3"),
        ("{{ input.customer|tojson }}!", '{"name": "Ada"}!'),
        ("{% for t in input.tags %}[{{ t }}]{% endfor %}", "[a][b]"),
        ("{% if input.priority == 'high' %}urgent{% else %}normal{% endif %}", "urgent"),
        ("{{ steps.fetch.output.items|map(attribute='title')|join(', ') }}", "x, y"),
        ("{{ 'Hi ' ~ input.customer.name }}", "Hi Ada"),
        ("no template here", "no template here"),
    ],
)
def test_other_strings_render_to_text(template: str, expected: str) -> None:
    assert render(template) == expected


def test_it_renders_through_nested_objects_and_lists() -> None:
    config = {
        "url": "https://x.test/{{ input.ticket }}",
        "body": {"items": ["{{ steps.fetch.output.count }}", {"n": "{{ input.tags }}"}], "k": 1},
        "flag": True,
    }

    assert render_config(config, CONTEXT) == {
        "url": "https://x.test/42",
        "body": {"items": [3, {"n": ["a", "b"]}], "k": 1},
        "flag": True,
    }


def test_a_key_named_like_a_method_is_read_as_data() -> None:
    context = template_context({"items": [1, 2], "keys": "k"}, {})

    assert render("{{ input.items }}", context) == [1, 2]
    assert render("{{ input.keys }}", context) == "k"


def test_conditions_follow_plain_truthiness_and_false_text() -> None:
    assert evaluate_condition("{{ input.priority == 'high' }}", CONTEXT, "when") is True
    assert evaluate_condition("{{ input.priority == 'low' }}", CONTEXT, "when") is False
    assert evaluate_condition("{{ input.tags|length > 5 }}", CONTEXT, "when") is False
    assert evaluate_condition("false", CONTEXT, "when") is False
    assert evaluate_condition("{{ 'no' }}", CONTEXT, "when") is False
    assert evaluate_condition("{{ input.tags }}", CONTEXT, "when") is True


# --- references that do not exist ---------------------------------------------------------------


@pytest.mark.parametrize(
    "template",
    ["{{ input.nope }}", "{{ steps.ghost.output }}", "Hi {{ steps.fetch.output.nope }}"],
)
def test_a_reference_to_something_missing_is_a_clear_permanent_error(template: str) -> None:
    with pytest.raises(TemplateProblem) as caught:
        render_config({"payload": {"text": template}}, CONTEXT)

    problem = caught.value
    assert isinstance(problem, StepError)
    assert problem.error_class == ErrorClass.PERMANENT
    assert problem.path == "payload.text"
    assert "Setting 'payload.text'" in problem.message
    assert "does not exist" in problem.message


def test_a_syntax_error_names_the_setting() -> None:
    with pytest.raises(TemplateProblem, match=r"Setting 'headers\[0\]'.*syntax error"):
        render_config({"headers": ["{{ input.ticket "]}, CONTEXT)


def test_an_unknown_name_is_refused_before_rendering() -> None:
    with pytest.raises(TemplateProblem, match="'ticket', which is not defined"):
        render("{{ ticket }}")


# --- injection attempts -------------------------------------------------------------------------


INJECTIONS = [
    "{{ ''.__class__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ input.__class__ }}",
    "{{ input['__class__'] }}",
    "{{ x.__globals__ }}",
    "{{ __import__('os').system('touch /tmp/pwned') }}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{{ lipsum.__globals__['os'].popen('id').read() }}",
    "{{ joiner.__init__.__globals__ }}",
    "{{ namespace.__init__ }}",
    "{{ self.__init__.__globals__ }}",
    "{{ self }}",
    "{{ config.items() }}",
    "{{ settings.SECRET_KEY }}",
    "{{ request.environ }}",
    "{{ range(10) }}",
    "{{ input.ticket|attr('__class__') }}",
    "{{ steps.fetch.output.body.format(input) }}",
    "{{ '{0.__class__}'.format(input) }}",
    "{{ steps.fetch.output.body.center(100000000) }}",
    "{{ '%999999999d' % 1 }}",
    "{% set x = input %}{{ x }}",
    "{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}",
    "{% include 'settings.py' %}",
    "{% import 'os' as os %}",
    "{% extends 'base.html' %}",
    "{% filter upper %}{{ input }}{% endfilter %}",
    "{% with x = input %}{{ x }}{% endwith %}",
    "{{ input.ticket.real.__class__ }}",
    "{{ (1).__class__ }}",
    "{{ input.tags.pop() }}",
    "{{ input.customer.update({'name': 'Eve'}) }}",
    "{{ input.customer.clear() }}",
    "{{ steps.fetch.gi_frame }}",
]


@pytest.mark.parametrize("template", INJECTIONS)
def test_injection_attempts_are_refused_with_a_clear_permanent_error(template: str) -> None:
    context = template_context(
        {"ticket": 1, "tags": [1, 2], "customer": {"name": "Ada"}}, {"fetch": {"body": "b"}}
    )

    with pytest.raises(TemplateProblem) as caught:
        render_config({"prompt": template}, context)

    assert caught.value.error_class == ErrorClass.PERMANENT
    assert "Setting 'prompt'" in caught.value.message
    # Nothing was changed on the data a template could see.
    assert context["input"] == {"ticket": 1, "tags": [1, 2], "customer": {"name": "Ada"}}


def test_an_unsafe_template_is_refused_before_any_of_it_runs() -> None:
    calls = []

    class Spy(dict):
        def get(self, *args: Any) -> Any:
            calls.append(args)
            return super().get(*args)

    context = {"input": Spy(a=1), "steps": {}}

    with pytest.raises(TemplateProblem, match="__class__"):
        render("{{ input.get('a') }}{{ input.__class__ }}", context)
    assert calls == []


# --- size limits --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "template",
    [
        "{{ 'a' * 10000000 }}",
        "{{ steps.big.output.text ~ steps.big.output.text }}",
        "{{ steps.big.output.text + steps.big.output.text }}",
        "{{ steps.big.output.list * 100000 }}",
        "{{ steps.big.output.list|join(steps.big.output.text) }}",
        "{{ steps.big.output.text.replace('z', 'zz') }}",
        "{{ steps.big.output.text|replace('', 'abc') }}",
        "{{ 10 ** 100000 }}",
        "{% for i in steps.big.output.list %}{{ steps.big.output.text }}{% endfor %}",
        "{{ steps.big.output.text }}{{ steps.big.output.text }}",
    ],
)
def test_a_result_over_the_size_limit_is_refused(template: str) -> None:
    with pytest.raises(TemplateProblem, match=r"larger than|bytes of JSON"):
        render(template)


def test_a_rendered_config_over_a_megabyte_is_refused() -> None:
    config = {"a": "{{ steps.big.output.text }}", "b": "{{ steps.big.output.text }}"}

    with pytest.raises(TemplateProblem, match="bytes of JSON"):
        render_config(config, CONTEXT)


def test_a_template_longer_than_the_limit_is_refused() -> None:
    with pytest.raises(TemplateProblem, match="characters long"):
        render("{{ input.ticket }}" + " " * 200_000)


def test_loops_may_not_nest_deeper_than_two() -> None:
    template = (
        "{% for a in input.tags %}{% for b in input.tags %}{% for c in input.tags %}"
        "{% endfor %}{% endfor %}{% endfor %}"
    )

    with pytest.raises(TemplateProblem, match="nested at most 2"):
        render(template)


def test_the_size_limit_leaves_room_for_a_large_legitimate_value() -> None:
    assert len(render("{{ steps.big.output.text }}")) == 900_000 < MAX_RENDERED_CHARS


# --- save-time check ----------------------------------------------------------------------------


def flow(steps: list[dict[str, Any]], edges: list[tuple[str, str]]) -> dict[str, Any]:
    return {
        "steps": steps,
        "edges": [{"source": a, "target": b, "port": None} for a, b in edges],
    }


def test_templates_that_use_earlier_steps_and_the_input_pass() -> None:
    data = flow(
        [
            {"id": "fetch", "kind": "noop"},
            {"id": "mid", "kind": "noop"},
            {
                "id": "use",
                "kind": "noop",
                "config": {"output": "{{ steps.fetch.output.x }} {{ input.y }}"},
            },
        ],
        [("fetch", "mid"), ("mid", "use")],
    )

    assert template_problems(data) == []
    assert validate_definition(data, KINDS, checks=[template_problems]) == []


def test_it_reports_a_step_that_does_not_run_before_the_one_using_it() -> None:
    data = flow(
        [
            {"id": "a", "kind": "noop"},
            {"id": "b", "kind": "noop", "config": {"output": "{{ steps.c.output }}"}},
            {"id": "c", "kind": "noop"},
        ],
        [("a", "b"), ("a", "c")],
    )

    (issue,) = template_problems(data)
    assert issue.path == "steps[1].config.output"
    assert issue.step_id == "b"
    assert "step 'c', which does not run before this step" in issue.message


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"output": "{{ steps.ghost.output }}"}, "there is no step 'ghost'"),
        ({"output": "{{ steps.a.output }}"}, "cannot use its own output"),
        ({"output": "{{ input.x "}, "syntax error"),
        ({"output": {"deep": ["{{ ''.__class__ }}"]}}, "Access to '__class__' is not allowed"),
        ({"output": "{{ input.x|nosuchfilter }}"}, "No filter named 'nosuchfilter'"),
        ({"output": "{{ os.environ }}"}, "'os', which is not defined"),
        ({"output": "{% set x = 1 %}"}, "{% set %} is not allowed"),
    ],
)
def test_it_reports_bad_templates_at_save_time(config: dict[str, Any], message: str) -> None:
    data = flow([{"id": "a", "kind": "noop", "config": config}], [])

    issues = template_problems(data)

    assert len(issues) == 1
    assert message in issues[0].message
    assert issues[0].message.startswith("Setting '")
    assert issues[0].path.startswith("steps[0].config.output")


def test_the_save_time_check_never_raises_on_junk() -> None:
    for junk in [{}, {"steps": "x"}, {"steps": [1, None, {"id": 3}]}, {"steps": [], "edges": 5}]:
        assert template_problems(junk) == []
    deep: Any = "{{ input.x }}"
    for _ in range(10_000):
        deep = [deep]
    assert template_problems(flow([{"id": "a", "kind": "noop", "config": {"x": deep}}], [])) == []


# --- work and memory: every operation bounded before it runs ---------------------------------


def peak_memory(template: str, context: dict[str, Any] = CONTEXT) -> tuple[int, Any]:
    """The peak of memory allocated while rendering ``template`` (tracemalloc), and what the
    render gave: its value, or the TemplateProblem it raised."""
    tracemalloc.start()
    try:
        outcome: Any = render(template, context)
    except TemplateProblem as exc:
        outcome = exc
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak, outcome


def test_tojson_indent_is_refused_before_it_allocates_anything() -> None:
    peak, outcome = peak_memory("{{ input.customer|tojson(indent=5000000) }}")

    assert isinstance(outcome, TemplateProblem)
    assert "indent must be a whole number from 0 to 16" in outcome.message
    assert peak < 2 * 2**20
    assert render("{{ input.customer|tojson(indent=2) }}") == '{\n  "name": "Ada"\n}'


@pytest.mark.timeout(20)
def test_sum_of_lists_takes_linear_time() -> None:
    # 150,000 one-item lists: Python's sum() copies the growing list for each of them, 1e10
    # item copies in one C call that no deadline can interrupt (over 20 s of CPU).
    assert render("{{ ([[0]] * 150000)|sum(start=[])|length }}") == 150_000
    assert render("{{ [[1, 2], [3]]|sum(start=[]) }}") == [1, 2, 3]
    assert render("{{ input.tags|map('length')|sum }}") == 2


def test_round_precision_is_refused_before_computing_a_huge_power() -> None:
    with pytest.raises(TemplateProblem, match="precision must be from -100 to 100"):
        render("{{ 1.5|round(100000000, 'ceil') }}")
    assert render("{{ 42.55|round(1, 'floor') }}") == 42.5


@pytest.mark.parametrize(
    "template",
    [
        # a value that repeats a large part is as large as all its repetitions
        "{{ ([steps.big.output.text] * 500)|string|length }}",
        "{{ [steps.big.output.text] * 500 }}",
        "{{ 'x' ~ [steps.big.output.text] * 50 }}",
        "{{ [[steps.big.output.text] * 50]|join }}",
        "{{ ([steps.big.output.text] * 50)|tojson }}",
        "{{ [steps.big.output.list] * 10000 == [steps.big.output.list] * 10000 }}",
        "{{ ([steps.big.output.list] * 10000)|sort|first }}",
        "{{ steps.big.output.text|list|length }}",
        "{{ ('ab ' * 300000).split()|length }}",
    ],
)
def test_values_that_repeat_a_large_part_are_refused_before_they_are_printed(
    template: str,
) -> None:
    peak, outcome = peak_memory(template)

    assert isinstance(outcome, TemplateProblem), outcome
    assert "larger than" in outcome.message
    assert peak < 8 * 2**20


def test_fresh_large_values_built_side_by_side_stop_at_the_memory_budget() -> None:
    # Each item is a new 900,000-character text: 80 of them would take 72 MB.
    items = ", ".join(["steps.big.output.text|upper"] * 80)

    peak, outcome = peak_memory("{{ [" + items + "]|length }}")

    assert isinstance(outcome, TemplateProblem)
    assert "too much memory" in outcome.message
    assert peak < RENDER_LIMITS.bytes + 8 * 2**20


def test_every_loop_turn_counts_even_with_nothing_in_the_loop() -> None:
    # Nothing in these loops calls anything: 50 million turns of plain Python.
    template = (
        "{% for a in input.tags * 500 %}{% for b in '"
        + "x" * 50_000
        + "' %}{% endfor %}{% endfor %}"
    )
    limits = RenderLimits(seconds=60, steps=100_000, bytes=RENDER_LIMITS.bytes)

    with pytest.raises(TemplateProblem, match="too much work"):
        render_config({"value": template}, CONTEXT, limits=limits)


@pytest.mark.parametrize(
    "template",
    [
        "{{ " + "(" * 500 + "1" + ")" * 500 + " }}",
        "{{ " + "[" * 500 + "]" * 500 + " }}",
        "{{ " + "1 + " * 3000 + "1 }}",
        "{{ " + "not " * 3000 + "1 }}",
        "{{ " + "- " * 3000 + "1 }}",
        "{{ input.ticket" + "|abs" * 3000 + " }}",
        "{{ input" + ".x" * 3000 + " }}",
        "{% if true %}" * 300 + "x" + "{% endif %}" * 300,
    ],
)
def test_deep_nesting_is_a_clear_problem_at_save_time_and_when_rendering(template: str) -> None:
    (issue,) = template_problems(flow([{"id": "a", "kind": "noop", "config": {"x": template}}], []))
    assert "nests too deeply" in issue.message

    with pytest.raises(TemplateProblem, match="nests too deeply"):
        render(template)


def test_nesting_within_the_limit_still_works() -> None:
    assert render("{{ " + "(" * 12 + "input.ticket" + ")" * 12 + " }}") == 42
    assert render("{{ input.ticket" + " + 1" * 20 + " }}") == 62


def test_what_is_kept_of_checked_templates_is_bounded_by_their_total_size() -> None:
    # Parsed and compiled templates are kept for reuse; many large ones must not pile up.
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for n in range(60):
            template = f"{n} " + "x" * 90_000 + "{{ input.ticket }}"
            assert render(template).endswith("x42")
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()

    assert kept < 10 * 2**20
