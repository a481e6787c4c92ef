"""Workflow definitions: the step graph, and validation with plain-language issues."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError, ValidationError

from vectorbea.engine.errors import ERROR_ACTIONS, EXHAUSTED_ACTIONS, NEEDS_ATTENTION, ErrorClass
from vectorbea.engine.retry import RetryPolicy
from vectorbea.engine.waits import DEFAULT_PORTS

MAX_STEPS = 250
MAX_EDGES = 2000
MAX_ATTEMPTS = 100
MAX_TIMEOUT_SECONDS = 7 * 24 * 3600
DEFAULT_TIMEOUT_SECONDS = 300.0
MAX_STEP_NAME_LENGTH = 200  # the name shown on the canvas, the timeline and the inbox
STEP_ID_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,63}")
DEFAULT_MAX_CORRECTIONS = 2
MAX_CORRECTIONS = 10
DEFAULT_INPUT_SCHEMA: dict[str, Any] = {"type": "object", "properties": {}}
RETRY_KEYS = (
    "maximum_attempts",
    "initial_interval_seconds",
    "backoff_coefficient",
    "maximum_interval_seconds",
    "jitter",
)


@dataclass(frozen=True)
class StepDef:
    id: str
    kind: str
    name: str
    config: dict[str, Any] = field(default_factory=dict)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    # What a failed attempt leads to, by error class, instead of the class's default
    # (errors.ERROR_CLASS_POLICY): {"permanent": "fail", "transient": "needs_attention"…}.
    on_error: Mapping[str, str] = field(default_factory=dict)
    # Once retries or corrections are used up: "needs_attention" (a person decides) or "fail".
    on_failure: str = NEEDS_ATTENTION
    max_corrections: int = DEFAULT_MAX_CORRECTIONS
    allow_skip: bool = False  # may a person skip the step when it needs attention?


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    port: str | None = None
    # A loop edge goes back to an earlier step: taking it starts that step, and every step
    # after it, over. Loop edges are not part of the graph's order.
    loop: bool = False


@dataclass(frozen=True)
class Definition:
    input_schema: dict[str, Any]
    steps: Mapping[str, StepDef]
    edges: tuple[Edge, ...]
    incoming: Mapping[str, tuple[Edge, ...]]
    outgoing: Mapping[str, tuple[Edge, ...]]
    entry_steps: tuple[str, ...]
    sinks: tuple[str, ...]
    topo_order: tuple[str, ...]
    loop_edges: tuple[Edge, ...] = ()
    # For each loop edge: the steps that start over when it is taken (its target and every
    # step after it), in topological order.
    loop_bodies: Mapping[Edge, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Definition:
        """Build from a definition that ``validate_definition`` accepted."""
        steps = {raw["id"]: _step_from_json(raw) for raw in data["steps"]}
        every_edge = tuple(_edge_from_json(raw, steps) for raw in data.get("edges") or ())
        edges = tuple(edge for edge in every_edge if not edge.loop)
        loop_edges = tuple(edge for edge in every_edge if edge.loop)
        incoming = {key: tuple(e for e in edges if e.target == key) for key in steps}
        outgoing = {key: tuple(e for e in edges if e.source == key) for key in steps}
        return cls(
            input_schema=data.get("input_schema") or DEFAULT_INPUT_SCHEMA,
            steps=steps,
            edges=edges,
            incoming=incoming,
            outgoing=outgoing,
            entry_steps=tuple(key for key in steps if not incoming[key]),
            sinks=tuple(key for key in steps if not outgoing[key]),
            topo_order=(order := _topological_order(tuple(steps), outgoing)),
            loop_edges=loop_edges,
            loop_bodies={edge: _loop_body(edge, outgoing, order) for edge in loop_edges},
        )


def _loop_body(
    edge: Edge, outgoing: Mapping[str, tuple[Edge, ...]], order: Sequence[str]
) -> tuple[str, ...]:
    successors = {key: [e.target for e in edges] for key, edges in outgoing.items()}
    body = _reachable([edge.target], successors)
    return tuple(key for key in order if key in body)


def _edge_from_json(raw: Mapping[str, Any], steps: Mapping[str, StepDef]) -> Edge:
    port = raw.get("port")
    if port is None:  # an approval's edge without a port is its "approved" edge
        port = DEFAULT_PORTS.get(steps[raw["source"]].kind)
    return Edge(raw["source"], raw["target"], port, loop=raw.get("loop") is True)


def _step_from_json(raw: Mapping[str, Any]) -> StepDef:
    return StepDef(
        id=raw["id"],
        kind=raw["kind"],
        name=raw.get("name") or raw["id"],
        config=raw.get("config") or {},
        retry=RetryPolicy.from_json(raw.get("retry")),
        timeout_seconds=float(raw.get("timeout_seconds", DEFAULT_TIMEOUT_SECONDS)),
        on_error=dict(raw.get("on_error") or {}),
        on_failure=raw.get("on_failure") or NEEDS_ATTENTION,
        max_corrections=int(raw.get("max_corrections", DEFAULT_MAX_CORRECTIONS)),
        allow_skip=raw.get("allow_skip") is True,
    )


def _topological_order(
    step_ids: Sequence[str], outgoing: Mapping[str, tuple[Edge, ...]]
) -> tuple[str, ...]:
    """Kahn's algorithm; ties go to definition order. Steps in a cycle are left out."""
    position = {key: index for index, key in enumerate(step_ids)}
    waiting = {key: 0 for key in step_ids}
    for edges in outgoing.values():
        for edge in edges:
            waiting[edge.target] += 1
    ready = [key for key in step_ids if waiting[key] == 0]
    order: list[str] = []
    while ready:
        current = ready.pop(0)
        order.append(current)
        for edge in outgoing[current]:
            waiting[edge.target] -= 1
            if waiting[edge.target] == 0:
                ready.append(edge.target)
                ready.sort(key=position.__getitem__)
    return tuple(order)


