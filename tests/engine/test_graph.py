import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.engine.builders import KINDS, definition, definition_json, edge, step
from vectorbea.engine import (
    MAX_STEPS,
    Definition,
    Edge,
    Issue,
    KindSpec,
    RetryPolicy,
    StepDef,
    validate_definition,
)
from vectorbea.engine.graph import MAX_STEP_NAME_LENGTH


def issues_of(data: Any) -> list[tuple[str, str]]:
    return [(issue.path, issue.message) for issue in validate_definition(data, KINDS)]


def only_issue(data: Any) -> Issue:
    issues = validate_definition(data, KINDS)
    assert len(issues) == 1, issues
    return issues[0]


def three_steps(**changes: Any) -> dict[str, Any]:
    data = definition_json(["a", "b", "c"], [("a", "b"), ("b", "c")])
    return {**data, **changes}


# --- the Definition ------------------------------------------------------------------------


def test_a_definition_precomputes_its_graph() -> None:
    built = definition(
        ["fetch", "left", "right", "join"],
        [("fetch", "right"), ("fetch", "left"), ("left", "join"), ("right", "join")],
    )

    assert built.entry_steps == ("fetch",)
    assert built.sinks == ("join",)
    assert built.topo_order == ("fetch", "left", "right", "join")
    assert built.incoming["join"] == (Edge("left", "join"), Edge("right", "join"))
    assert built.outgoing["fetch"] == (Edge("fetch", "right"), Edge("fetch", "left"))
    assert built.incoming["fetch"] == ()


def test_a_definition_fills_in_defaults() -> None:
    built = Definition.from_json({"steps": [{"id": "only", "kind": "noop"}]})

    assert built.steps["only"] == StepDef(
        id="only", kind="noop", name="only", config={}, retry=RetryPolicy(), timeout_seconds=300
    )
    assert built.edges == ()
    assert built.input_schema == {"type": "object", "properties": {}}


def test_a_definition_reads_the_full_step_shape() -> None:
    raw = {
        "id": "fetch",
        "kind": "http",
        "name": "Fetch",
        "config": {"url": "https://example.org", "method": "GET"},
        "retry": {
            "maximum_attempts": 5,
            "initial_interval_seconds": 1,
            "backoff_coefficient": 2,
            "maximum_interval_seconds": 60,
        },
        "timeout_seconds": 30,
        "position": {"x": 10, "y": 20},
    }
    built = Definition.from_json({"steps": [raw], "edges": []})

    assert built.steps["fetch"].retry.maximum_attempts == 5
    assert built.steps["fetch"].timeout_seconds == 30.0
    assert built.steps["fetch"].name == "Fetch"
    assert validate_definition({"steps": [raw]}, KINDS) == []


def test_edges_keep_their_port() -> None:
    built = definition(
        [step("route", "branch"), "a", "b"], [("route", "a", "yes"), ("route", "b", "no")]
    )

    assert built.outgoing["route"] == (Edge("route", "a", "yes"), Edge("route", "b", "no"))


# --- validation: accepted ---------------------------------------------------------------------


def test_a_valid_workflow_has_no_issues() -> None:
    data = definition_json(
        [
            step("route", "branch", config={"ports": ["yes", "no"]}),
            step("call", "http", config={"url": "https://x", "method": "POST"}),
            "other",
            "join",
        ],
        [("route", "call", "yes"), ("route", "other", "no"), ("call", "join"), ("other", "join")],
    )

    assert validate_definition(data, KINDS) == []


def test_a_single_step_needs_no_edges() -> None:
    assert validate_definition({"steps": [step("only")]}, KINDS) == []


# --- validation: the whole document -------------------------------------------------------------


@pytest.mark.parametrize("data", [None, [], "workflow", 42, 1.5, True])
def test_a_definition_must_be_an_object(data: Any) -> None:
    assert issues_of(data) == [("", "The workflow definition must be a JSON object.")]


@pytest.mark.parametrize("steps", [None, "a", {"a": {}}, 3])
def test_steps_must_be_a_list(steps: Any) -> None:
    data = {"steps": steps} if steps is not None else {}
    assert issues_of(data) == [("steps", "The workflow needs a list of steps.")]


def test_steps_must_not_be_empty() -> None:
    assert issues_of({"steps": []}) == [("steps", "The workflow has no steps; add at least one.")]


def test_a_workflow_has_at_most_max_steps() -> None:
    steps = [step(f"s{n}") for n in range(MAX_STEPS + 1)]

    assert issues_of({"steps": steps}) == [
        ("steps", "The workflow has 251 steps; the most a workflow can have is 250.")
    ]


