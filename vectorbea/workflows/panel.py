"""The config panel of the builder: form fields generated from a step kind's JSON schema.

The panel is rendered by the server from the definition the browser holds; the browser turns
the fields back into the step's JSON by their `data-path` and `data-type`, and the draft save
validates the result. So every field here names where its value lives in the step.
"""

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from vectorbea.engine import RetryPolicy
from vectorbea.engine.agent import DEFAULT_LIMITS
from vectorbea.engine.graph import DEFAULT_MAX_CORRECTIONS, DEFAULT_TIMEOUT_SECONDS
from vectorbea.steps.registry import KINDS, kind_specs, load_kinds
from vectorbea.steps.workspace_secrets import SECRET_SETTINGS
from vectorbea.workflows import agent_panel

LONG_TEXT = frozenset({"prompt", "system", "instructions", "when", "body", "payload", "output"})
INPUT_TYPES = (
    ("string", "Text"),
    ("number", "Number"),
    ("integer", "Whole number"),
    ("boolean", "Yes / no"),
)
# Shown in the palette for kinds whose schema has no description of their own.
KIND_HINTS = {
    "llm": "Ask a language model, with your workspace's provider key.",
    "http": "Call an HTTP API as a tool, with an idempotency key on every attempt.",
    "tool": "Run a Python function registered by your installation.",
    "noop": "Do nothing; pass a fixed output along. Handy as a placeholder.",
    "agent": "A model that calls your tools in a loop until it answers, each call recorded.",
}
PALETTE_ORDER = ("llm", "http", "transform", "branch", "approval", "delay", "agent", "tool", "noop")
# A new step of these kinds starts with this config (the rest start empty).
STARTER_CONFIG: dict[str, dict[str, Any]] = {
    "branch": {"conditions": [{"port": "yes", "when": ""}], "default_port": "no"},
    "http": {"method": "GET"},
    "approval": {"on_timeout": "deny"},
    "delay": {"seconds": 60},
    "agent": {"tools": [], "limits": {"max_turns": 10}},
}


@dataclass
class Field:
    path: str  # where the value lives in the step: "name", "config.url", "retry.maximum_attempts"
    label: str
    widget: str  # text, textarea, number, integer, checkbox, select, json, any, rows
    value: Any = ""
    help: str = ""
    required: bool = False
    placeholder: str = ""
    choices: list[tuple[str, str]] = field(default_factory=list)
    columns: list["Field"] = field(default_factory=list)  # widget "rows": one Field per column
    rows: list[list["Field"]] = field(default_factory=list)
    templated: bool = False  # may use {{ input.x }} / {{ steps.a.output }}
    name: str = ""  # the property's own name (a row's cells are told apart by it)

    @property
    def dom_id(self) -> str:
        return "f-" + "".join(c if c.isalnum() else "-" for c in self.path)


@dataclass(frozen=True)
class Reference:
    template: str
    label: str


def palette() -> list[dict[str, Any]]:
    kind_specs()  # loads the kinds
    names = [n for n in PALETTE_ORDER if n in KINDS] + sorted(set(KINDS) - set(PALETTE_ORDER))
    items = []
    for name in names:
        kind = KINDS[name]
        config = STARTER_CONFIG.get(name, {})
        items.append(
            {
                "name": name,
                "label": kind.label,
                "description": kind.config_schema.get("description") or KIND_HINTS.get(name, ""),
                "config": config,
                "ports": list(kind.ports(config)) if kind.ports else None,
            }
        )
    return items


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, indent=2, ensure_ascii=False)


def _scalar_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value) if not isinstance(value, dict | list) else json.dumps(value)


def schema_field(path: str, name: str, schema: Mapping[str, Any], value: Any, required: bool):
    """One form field for one property of a config schema."""
    label = schema.get("title") or name.replace("_", " ").capitalize()
    kind = schema.get("type")
    common = {
        "path": path,
        "name": name,
        "label": label,
        "help": schema.get("description", ""),
        "required": required,
    }
    default = schema.get("default")
    placeholder = "" if default is None else _scalar_text(default)
    if "enum" in schema:
        choices = [(str(choice), str(choice)) for choice in schema["enum"]]
        if value not in (None, "") and str(value) not in dict(choices):
            choices.append((str(value), str(value)))  # e.g. a template
        if not required:
            blank = f"Default ({placeholder})" if placeholder else "Not set"
            choices.insert(0, ("", blank))
        return Field(widget="select", value=_scalar_text(value), choices=choices, **common)
    if kind == "boolean":
        return Field(widget="checkbox", value=value is True, **common)
    if kind in ("number", "integer"):
        return Field(
            widget=kind,
            value=_scalar_text(value),
            placeholder=placeholder,
            templated=True,
            **common,
        )
    if kind == "array" and _is_row_schema(schema.get("items")):
        return _rows_field(path, schema, value, common)
    if kind in ("object", "array"):
        return Field(widget="json", value=_text(value), **common)
    if kind == "string":
        widget = "textarea" if name in LONG_TEXT or schema.get("maxLength", 0) > 200 else "text"
        return Field(
            widget=widget,
            value=_scalar_text(value),
            placeholder=placeholder,
            templated=True,
            **common,
        )
    return Field(widget="any", value=_text(value), templated=True, **common)