# --- validation -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Issue:
    path: str  # JSON path into the definition, e.g. "steps[2].config.url"; "" is the root
    message: str
    step_id: str | None = None
    edge_index: int | None = None
    # What to do about it, in words that need no path ("enter a number"): the builder puts
    # it after the step's and the field's labels. Empty when the message says it all.
    advice: str = ""


@dataclass(frozen=True)
class KindSpec:
    name: str
    config_schema: dict[str, Any]
    ports: Callable[[dict[str, Any]], tuple[str, ...]] | None = None  # None: one default output


# A further check of a whole definition (JSON), e.g. of the templates in step configs;
# it must not raise on junk.
DefinitionCheck = Callable[[Mapping[str, Any]], list["Issue"]]


def validate_definition(
    data: Any, kinds: Mapping[str, KindSpec], checks: Sequence[DefinitionCheck] = ()
) -> list[Issue]:
    """Every problem with a definition, in a stable order. Never raises on bad input.

    ``checks`` run after the built-in ones on any definition with a list of steps, and
    their issues come last."""
    if not isinstance(data, Mapping):
        return [Issue("", "The workflow definition must be a JSON object.")]
    input_schema = data.get("input_schema")
    issues = _input_schema_issues(DEFAULT_INPUT_SCHEMA if input_schema is None else input_schema)
    raw_steps = data.get("steps")
    step_issues = _steps_list_issues(raw_steps)
    if step_issues or not isinstance(raw_steps, list):
        return issues + step_issues
    steps, per_step_issues = _checked_steps(raw_steps, kinds)
    issues += per_step_issues
    raw_edges = data.get("edges")
    edges, edge_issues = _checked_edges([] if raw_edges is None else raw_edges, steps)
    issues += edge_issues + _graph_issues(steps, edges)
    for check in checks:
        try:
            issues += check(data)
        except Exception:  # a broken check must not break saving; say so instead
            issues.append(Issue("", "Part of the workflow could not be checked."))
    return issues


@dataclass(frozen=True)
class _Step:
    """A step that passed the id checks, remembered for edge and graph checks."""

    index: int
    id: str
    kind: KindSpec | None
    config: Any


