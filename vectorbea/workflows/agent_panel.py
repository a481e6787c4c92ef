"""The builder's panel for an agent step: its tools (the workspace's Python tools to pick
from, each with its description and JSON Schema, and HTTP tools described in the step),
each with its "needs approval" box, and its limits beside the step's timeout.

The browser reads the tools back as the step's `config.tools` list (builder.js readTools):
the picked Python tools in the order listed here, then the HTTP tools in theirs. Keys of a
tool the panel has no control for (an approval's rules) ride along in `data-extra`.
"""

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from vectorbea.engine import Issue
from vectorbea.steps.tools import TOOL_INFO

AGENT_KIND = "agent"
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
# The keys the panel edits; the rest of a tool's settings are kept as they are.
PYTHON_KEYS = ("type", "name", "needs_approval")
HTTP_KEYS = (*PYTHON_KEYS, "description", "method", "url", "headers", "parameters")
SCHEMA_KINDS = ("llm", AGENT_KIND)  # step kinds with an output_schema setting
LIMITS = {
    "max_turns": {"label": "Max turns", "help": "Answers from the model, in all."},
    "max_tool_calls": {"label": "Max tool calls", "help": "Tool calls the agent may make."},
    "max_cost_usd": {
        "label": "Max cost (USD)",
        "help": "Checked before each turn: past it the agent stops with budget_exceeded.",
    },
    "max_repeats": {
        "label": "Same call in a row",
        "help": "The same tool with the same arguments this many times stops the agent.",
    },
    "max_invalid_calls": {
        "label": "Malformed calls",
        "help": "Calls refused for bad arguments before the agent is stopped.",
    },
}


@dataclass(frozen=True)
class PythonToolRow:
    name: str
    description: str
    schema: str  # its arguments' JSON Schema, pretty
    picked: bool
    needs_approval: bool
    index: int | None  # its position in config.tools, when picked
    extra: str
    registered: bool


@dataclass(frozen=True)
class HttpToolRow:
    index: int | None
    name: str
    description: str
    method: str
    url: str
    headers: str
    parameters: str
    needs_approval: bool
    extra: str

    @property
    def methods(self) -> tuple[str, ...]:
        return HTTP_METHODS


@dataclass(frozen=True)
class ToolsPanel:
    python: list[PythonToolRow]
    http: list[HttpToolRow]
    blank_http: HttpToolRow  # the template of a new HTTP tool


def _json(value: Any) -> str:
    if value is None or value == {}:
        return ""
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)


def _extra(spec: Mapping[str, Any], keys: tuple[str, ...]) -> str:
    return json.dumps({k: v for k, v in spec.items() if k not in keys}, ensure_ascii=False)


def tools_panel(config: Mapping[str, Any]) -> ToolsPanel:
    """The tools of an agent step's config, laid out for the panel."""
    raw = config.get("tools")
    specs = [
        (index, spec)
        for index, spec in enumerate(raw if isinstance(raw, list) else ())
        if isinstance(spec, Mapping)
    ]
    picked = {
        str(spec.get("name")): (index, spec)
        for index, spec in specs
        if spec.get("type") == "python"
    }
    python = []
    for name in sorted(TOOL_INFO):
        info = TOOL_INFO[name]
        index, spec = picked.get(name, (None, {}))
        python.append(
            PythonToolRow(
                name=name,
                description=info.description,
                schema=json.dumps(info.parameters, indent=2, sort_keys=True),
                picked=index is not None,
                needs_approval=bool(spec.get("needs_approval")),
                index=index,
                extra=_extra(spec, PYTHON_KEYS),
                registered=True,
            )
        )
    for name, (index, spec) in picked.items():  # picked, and not registered here
        if name not in TOOL_INFO:
            python.append(
                PythonToolRow(
                    name=name,
                    description="",
                    schema="",
                    picked=True,
                    needs_approval=bool(spec.get("needs_approval")),
                    index=index,
                    extra=_extra(spec, PYTHON_KEYS),
                    registered=False,
                )
            )
    http = [_http_row(index, spec) for index, spec in specs if spec.get("type") != "python"]
    return ToolsPanel(python, http, _http_row(None, {"method": "GET"}))


def _http_row(index: int | None, spec: Mapping[str, Any]) -> HttpToolRow:
    def text(key: str) -> str:
        value = spec.get(key)
        return "" if value is None else str(value)

    return HttpToolRow(
        index=index,
        name=text("name"),
        description=text("description"),
        method=text("method").upper() or "GET",
        url=text("url"),
        headers=_json(spec.get("headers")),
        parameters=_json(spec.get("parameters")),
        needs_approval=bool(spec.get("needs_approval")),
        extra=_extra(spec, HTTP_KEYS),
    )


def output_schema_problems(definition: Mapping[str, Any]) -> list[Issue]:
    """An LLM or agent step whose output schema is not a valid JSON Schema (the step would
    fail on its first call)."""
    issues: list[Issue] = []
    raw_steps = definition.get("steps") if isinstance(definition, Mapping) else None
    for index, raw in enumerate(raw_steps if isinstance(raw_steps, list) else ()):
        if not isinstance(raw, Mapping) or raw.get("kind") not in SCHEMA_KINDS:
            continue
        config = raw.get("config")
        schema = config.get("output_schema") if isinstance(config, Mapping) else None
        if not isinstance(schema, Mapping):
            continue  # absent, or not an object: the kind's own schema says so
        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError as exc:
            step_id = str(raw.get("id"))
            message = f"Step '{step_id}': the output schema is not a valid JSON Schema: "
            issues.append(
                Issue(
                    f"steps[{index}].config.output_schema",
                    message + exc.message,
                    step_id=step_id,
                )
            )
    return issues
