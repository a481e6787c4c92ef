"""The flow step kinds, their settings schemas, and the output limits."""

import uuid
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from vectorbea.engine import ErrorClass, StepError, validate_definition
from vectorbea.steps.registry import KINDS, StepContext, StepResult, get_kind, kind_specs
from vectorbea.steps.templating import TemplateProblem, template_problems
from workers.attempt import _output_problem

FLOW_KINDS = ("transform", "branch", "delay", "approval")


def context(run_input: dict[str, Any] | None = None, **outputs: Any) -> StepContext:
    return StepContext(
        run_id=uuid.uuid4(),
        workspace_id=uuid.uuid4(),
        step_id="route",
        attempt=1,
        idempotency_key="k",
        run_input=run_input or {},
        outputs=outputs,
    )


def branch(config: dict[str, Any], ctx: StepContext) -> StepResult:
    return get_kind("branch").handler(config, ctx)


URGENT_OR_LOW = {
    "conditions": [
        {"port": "urgent", "when": "{{ input.priority == 'high' }}"},
        {"port": "vip", "when": "{{ input.customer == 'acme' }}"},
    ],
    "default_port": "normal",
}


@pytest.mark.parametrize("name", FLOW_KINDS)
def test_every_flow_kind_is_registered_with_a_documented_schema(name: str) -> None:
    kind = get_kind(name)
    Draft202012Validator.check_schema(kind.config_schema)
    for key, prop in kind.config_schema["properties"].items():
        assert prop.get("title"), f"{name}.{key} has no title"
        assert prop.get("description"), f"{name}.{key} has no description"


def test_transform_returns_its_rendered_output() -> None:
    assert get_kind("transform").handler({"output": {"n": 3}}, context()) == {"n": 3}


def test_branch_takes_the_first_true_condition() -> None:
    result = branch(URGENT_OR_LOW, context({"priority": "high", "customer": "acme"}))

    assert result.ports == ("urgent",)
    assert result.output == {"taken": ["urgent"]}


def test_branch_in_mode_all_takes_every_true_condition() -> None:
    result = branch(
        {**URGENT_OR_LOW, "mode": "all"}, context({"priority": "high", "customer": "acme"})
    )

    assert result.ports == ("urgent", "vip")


def test_branch_takes_the_default_port_when_nothing_is_true() -> None:
    result = branch(URGENT_OR_LOW, context({"priority": "low", "customer": "x"}))

    assert result.ports == ("normal",)


def test_branch_conditions_can_read_earlier_outputs() -> None:
    config = {"conditions": [{"port": "big", "when": "{{ steps.count.output.n > 10 }}"}]}

    assert branch(config, context(count={"n": 11})).ports == ("big",)
    assert branch(config, context(count={"n": 1})).ports == ("else",)


def test_branch_conditions_are_evaluated_in_order_and_stop_at_the_first_true_one() -> None:
    config = {
        "conditions": [
            {"port": "yes", "when": "{{ true }}"},
            {"port": "boom", "when": "{{ input.missing }}"},
        ]
    }

    assert branch(config, context()).ports == ("yes",)


def test_a_bad_branch_condition_fails_the_step_permanently_naming_it() -> None:
    config = {"conditions": [{"port": "x", "when": "{{ input.__class__ }}"}]}

    with pytest.raises(TemplateProblem, match=r"conditions\[0\]\.when") as caught:
        branch(config, context())
    assert caught.value.error_class == ErrorClass.PERMANENT


def test_branch_ports_are_its_condition_ports_and_default_port() -> None:
    ports = get_kind("branch").ports
    assert ports is not None

    assert ports(URGENT_OR_LOW) == ("urgent", "vip", "normal")
    assert ports({"conditions": [{"port": "a", "when": "x"}, {"port": "a", "when": "y"}]}) == (
        "a",
        "else",
    )


def test_branch_does_not_have_its_config_rendered_before_it_runs() -> None:
    assert get_kind("branch").render_config is False
    assert get_kind("transform").render_config is True


@pytest.mark.parametrize("name", ["delay", "approval"])
def test_engine_moved_kinds_refuse_to_run_on_a_worker(name: str) -> None:
    with pytest.raises(StepError, match="moved by the engine"):
        get_kind(name).handler({}, context())


def test_a_workflow_of_flow_kinds_validates_with_its_template_checks() -> None:
    data = {
        "input_schema": {"type": "object"},
        "steps": [
            {"id": "shape", "kind": "transform", "config": {"output": {"p": "{{ input.p }}"}}},
            {"id": "route", "kind": "branch", "config": URGENT_OR_LOW},
            {"id": "wait", "kind": "delay", "config": {"seconds": 5}},
            {
                "id": "gate",
                "kind": "approval",
                "config": {"title": "Go?", "payload": "{{ steps.shape.output }}"},
            },
            {"id": "done", "kind": "transform", "config": {"output": "{{ steps.gate.output }}"}},
            {"id": "sorry", "kind": "transform", "config": {"output": 0}},
        ],
        "edges": [
            {"source": "shape", "target": "route"},
            {"source": "route", "target": "wait", "port": "urgent"},
            {"source": "route", "target": "gate", "port": "vip"},
            {"source": "route", "target": "gate", "port": "normal"},
            {"source": "wait", "target": "gate"},
            {"source": "gate", "target": "done"},
            {"source": "gate", "target": "sorry", "port": "denied"},
        ],
    }

    assert validate_definition(data, kind_specs(), checks=[template_problems]) == []


@pytest.mark.parametrize(
    ("kind", "config"),
    [
        ("delay", {}),
        ("delay", {"seconds": 0}),
        ("delay", {"seconds": 1, "until": "2030-01-01T00:00:00Z"}),
        ("approval", {}),
        ("approval", {"title": "x", "on_timeout": "maybe"}),
        ("branch", {"conditions": []}),
        ("branch", {"conditions": [{"port": "a b", "when": "x"}]}),
        ("transform", {}),
    ],
)
def test_bad_flow_settings_are_reported_at_save_time(kind: str, config: dict[str, Any]) -> None:
    data = {"steps": [{"id": "s", "kind": kind, "config": config}]}

    assert validate_definition(data, kind_specs()) != []


def test_the_flow_module_is_one_of_the_built_in_kind_modules() -> None:
    kind_specs()

    assert set(FLOW_KINDS) <= set(KINDS)


# --- output limits --------------------------------------------------------------------------------


def test_an_output_over_a_megabyte_is_refused_with_its_size() -> None:
    problem = _output_problem({"text": "x" * 10_000_000})

    assert problem is not None
    assert "10,000,012 bytes" in problem and "the limit is 1,000,000" in problem


def test_an_output_nested_too_deeply_is_refused_without_recursing() -> None:
    deep: Any = {}
    for _ in range(10_000):
        deep = {"d": deep}

    problem = _output_problem(deep)

    assert problem is not None
    assert "nested more than 64 levels" in problem


def test_an_output_at_the_limits_is_accepted() -> None:
    nested: Any = 1
    for _ in range(63):
        nested = [nested]

    assert _output_problem({"n": nested}) is None
    assert _output_problem("x" * 999_000) is None