def _input_schema_issues(schema: Any) -> list[Issue]:
    path = "input_schema"
    if not isinstance(schema, Mapping):
        return [Issue(path, "The input schema must be a JSON object.")]
    if schema.get("type") != "object":
        return [Issue(path, 'The input schema must describe an object ("type": "object").')]
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        return [
            Issue(
                _join_path(path, exc.absolute_path), f"The input schema is invalid: {exc.message}"
            )
        ]
    except Exception:  # junk such as deep nesting must become an issue
        return [Issue(path, "The input schema could not be checked.")]
    return []


def _steps_list_issues(raw_steps: Any) -> list[Issue]:
    if not isinstance(raw_steps, list):
        return [Issue("steps", "The workflow needs a list of steps.")]
    if not raw_steps:
        return [Issue("steps", "The workflow has no steps; add at least one.")]
    if len(raw_steps) > MAX_STEPS:
        message = (
            f"The workflow has {len(raw_steps)} steps; the most a workflow can have is {MAX_STEPS}."
        )
        return [Issue("steps", message)]
    return []


def _checked_steps(
    raw_steps: list[Any], kinds: Mapping[str, KindSpec]
) -> tuple[dict[str, _Step], list[Issue]]:
    steps: dict[str, _Step] = {}
    issues: list[Issue] = []
    for index, raw in enumerate(raw_steps):
        step, step_issues = _checked_step(index, raw, steps, kinds)
        issues += step_issues
        if step is not None:
            steps[step.id] = step
    return steps, issues


def _checked_step(
    index: int, raw: Any, seen: Mapping[str, _Step], kinds: Mapping[str, KindSpec]
) -> tuple[_Step | None, list[Issue]]:
    path = f"steps[{index}]"
    if not isinstance(raw, Mapping):
        return None, [Issue(path, f"Step {index} must be an object.")]
    step_id = raw.get("id")
    if not isinstance(step_id, str):
        return None, [Issue(f"{path}.id", f"Step {index} needs an id (a string).")]
    if not STEP_ID_PATTERN.fullmatch(step_id):
        message = (
            f"Step id {_quote(step_id)} is not allowed: use up to 64 letters, digits, '_' or '-', "
            "starting with a letter or '_'."
        )
        return None, [Issue(f"{path}.id", message, step_id=step_id)]
    if step_id in seen:
        message = (
            f"Step id '{step_id}' is used more than once (first by step {seen[step_id].index})."
        )
        return None, [Issue(f"{path}.id", message, step_id=step_id)]
    kind, issues = _kind_of(index, raw, step_id, kinds)
    issues += _name_issues(path, raw, step_id)
    config = raw.get("config", {})
    if kind is not None:
        issues += _config_issues(path, config, step_id, kind)
        if kind.ports is not None and raw.get("allow_skip") is True:
            message = (
                f"Step '{step_id}' chooses a path, so it cannot be skipped (a skipped step "
                "would leave the run no path to follow): turn off skipping for it."
            )
            advice = "turn this off: a step that chooses a path cannot be skipped"
            issues.append(Issue(f"{path}.allow_skip", message, step_id=step_id, advice=advice))
    issues += _retry_issues(path, raw.get("retry"), step_id)
    issues += _timeout_issues(path, raw, step_id)
    issues += _failure_setting_issues(path, raw, step_id)
    return _Step(index, step_id, kind, config), issues


def _kind_of(
    index: int, raw: Mapping[str, Any], step_id: str, kinds: Mapping[str, KindSpec]
) -> tuple[KindSpec | None, list[Issue]]:
    kind_name = raw.get("kind")
    path = f"steps[{index}].kind"
    if not isinstance(kind_name, str):
        return None, [Issue(path, f"Step '{step_id}' needs a kind (a string).", step_id=step_id)]
    kind = kinds.get(kind_name)
    if kind is None:
        message = f"Step '{step_id}' has an unknown kind {_quote(kind_name)}."
        return None, [Issue(path, message, step_id=step_id)]
    return kind, []