def _is_row_schema(items: Any) -> bool:
    props = items.get("properties") if isinstance(items, Mapping) else None
    return (
        isinstance(props, Mapping)
        and bool(props)
        and all(isinstance(p, Mapping) and p.get("type") == "string" for p in props.values())
    )


def _rows_field(path: str, schema: Mapping[str, Any], value: Any, common: dict) -> Field:
    items = schema["items"]
    required = set(items.get("required", ()))
    props = items["properties"]
    columns = [schema_field(name, name, sub, "", name in required) for name, sub in props.items()]
    rows = []
    for index, row in enumerate(value if isinstance(value, list) else []):
        row = row if isinstance(row, Mapping) else {}
        rows.append(
            [
                schema_field(f"{path}[{index}].{name}", name, sub, row.get(name), name in required)
                for name, sub in props.items()
            ]
        )
    add = "Add " + common["label"].lower().removesuffix("s")  # "Add condition"
    return Field(widget="rows", columns=columns, rows=rows, placeholder=add, **common)


def step_fields(step: Mapping[str, Any]) -> dict[str, list[Field]]:
    """The panel's sections for one step: its settings, then retries and timeout."""
    load_kinds()
    kind = KINDS.get(str(step.get("kind")))
    config = step.get("config") if isinstance(step.get("config"), Mapping) else {}
    settings: list[Field] = []
    if kind is not None:
        schema = kind.config_schema
        required = set(schema.get("required", ()))
        for name, sub in schema.get("properties", {}).items():
            settings.append(
                schema_field(f"config.{name}", name, sub, config.get(name), name in required)
            )
    retry = step.get("retry") if isinstance(step.get("retry"), Mapping) else {}
    defaults = RetryPolicy()
    retries = [
        Field(
            "retry.maximum_attempts",
            "Maximum attempts",
            "integer",
            _scalar_text(retry.get("maximum_attempts")),
            "Attempts in all, the first included. 1 means never retry.",
            placeholder=str(defaults.maximum_attempts),
        ),
        Field(
            "retry.initial_interval_seconds",
            "First retry after (seconds)",
            "number",
            _scalar_text(retry.get("initial_interval_seconds")),
            placeholder=_scalar_text(defaults.initial_interval_seconds),
        ),
        Field(
            "retry.backoff_coefficient",
            "Backoff coefficient",
            "number",
            _scalar_text(retry.get("backoff_coefficient")),
            "Each wait is this many times the one before.",
            placeholder=_scalar_text(defaults.backoff_coefficient),
        ),
        Field(
            "retry.maximum_interval_seconds",
            "Longest wait (seconds)",
            "number",
            _scalar_text(retry.get("maximum_interval_seconds")),
            placeholder=_scalar_text(defaults.maximum_interval_seconds),
        ),
        Field(
            "timeout_seconds",
            "Step timeout (seconds)",
            "number",
            _scalar_text(step.get("timeout_seconds")),
            "An attempt running longer fails as transient and is retried.",
            placeholder=_scalar_text(DEFAULT_TIMEOUT_SECONDS),
        ),
        Field(
            "on_failure",
            "If it cannot succeed",
            "select",
            _text(step.get("on_failure") or ""),
            "After its retries or corrections are used up, or on a permanent error.",
            choices=[("", "Ask a person (needs attention)"), ("fail", "Fail the run")],
        ),
        Field(
            "max_corrections",
            "Corrections of an invalid answer",
            "integer",
            _scalar_text(step.get("max_corrections")),
            "LLM steps: how often the model is asked to fix an answer that fails its schema "
            "or validator, shown what was wrong.",
            placeholder=str(DEFAULT_MAX_CORRECTIONS),
        ),
        Field(
            "allow_skip",
            "A person may skip this step",
            "checkbox",
            bool(step.get("allow_skip")),
            "Offered, with retry and supplying its output, once the step needs attention.",
        ),
    ]
    sections = {"settings": settings, "retries": retries}
    if kind is not None and kind.name == agent_panel.AGENT_KIND:
        _agent_sections(sections, step, config)
    return sections