def test_the_input_schema_must_be_a_valid_object_schema() -> None:
    assert issues_of(three_steps(input_schema={"type": "array"})) == [
        ("input_schema", 'The input schema must describe an object ("type": "object").')
    ]
    assert issues_of(three_steps(input_schema="text")) == [
        ("input_schema", "The input schema must be a JSON object.")
    ]
    bad = three_steps(input_schema={"type": "object", "properties": {"n": {"minimum": "x"}}})
    assert only_issue(bad).path == "input_schema.properties.n.minimum"
    assert only_issue(bad).message.startswith("The input schema is invalid: ")


def test_null_edges_mean_no_edges() -> None:
    data = {"steps": [step("only")], "edges": None, "input_schema": None}

    assert validate_definition(data, KINDS) == []
    assert Definition.from_json(data).edges == ()


@pytest.mark.parametrize("edges", ["", {}, 0])
def test_falsy_junk_edges_are_not_taken_for_no_edges(edges: Any) -> None:
    assert ("edges", "The edges must be a list.") in issues_of(
        {"steps": [step("a")], "edges": edges}
    )


def test_a_missing_or_null_input_schema_is_fine() -> None:
    assert validate_definition(three_steps(), KINDS) == []
    assert validate_definition(three_steps(input_schema=None), KINDS) == []


# --- validation: steps ------------------------------------------------------------------------


@pytest.mark.parametrize("raw", ["a", 1, None, ["a"]])
def test_each_step_must_be_an_object(raw: Any) -> None:
    data = definition_json(["a", "b"], [("a", "b")])
    data["steps"].append(raw)

    assert issues_of(data) == [("steps[2]", "Step 2 must be an object.")]


@pytest.mark.parametrize("step_id", [None, 5, ["a"]])
def test_a_step_needs_a_string_id(step_id: Any) -> None:
    issue = only_issue({"steps": [{"id": step_id, "kind": "noop"}]})

    assert (issue.path, issue.message) == ("steps[0].id", "Step 0 needs an id (a string).")


@pytest.mark.parametrize("step_id", ["", "1st", "has space", "dot.ted", "a" * 65, "é"])
def test_a_step_id_must_be_a_simple_name(step_id: str) -> None:
    issue = only_issue({"steps": [{"id": step_id, "kind": "noop"}]})

    assert issue.path == "steps[0].id"
    assert "is not allowed: use up to 64 letters, digits, '_' or '-'" in issue.message


@pytest.mark.parametrize("step_id", ["a", "_private", "fetch-news_2", "A" * 64])
def test_simple_step_ids_are_accepted(step_id: str) -> None:
    assert validate_definition({"steps": [{"id": step_id, "kind": "noop"}]}, KINDS) == []


def test_step_ids_must_be_unique() -> None:
    data = three_steps()
    data["steps"].append(step("b"))

    assert issues_of(data) == [
        ("steps[3].id", "Step id 'b' is used more than once (first by step 1).")
    ]
    assert validate_definition(data, KINDS)[0].step_id == "b"


def test_a_step_kind_must_be_known() -> None:
    data = three_steps()
    data["steps"][1]["kind"] = "teleport"

    assert issues_of(data) == [("steps[1].kind", "Step 'b' has an unknown kind 'teleport'.")]


def test_a_step_needs_a_kind() -> None:
    data = three_steps()
    del data["steps"][2]["kind"]

    assert issues_of(data) == [("steps[2].kind", "Step 'c' needs a kind (a string).")]


def test_a_step_name_must_be_text() -> None:
    data = three_steps()
    data["steps"][0]["name"] = 7

    assert issues_of(data) == [("steps[0].name", "The name of step 'a' must be text.")]


def test_a_step_name_has_a_length_limit() -> None:
    data = three_steps()
    data["steps"][0]["name"] = "n" * MAX_STEP_NAME_LENGTH
    data["steps"][1]["name"] = "n" * 1_900_000

    assert issues_of(data) == [
        (
            "steps[1].name",
            "The name of step 'b' is 1,900,000 characters long; a step's name can have at "
            "most 200 characters.",
        )
    ]


def test_each_config_error_is_reported_at_its_path() -> None:
    config = {"url": 5, "method": "DELETE", "headers": {"X-Token": 1}, "body": "x"}
    data = {"steps": [step("call", "http", config=config)]}

    assert issues_of(data) == [
        (
            "steps[0].config",
            "Settings of step 'call': Additional properties are not allowed "
            "('body' was unexpected)",
        ),
        (
            "steps[0].config.headers.X-Token",
            "Setting 'headers.X-Token' of step 'call': 1 is not of type 'string'",
        ),
        (
            "steps[0].config.method",
            "Setting 'method' of step 'call': 'DELETE' is not one of ['GET', 'POST']",
        ),
        ("steps[0].config.url", "Setting 'url' of step 'call': 5 is not of type 'string'"),
    ]