def _name_issues(path: str, raw: Mapping[str, Any], step_id: str) -> list[Issue]:
    if "name" not in raw:
        return []
    name = raw["name"]
    if not isinstance(name, str):
        message = f"The name of step '{step_id}' must be text."
        advice = "enter text"
    elif len(name) > MAX_STEP_NAME_LENGTH:
        message = (
            f"The name of step '{step_id}' is {len(name):,} characters long; "
            f"a step's name can have at most {MAX_STEP_NAME_LENGTH} characters."
        )
        advice = f"shorten it to {MAX_STEP_NAME_LENGTH} characters at most"
    else:
        return []
    return [Issue(f"{path}.name", message, step_id=step_id, advice=advice)]


def _config_issues(path: str, config: Any, step_id: str, kind: KindSpec) -> list[Issue]:
    path = f"{path}.config"
    if not isinstance(config, Mapping):
        return [
            Issue(path, f"The settings of step '{step_id}' must be an object.", step_id=step_id)
        ]
    try:
        errors = list(Draft202012Validator(kind.config_schema).iter_errors(config))
    except Exception:  # a broken kind schema or junk config becomes an issue
        return [
            Issue(path, f"The settings of step '{step_id}' could not be checked.", step_id=step_id)
        ]
    issues = [
        issue
        for error in errors
        if not _is_templated_scalar(error)
        for issue in _schema_error_issues(path, error, step_id)
    ]
    return sorted(set(issues), key=lambda issue: (issue.path, issue.message))