def _agent_sections(sections: dict[str, list[Field]], step: Mapping[str, Any], config: Any):
    """An agent step's panel: its tools as a list to pick from, and its limits with the
    step's timeout in a section of their own."""
    settings, limits = [], []
    for f in sections["settings"]:
        if f.name == "tools":
            f.widget, f.value = "agent-tools", agent_panel.tools_panel(config)
        if f.name == "limits":
            schema = KINDS[agent_panel.AGENT_KIND].config_schema["properties"]["limits"]
            given = config.get("limits") if isinstance(config.get("limits"), Mapping) else {}
            for name, sub in schema["properties"].items():
                said = agent_panel.LIMITS.get(name, {})
                limit = schema_field(f"config.limits.{name}", name, sub, given.get(name), False)
                limit.label, limit.help = said.get("label", limit.label), said.get("help", "")
                default = DEFAULT_LIMITS.get(name)
                limit.placeholder = "No limit" if default is None else str(default)
                limits.append(limit)
            continue
        settings.append(f)
    timeout = next(f for f in sections["retries"] if f.path == "timeout_seconds")
    sections["retries"].remove(timeout)
    timeout.help = (
        "How long one attempt may take, all its turns and tool calls; past it the attempt "
        "fails as transient and the next goes on from the last recorded turn."
    )
    sections["settings"], sections["limits"] = settings, [*limits, timeout]


def references(
    definition: Mapping[str, Any], step_id: str, secret_names: Iterable[str] = ()
) -> list[Reference]:
    """What a template in this step may use: the run's input, upstream steps' outputs and,
    in a step kind that takes secrets, the workspace's `secret_names`."""
    refs = [
        Reference(f"{{{{ input.{name} }}}}", f"Run input “{name}”")
        for name, _ in ordered_properties(definition.get("input_schema"))
    ]
    steps = _steps_by_id(definition)
    for key in upstream(definition, step_id):
        name = steps[key].get("name") or key
        refs.append(Reference(f"{{{{ steps.{key}.output }}}}", f"Output of “{name}”"))
    kind = str(steps.get(step_id, {}).get("kind"))
    if kind in SECRET_SETTINGS:
        where = " or ".join(SECRET_SETTINGS[kind])
        refs += [
            Reference(f"{{{{ secrets.{name} }}}}", f"Secret “{name}” (in {where} only)")
            for name in sorted(secret_names)
        ]
    return refs


def _steps_by_id(definition: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return {
        raw["id"]: raw
        for raw in definition.get("steps") or ()
        if isinstance(raw, Mapping) and isinstance(raw.get("id"), str)
    }


def upstream(definition: Mapping[str, Any], step_id: str) -> list[str]:
    """The steps that run before `step_id` (whose outputs it may use), in definition order."""
    steps = _steps_by_id(definition)
    parents: dict[str, set[str]] = {key: set() for key in steps}
    for edge in definition.get("edges") or ():
        if isinstance(edge, Mapping) and edge.get("target") in parents:
            if edge.get("source") in steps:
                parents[edge["target"]].add(edge["source"])
    seen: set[str] = set()
    stack = list(parents.get(step_id, ()))
    while stack:
        current = stack.pop()
        if current not in seen and current != step_id:
            seen.add(current)
            stack.extend(parents[current])
    return [key for key in steps if key in seen]


# A sample value of each input type, for a step tried in the builder.
SAMPLE_VALUES: dict[str, Any] = {
    "string": "",
    "number": 0,
    "integer": 0,
    "boolean": False,
    "object": {},
    "array": [],
}


def sample_input(schema: Any) -> dict[str, Any]:
    """A run input to start a step's trial from: each field's default or first example,
    else an empty value of its type."""
    sample: dict[str, Any] = {}
    for name, prop in ordered_properties(schema):
        prop = prop if isinstance(prop, Mapping) else {}
        examples = prop.get("examples")
        if "default" in prop:
            sample[name] = prop["default"]
        elif isinstance(examples, list) and examples:
            sample[name] = examples[0]
        elif isinstance(prop.get("enum"), list) and prop["enum"]:
            sample[name] = prop["enum"][0]
        else:
            sample[name] = SAMPLE_VALUES.get(str(prop.get("type")), "")
    return sample


ORDER_KEY = "x-order"  # the run input's field names in the order people put them


def ordered_properties(schema: Any) -> list[tuple[str, Any]]:
    """An input schema's properties in the builder's order: Postgres (jsonb) keeps object
    keys sorted its own way, so the order is kept as a list beside them."""
    props = schema.get("properties") if isinstance(schema, Mapping) else None
    if not isinstance(props, Mapping):
        return []
    order = schema.get(ORDER_KEY)
    names = [n for n in order if n in props] if isinstance(order, list) else []
    names += [n for n in props if n not in names]
    return [(name, props[name]) for name in names]


@dataclass(frozen=True)
class InputRow:
    name: str
    type: str
    required: bool
    description: str
    extra: str  # the field's other schema keys (JSON), kept as they are


def input_rows(schema: Any) -> list[InputRow]:
    required = schema.get("required") if isinstance(schema, Mapping) else None
    required = set(required) if isinstance(required, list) else set()
    rows = []
    for name, prop in ordered_properties(schema):
        prop = prop if isinstance(prop, Mapping) else {}
        extra = {k: v for k, v in prop.items() if k not in ("type", "description")}
        rows.append(
            InputRow(
                name=name,
                type=str(prop.get("type", "string")),
                required=name in required,
                description=str(prop.get("description", "")),
                extra=json.dumps(extra),
            )
        )
    return rows