def test_missing_required_config_is_reported_for_each_field() -> None:
    data = {"steps": [step("call", "http", config={})]}

    assert issues_of(data) == [
        ("steps[0].config.method", "Step 'call' is missing the required setting 'method'."),
        ("steps[0].config.url", "Step 'call' is missing the required setting 'url'."),
    ]


def test_a_missing_config_is_checked_as_empty() -> None:
    assert [
        issue.path for issue in validate_definition({"steps": [step("call", "http")]}, KINDS)
    ] == [
        "steps[0].config.method",
        "steps[0].config.url",
    ]


def test_config_must_be_an_object() -> None:
    data = {"steps": [step("call", "http", config=["url"])]}

    assert issues_of(data) == [
        ("steps[0].config", "The settings of step 'call' must be an object.")
    ]


def test_config_paths_quote_keys_that_are_not_simple_names() -> None:
    data = {
        "steps": [step("call", "http", config={"url": "u", "method": "GET", "headers": {"a b": 1}})]
    }

    assert only_issue(data).path == "steps[0].config.headers['a b']"


def test_config_paths_index_into_lists() -> None:
    kinds = {
        "list": KindSpec(
            "list",
            {
                "type": "object",
                "properties": {"tags": {"type": "array", "items": {"type": "string"}}},
            },
        )
    }
    data = {"steps": [step("t", "list", config={"tags": ["ok", 3]})]}

    assert validate_definition(data, kinds)[0].path == "steps[0].config.tags[1]"


def test_a_template_may_stand_in_for_a_number_or_an_enum_value() -> None:
    kinds = {
        "llm": KindSpec(
            "llm",
            {
                "type": "object",
                "properties": {
                    "temperature": {"type": "number", "minimum": 0, "maximum": 2},
                    "max_tokens": {"type": "integer", "minimum": 1},
                    "provider": {"type": "string", "enum": ["openai", "anthropic"]},
                },
            },
        )
    }
    templated = {
        "temperature": "{{ input.temperature }}",
        "max_tokens": "{{ input.tokens }}",
        "provider": "{{ input.provider }}",
    }

    assert validate_definition({"steps": [step("ask", "llm", config=templated)]}, kinds) == []


def test_a_plain_string_where_a_number_belongs_is_still_an_issue() -> None:
    kinds = {
        "llm": KindSpec(
            "llm", {"type": "object", "properties": {"temperature": {"type": "number"}}}
        )
    }
    data = {"steps": [step("ask", "llm", config={"temperature": "warm", "other": "{{ x }}"})]}

    assert [issue.path for issue in validate_definition(data, kinds)] == [
        "steps[0].config.temperature"
    ]


def test_a_broken_kind_schema_is_an_issue_not_a_crash() -> None:
    kinds = {"bad": KindSpec("bad", {"type": "no-such-type"})}

    issues = validate_definition({"steps": [step("x", "bad")]}, kinds)

    assert [(i.path, i.message) for i in issues] == [
        ("steps[0].config", "The settings of step 'x' could not be checked.")
    ]


@pytest.mark.parametrize(
    ("retry", "path", "expected"),
    [
        ({"maximum_attempts": 0}, "maximum_attempts", "a whole number from 1 to 100"),
        ({"maximum_attempts": 101}, "maximum_attempts", "a whole number from 1 to 100"),
        ({"maximum_attempts": 2.5}, "maximum_attempts", "a whole number from 1 to 100"),
        ({"maximum_attempts": True}, "maximum_attempts", "a whole number from 1 to 100"),
        (
            {"initial_interval_seconds": 0},
            "initial_interval_seconds",
            "a positive number of seconds",
        ),
        (
            {"initial_interval_seconds": "1"},
            "initial_interval_seconds",
            "a positive number of seconds",
        ),
        (
            {"maximum_interval_seconds": -1},
            "maximum_interval_seconds",
            "a positive number of seconds",
        ),
        ({"backoff_coefficient": 0.5}, "backoff_coefficient", "a number of at least 1"),
        ({"backoff_coefficient": float("nan")}, "backoff_coefficient", "a number of at least 1"),
        ({"jitter": 1.5}, "jitter", "a number from 0 to 1"),
    ],
)
def test_retry_settings_must_be_sane(retry: dict[str, Any], path: str, expected: str) -> None:
    issue = only_issue({"steps": [step("a", retry=retry)]})

    assert issue.path == f"steps[0].retry.{path}"
    assert issue.message == f"Retry setting '{path}' of step 'a' must be {expected}."
    assert issue.step_id == "a"