# Checks a template stands in for: "{{ input.temperature }}" renders to a number at run time,
# so a templated string where the schema wants a number, an integer or an enum value is fine.
TEMPLATE_STANDS_IN_FOR = frozenset(
    {"type", "enum", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"}
)


def _is_templated_scalar(error: ValidationError) -> bool:
    return (
        error.validator in TEMPLATE_STANDS_IN_FOR
        and isinstance(error.instance, str)
        and "{{" in error.instance
    )


def _schema_error_issues(path: str, error: ValidationError, step_id: str) -> Iterator[Issue]:
    at = _join_path(path, error.absolute_path)
    if error.validator == "required" and isinstance(error.instance, Mapping):
        properties = error.schema.get("properties", {}) if isinstance(error.schema, Mapping) else {}
        for name in error.validator_value:
            if name not in error.instance:
                message = f"Step '{step_id}' is missing the required setting '{name}'."
                advice = _empty_advice(properties.get(name))
                yield Issue(_join_path(at, [name]), message, step_id=step_id, advice=advice)
        return
    if error.absolute_path:
        field_name = _join_path("", error.absolute_path).lstrip(".")
        message = f"Setting '{field_name}' of step '{step_id}': {error.message}"
    else:
        message = f"Settings of step '{step_id}': {error.message}"
    yield Issue(at, message, step_id=step_id, advice=schema_advice(error))


# What a value of each JSON type is, in the words of a form.
TYPE_ADVICE = {
    "string": "enter text",
    "number": "enter a number",
    "integer": "enter a whole number",
    "boolean": "choose yes or no",
    "object": 'enter a JSON object, like {"key": "value"}',
    "array": 'enter a list, like ["a", "b"]',
    "null": "leave it empty",
}


def _empty_advice(schema: Any) -> str:
    """What to do about a required setting left empty: the schema's own words
    ("x-when-empty") or "fill this in"."""
    if isinstance(schema, Mapping) and isinstance(schema.get("x-when-empty"), str):
        return schema["x-when-empty"]
    return "fill this in"


def _number_text(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def schema_advice(error: ValidationError) -> str:
    """What to do about one JSON-schema error, said as a form would say it: every schema
    error a person can meet is translated here, and only here."""
    rule, expected, schema = error.validator, error.validator_value, error.schema
    schema = schema if isinstance(schema, Mapping) else {}
    value = error.instance
    if rule == "type":
        types = expected if isinstance(expected, list) else [expected]
        return " or ".join(TYPE_ADVICE.get(str(t), f"enter a {t}") for t in types)
    if rule == "enum":
        return "choose one of: " + ", ".join(str(choice) for choice in expected)
    if rule == "const":
        return f"use {_quote(expected)}"
    if rule == "minLength":
        if value == "":
            return _empty_advice(schema)
        return f"use at least {expected} character{'s' if expected != 1 else ''}"
    if rule == "maxLength":
        return f"shorten it to {expected:,} characters at most"
    if rule == "minimum":
        return f"enter {_number_text(expected)} or more"
    if rule == "maximum":
        return f"enter {_number_text(expected)} or less"
    if rule == "exclusiveMinimum":
        return f"enter more than {_number_text(expected)}"
    if rule == "exclusiveMaximum":
        return f"enter less than {_number_text(expected)}"
    if rule == "multipleOf":
        return f"enter a multiple of {_number_text(expected)}"
    if rule == "minItems":
        return f"add at least {expected}" if expected != 1 else "add at least one"
    if rule == "maxItems":
        return f"keep at most {expected}"
    if rule == "uniqueItems":
        return "remove the repeated entries"
    if rule == "minProperties":
        return "add at least one entry" if expected == 1 else f"add at least {expected} entries"
    if rule == "maxProperties":
        return f"keep at most {expected} entries"
    if rule == "pattern":
        hint = schema.get("x-pattern-hint")
        return hint if isinstance(hint, str) else f"match the pattern {expected}"
    if rule == "format":
        return f"enter a valid {expected}"
    if rule == "additionalProperties" and isinstance(value, Mapping):
        known = schema.get("properties", {})
        extra = sorted(str(key) for key in value if key not in known)
        names = ", ".join(_quote(name) for name in extra)
        return f"remove {names}: {'it is' if len(extra) == 1 else 'they are'} not a setting here"
    if rule in ("oneOf", "anyOf") and isinstance(value, Mapping):
        choices = _required_choices(expected, schema)
        if choices:
            given = [label for name, label in choices if name in value]
            labels = " or ".join(label for _, label in choices)
            if rule == "oneOf" and len(given) > 1:
                return f"fill in only one of {labels}"
            return f"fill in {labels}"
    return error.message[:200]


def _required_choices(options: Any, schema: Mapping[str, Any]) -> list[tuple[str, str]]:
    """For a oneOf/anyOf of {"required": [name]} options: each name with its label."""
    properties = schema.get("properties", {})
    choices = []
    for option in options if isinstance(options, list) else ():
        names = option.get("required") if isinstance(option, Mapping) else None
        if not isinstance(names, list) or len(names) != 1:
            return []
        name = names[0]
        choices.append((name, f"“{field_label(name, properties.get(name))}”"))
    return choices


def field_label(name: str, schema: Any) -> str:
    """The label a setting has in a form: its schema's title, else its name in words."""
    if isinstance(schema, Mapping) and isinstance(schema.get("title"), str):
        return schema["title"]
    return str(name).replace("_", " ").capitalize()


def _retry_issues(path: str, retry: Any, step_id: str) -> list[Issue]:
    path = f"{path}.retry"
    if retry is None:
        return []
    if not isinstance(retry, Mapping):
        return [
            Issue(path, f"The retry policy of step '{step_id}' must be an object.", step_id=step_id)
        ]
    issues = [
        Issue(
            f"{path}.{key}" if _is_identifier(key) else path,
            f"Unknown retry setting {_quote(key)}.",
            step_id=step_id,
        )
        for key in retry
        if key not in RETRY_KEYS
    ]
    checks: list[tuple[str, Callable[[Any], bool], str]] = [
        ("maximum_attempts", _is_attempt_count, f"a whole number from 1 to {MAX_ATTEMPTS}"),
        ("initial_interval_seconds", _is_positive, "a positive number of seconds"),
        ("backoff_coefficient", _is_at_least_one, "a number of at least 1"),
        ("maximum_interval_seconds", _is_positive, "a positive number of seconds"),
        ("jitter", _is_fraction, "a number from 0 to 1"),
    ]
    for key, ok, expected in checks:
        if key in retry and not ok(retry[key]):
            message = f"Retry setting '{key}' of step '{step_id}' must be {expected}."
            advice = "enter " + expected
            issues.append(Issue(f"{path}.{key}", message, step_id=step_id, advice=advice))
    issues += _interval_order_issues(path, retry, step_id)
    return issues


def _interval_order_issues(path: str, retry: Mapping[str, Any], step_id: str) -> list[Issue]:
    initial = retry.get("initial_interval_seconds", RetryPolicy.initial_interval_seconds)
    maximum = retry.get("maximum_interval_seconds", RetryPolicy.maximum_interval_seconds)
    if _is_positive(initial) and _is_positive(maximum) and maximum < initial:
        message = (
            f"Retry setting 'maximum_interval_seconds' of step '{step_id}' must not be "
            "less than 'initial_interval_seconds'."
        )
        advice = "enter at least the first retry's wait"
        return [Issue(f"{path}.maximum_interval_seconds", message, step_id=step_id, advice=advice)]
    return []


def _timeout_issues(path: str, raw: Mapping[str, Any], step_id: str) -> list[Issue]:
    if "timeout_seconds" not in raw:
        return []
    value = raw["timeout_seconds"]
    if _is_number(value) and 1 <= value <= MAX_TIMEOUT_SECONDS:
        return []
    message = f"The timeout of step '{step_id}' must be from 1 second to 7 days (604800 seconds)."
    advice = "enter from 1 to 604800 seconds (7 days)"
    return [Issue(f"{path}.timeout_seconds", message, step_id=step_id, advice=advice)]


def _failure_setting_issues(path: str, raw: Mapping[str, Any], step_id: str) -> list[Issue]:
    issues = []
    on_error = raw.get("on_error")
    if on_error is not None:
        classes = ", ".join(f"'{c}'" for c in ErrorClass)
        actions = ", ".join(f"'{a}'" for a in ERROR_ACTIONS)
        if not isinstance(on_error, Mapping):
            message = f"'on_error' of step '{step_id}' must map error classes to what to do."
            issues.append(Issue(f"{path}.on_error", message, step_id=step_id))
        else:
            for key, value in on_error.items():
                if key not in tuple(ErrorClass):
                    message = (
                        f"'on_error' of step '{step_id}' names an unknown error class "
                        f"{_quote(key)}; use one of {classes}."
                    )
                    issues.append(Issue(f"{path}.on_error", message, step_id=step_id))
                elif value not in ERROR_ACTIONS:
                    message = (
                        f"'on_error' of step '{step_id}' says {_quote(value)} for '{key}'; "
                        f"use one of {actions}."
                    )
                    issues.append(Issue(f"{path}.on_error.{key}", message, step_id=step_id))
    if "on_failure" in raw and raw["on_failure"] not in EXHAUSTED_ACTIONS:
        message = (
            f"'on_failure' of step '{step_id}' must be 'needs_attention' (a person decides) "
            "or 'fail' (the run fails)."
        )
        advice = "choose what happens when it cannot succeed"
        issues.append(Issue(f"{path}.on_failure", message, step_id=step_id, advice=advice))
    corrections = raw.get("max_corrections", DEFAULT_MAX_CORRECTIONS)
    if not (
        isinstance(corrections, int)
        and not isinstance(corrections, bool)
        and 0 <= corrections <= MAX_CORRECTIONS
    ):
        message = (
            f"'max_corrections' of step '{step_id}' must be a whole number from 0 to "
            f"{MAX_CORRECTIONS}."
        )
        advice = f"enter a whole number from 0 to {MAX_CORRECTIONS}"
        issues.append(Issue(f"{path}.max_corrections", message, step_id=step_id, advice=advice))
    if "allow_skip" in raw and not isinstance(raw["allow_skip"], bool):
        message = f"'allow_skip' of step '{step_id}' must be true or false."
        issues.append(Issue(f"{path}.allow_skip", message, step_id=step_id))
    return issues


def _checked_edges(raw_edges: Any, steps: Mapping[str, _Step]) -> tuple[list[Edge], list[Issue]]:
    """Issues with the edges, and the edges the graph checks can still use."""
    if not isinstance(raw_edges, list):
        return [], [Issue("edges", "The edges must be a list.")]
    if len(raw_edges) > MAX_EDGES:
        message = f"The workflow has {len(raw_edges)} edges; the most it can have is {MAX_EDGES}."
        return [], [Issue("edges", message)]
    edges: list[Edge] = []
    first_index: dict[Edge, int] = {}
    issues: list[Issue] = []
    for index, raw in enumerate(raw_edges):
        edge, edge_issues = _checked_edge(index, raw, steps, first_index)
        issues += edge_issues
        if edge is not None and edge not in first_index:
            first_index[edge] = index
            edges.append(edge)
    return edges, issues


def _checked_edge(
    index: int, raw: Any, steps: Mapping[str, _Step], first_index: Mapping[Edge, int]
) -> tuple[Edge | None, list[Issue]]:
    path = f"edges[{index}]"
    if not isinstance(raw, Mapping):
        return None, [Issue(path, f"Edge {index} must be an object.", edge_index=index)]
    issues = _endpoint_issues(index, raw, steps)
    if issues:
        return None, issues
    source, target, port = raw["source"], raw["target"], raw.get("port")
    if source == target:
        message = f"Edge {index} connects step '{source}' to itself."
        return None, [Issue(path, message, step_id=source, edge_index=index)]
    if port is not None and not isinstance(port, str):
        message = f"Edge {index} names a port that is not text."
        return None, [Issue(f"{path}.port", message, step_id=source, edge_index=index)]
    loop = raw.get("loop", False)
    if not isinstance(loop, bool):
        message = f"Edge {index}: 'loop' must be true or false."
        return None, [Issue(f"{path}.loop", message, step_id=source, edge_index=index)]
    edge = Edge(source, target, port, loop=loop)
    if edge in first_index:
        message = f"Edge {index} repeats edge {first_index[edge]} from '{source}' to '{target}'."
        return None, [Issue(path, message, step_id=source, edge_index=index)]
    return edge, _port_issues(index, port, steps[source])


def _endpoint_issues(index: int, raw: Mapping[str, Any], steps: Mapping[str, _Step]) -> list[Issue]:
    issues = []
    for key, verb in (("source", "starts from"), ("target", "points to")):
        value = raw.get(key)
        path = f"edges[{index}].{key}"
        if not isinstance(value, str):
            issues.append(Issue(path, f"Edge {index} needs a {key} step id.", edge_index=index))
        elif value not in steps:
            message = f"Edge {index} {verb} a step {_quote(value)} that does not exist."
            issues.append(Issue(path, message, edge_index=index))
    return issues


def _port_issues(index: int, port: Any, source: _Step) -> list[Issue]:
    path = f"edges[{index}].port"
    if source.kind is None:
        return []
    if source.kind.ports is None:
        if port is None:
            return []
        message = f"Step '{source.id}' has a single output, so edge {index} must not name a port."
        return [Issue(path, message, step_id=source.id, edge_index=index)]
    try:
        ports = tuple(source.kind.ports(source.config))
    except Exception:  # invalid config is reported on the step already
        return []
    if port in ports or (port is None and DEFAULT_PORTS.get(source.kind.name) in ports):
        return []
    names = ", ".join(f"'{name}'" for name in ports) or "(none)"
    message = f"Edge {index} from step '{source.id}' must name one of its outputs: {names}."
    return [Issue(path, message, step_id=source.id, edge_index=index)]


def _graph_issues(steps: Mapping[str, _Step], every_edge: Sequence[Edge]) -> list[Issue]:
    edges = [edge for edge in every_edge if not edge.loop]
    issues = _cycle_issues(steps, edges)
    issues += _loop_issues(steps, every_edge, edges)
    issues += _unreachable_issues(steps, edges)
    issues += _unconnected_issues(steps, every_edge)
    return issues


def _loop_issues(
    steps: Mapping[str, _Step], every_edge: Sequence[Edge], edges: Sequence[Edge]
) -> list[Issue]:
    successors = _successors(steps, edges)
    issues = []
    for index, edge in enumerate(every_edge):
        if edge.loop and edge.source not in _reachable([edge.target], successors):
            message = (
                f"The loop from '{edge.source}' back to '{edge.target}' must go back to an "
                f"earlier step: '{edge.target}' does not lead to '{edge.source}'."
            )
            issues.append(Issue("edges", message, step_id=edge.source, edge_index=index))
    return issues


def _cycle_issues(steps: Mapping[str, _Step], edges: Sequence[Edge]) -> list[Issue]:
    successors = _successors(steps, edges)
    issues = []
    for component in _cycles_components(steps, successors):
        start = component[0]
        cycle = _shortest_cycle(start, set(component), successors)
        names = " → ".join([*cycle, start])
        issues.append(Issue("edges", f"Steps {names} form a cycle.", step_id=start))
    return issues


def _successors(steps: Mapping[str, _Step], edges: Sequence[Edge]) -> dict[str, list[str]]:
    successors: dict[str, list[str]] = {key: [] for key in steps}
    for edge in edges:
        if edge.target not in successors[edge.source]:
            successors[edge.source].append(edge.target)
    return successors


def _cycles_components(
    steps: Mapping[str, _Step], successors: Mapping[str, list[str]]
) -> list[list[str]]:
    """Strongly connected components with more than one step, in definition order."""
    reach = {key: _reachable([key], successors) for key in steps}
    components: list[list[str]] = []
    placed: set[str] = set()
    for key in steps:
        if key in placed:
            continue
        component = [other for other in steps if other in reach[key] and key in reach[other]]
        placed.update(component)
        if len(component) > 1:
            components.append(component)
    return components


def _shortest_cycle(
    start: str, members: set[str], successors: Mapping[str, list[str]]
) -> list[str]:
    previous: dict[str, str] = {}
    queue = [start]
    while queue:
        current = queue.pop(0)
        for nxt in successors[current]:
            if nxt == start:
                return _path_to(current, start, previous)
            if nxt in members and nxt not in previous:
                previous[nxt] = current
                queue.append(nxt)
    return [start]


def _path_to(end: str, start: str, previous: Mapping[str, str]) -> list[str]:
    path = [end]
    while path[-1] != start:
        path.append(previous[path[-1]])
    return path[::-1]


def _reachable(starts: Sequence[str], successors: Mapping[str, list[str]]) -> set[str]:
    seen = set(starts)
    stack = list(starts)
    while stack:
        for nxt in successors[stack.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return seen


def _unreachable_issues(steps: Mapping[str, _Step], edges: Sequence[Edge]) -> list[Issue]:
    targets = {edge.target for edge in edges}
    entries = [key for key in steps if key not in targets]
    reachable = _reachable(entries, _successors(steps, edges))
    return [
        Issue(
            f"steps[{step.index}]",
            f"Step '{key}' can never run: no path leads to it from a starting step.",
            step_id=key,
        )
        for key, step in steps.items()
        if key not in reachable
    ]


def _unconnected_issues(steps: Mapping[str, _Step], edges: Sequence[Edge]) -> list[Issue]:
    if len(steps) < 2:
        return []
    connected = {edge.source for edge in edges} | {edge.target for edge in edges}
    return [
        Issue(
            f"steps[{step.index}]", f"Step '{key}' is not connected to any other step.", step_id=key
        )
        for key, step in steps.items()
        if key not in connected
    ]


# --- small helpers --------------------------------------------------------------------------


def _join_path(base: str, parts: Sequence[Any]) -> str:
    path = base
    for part in parts:
        if isinstance(part, int):
            path += f"[{part}]"
        elif _is_identifier(part):
            path += f".{part}"
        else:
            path += f"[{_quote(part)}]"
    return path


def _is_identifier(value: Any) -> bool:
    return isinstance(value, str) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", value) is not None


def _quote(value: Any) -> str:
    text = str(value)
    text = text if len(text) <= 80 else text[:77] + "..."
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _is_positive(value: Any) -> bool:
    return _is_number(value) and value > 0


def _is_at_least_one(value: Any) -> bool:
    return _is_number(value) and value >= 1


def _is_fraction(value: Any) -> bool:
    return _is_number(value) and 0 <= value <= 1


def _is_attempt_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_ATTEMPTS