def test_the_maximum_interval_must_not_be_below_the_initial_interval() -> None:
    retry = {"initial_interval_seconds": 30, "maximum_interval_seconds": 10}

    assert issues_of({"steps": [step("a", retry=retry)]}) == [
        (
            "steps[0].retry.maximum_interval_seconds",
            "Retry setting 'maximum_interval_seconds' of step 'a' must not be less than "
            "'initial_interval_seconds'.",
        )
    ]


def test_an_unknown_retry_setting_is_reported_so_typos_are_not_ignored() -> None:
    assert issues_of({"steps": [step("a", retry={"max_attempts": 3})]}) == [
        ("steps[0].retry.max_attempts", "Unknown retry setting 'max_attempts'.")
    ]


def test_retry_must_be_an_object() -> None:
    assert issues_of({"steps": [step("a", retry=3)]}) == [
        ("steps[0].retry", "The retry policy of step 'a' must be an object.")
    ]


@pytest.mark.parametrize("timeout", [0, 0.5, 7 * 86400 + 1, "60", None, float("inf")])
def test_the_timeout_must_be_between_one_second_and_seven_days(timeout: Any) -> None:
    assert issues_of({"steps": [step("a", timeout_seconds=timeout)]}) == [
        (
            "steps[0].timeout_seconds",
            "The timeout of step 'a' must be from 1 second to 7 days (604800 seconds).",
        )
    ]


@pytest.mark.parametrize("timeout", [1, 300, 7 * 86400])
def test_timeouts_within_range_are_accepted(timeout: float) -> None:
    assert validate_definition({"steps": [step("a", timeout_seconds=timeout)]}, KINDS) == []


# --- validation: edges ------------------------------------------------------------------------


def test_edges_must_be_a_list() -> None:
    assert ("edges", "The edges must be a list.") in issues_of(three_steps(edges={"a": "b"}))


def test_each_edge_must_be_an_object() -> None:
    data = three_steps()
    data["edges"].append("a->b")

    assert issues_of(data) == [("edges[2]", "Edge 2 must be an object.")]


def test_an_edge_needs_a_source_and_a_target() -> None:
    data = three_steps()
    data["edges"].append({"source": 1})

    assert issues_of(data) == [
        ("edges[2].source", "Edge 2 needs a source step id."),
        ("edges[2].target", "Edge 2 needs a target step id."),
    ]


def test_an_edge_target_must_exist() -> None:
    data = three_steps()
    data["edges"].append(edge("c", "x"))

    issue = only_issue(data)
    assert (issue.path, issue.message, issue.edge_index) == (
        "edges[2].target",
        "Edge 2 points to a step 'x' that does not exist.",
        2,
    )


def test_an_edge_source_must_exist() -> None:
    data = three_steps()
    data["edges"].insert(0, edge("ghost", "a"))

    assert issues_of(data) == [
        ("edges[0].source", "Edge 0 starts from a step 'ghost' that does not exist.")
    ]


def test_an_edge_must_not_connect_a_step_to_itself() -> None:
    data = three_steps()
    data["edges"].append(edge("b", "b"))

    assert issues_of(data) == [("edges[2]", "Edge 2 connects step 'b' to itself.")]


def test_an_edge_must_not_be_repeated() -> None:
    data = three_steps()
    data["edges"].append(edge("a", "b"))

    assert issues_of(data) == [("edges[2]", "Edge 2 repeats edge 0 from 'a' to 'b'.")]


def test_an_edge_from_a_single_output_step_must_not_name_a_port() -> None:
    data = definition_json(["a", "b"], [("a", "b", "yes")])

    assert issues_of(data) == [
        ("edges[0].port", "Step 'a' has a single output, so edge 0 must not name a port.")
    ]


def test_an_edge_from_a_branch_must_name_one_of_its_ports() -> None:
    data = definition_json(
        [step("route", "branch", config={"ports": ["hot", "cold"]}), "a", "b"],
        [("route", "a", "warm"), ("route", "b")],
    )

    assert issues_of(data) == [
        ("edges[0].port", "Edge 0 from step 'route' must name one of its outputs: 'hot', 'cold'."),
        ("edges[1].port", "Edge 1 from step 'route' must name one of its outputs: 'hot', 'cold'."),
    ]


def test_a_port_must_be_text() -> None:
    data = definition_json([step("a", "mystery"), "b"])
    data["edges"] = [{"source": "a", "target": "b", "port": ["x"]}]

    assert ("edges[0].port", "Edge 0 names a port that is not text.") in issues_of(data)


# --- validation: graph shape ------------------------------------------------------------------


def test_a_cycle_is_reported_with_its_steps() -> None:
    data = definition_json(
        ["start", "a", "b", "c"], [("start", "a"), ("a", "b"), ("b", "c"), ("c", "a")]
    )

    issue = only_issue(data)
    assert (issue.path, issue.message, issue.step_id) == (
        "edges",
        "Steps a → b → c → a form a cycle.",
        "a",
    )


def test_steps_only_reachable_through_a_cycle_can_never_run() -> None:
    data = definition_json(["a", "b", "c"], [("a", "b"), ("b", "a"), ("b", "c")])

    assert issues_of(data) == [
        ("edges", "Steps a → b → a form a cycle."),
        ("steps[0]", "Step 'a' can never run: no path leads to it from a starting step."),
        ("steps[1]", "Step 'b' can never run: no path leads to it from a starting step."),
        ("steps[2]", "Step 'c' can never run: no path leads to it from a starting step."),
    ]


def test_each_separate_cycle_is_reported() -> None:
    data = definition_json(
        ["s", "a", "b", "c", "d"],
        [("s", "a"), ("a", "b"), ("b", "a"), ("s", "c"), ("c", "d"), ("d", "c")],
    )

    assert [i.message for i in validate_definition(data, KINDS)] == [
        "Steps a → b → a form a cycle.",
        "Steps c → d → c form a cycle.",
    ]


def test_a_step_with_no_edges_is_not_connected() -> None:
    data = three_steps()
    data["steps"].append(step("lonely"))

    issue = only_issue(data)
    assert (issue.path, issue.message, issue.step_id) == (
        "steps[3]",
        "Step 'lonely' is not connected to any other step.",
        "lonely",
    )


def test_issues_come_in_a_stable_order() -> None:
    data = definition_json(
        ["a", "a", "b", step("c", "nope"), "d"],
        [("a", "zz"), ("b", "b"), ("d", "a"), ("a", "d")],
    )

    first = validate_definition(data, KINDS)
    assert first == validate_definition(json.loads(json.dumps(data)), KINDS)
    assert [issue.path for issue in first] == [
        "steps[1].id",
        "steps[3].kind",
        "edges[0].target",
        "edges[1]",
        "edges",
        "steps[0]",
        "steps[4]",
        "steps[2]",
        "steps[3]",
    ]


# --- junk never raises ------------------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=30,
)
KEYS = st.sampled_from(
    ["id", "kind", "config", "retry", "timeout_seconds", "name", "source", "target", "port"]
)
STEP_LIKE = st.dictionaries(
    KEYS, JSON_VALUES | st.sampled_from(["a", "b", "noop", "http", "branch"])
)


@settings(max_examples=150, deadline=None)
@given(
    JSON_VALUES
    | st.fixed_dictionaries(
        {"steps": st.lists(STEP_LIKE | JSON_VALUES, max_size=6)},
        optional={
            "edges": st.lists(STEP_LIKE | JSON_VALUES, max_size=6),
            "input_schema": JSON_VALUES,
        },
    )
)
def test_junk_input_never_raises(data: Any) -> None:
    issues = validate_definition(data, KINDS)

    assert all(isinstance(issue, Issue) for issue in issues)


def test_huge_input_is_refused_quickly() -> None:
    huge = {"steps": [step(f"s{n}", config={"x": "y" * 100}) for n in range(100_000)]}

    assert len(validate_definition(huge, KINDS)) == 1


def test_too_many_edges_are_refused() -> None:
    data = definition_json(["a", "b"])
    data["edges"] = [edge("a", "b")] * 5000

    assert ("edges", "The workflow has 5000 edges; the most it can have is 2000.") in issues_of(
        data
    )


def test_deeply_nested_config_is_an_issue_not_a_crash() -> None:
    nested: Any = "leaf"
    for _ in range(5000):
        nested = [nested]
    kinds = {
        "deep": KindSpec(
            "deep",
            {
                "$defs": {"n": {"items": {"$ref": "#/$defs/n"}}},
                "properties": {"v": {"$ref": "#/$defs/n"}},
            },
        )
    }

    issues = validate_definition({"steps": [step("x", "deep", config={"v": nested})]}, kinds)

    assert all(isinstance(issue, Issue) for issue in issues)
