"""The Python tools and output validators this installation registers (@tool and @validator
in the modules VECTORBEA_TOOL_MODULES names), as the tools page lists them."""

import inspect
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from vectorbea.steps import tools as tools_module
from vectorbea.steps.registry import load_kinds
from vectorbea.workflows.models import Workflow

# Where a tool's declared argument schema may be kept: an attribute of the function, or a
# {name: schema} table beside TOOLS.
SCHEMA_ATTRIBUTES = ("schema", "args_schema", "input_schema")
SCHEMA_TABLES = ("TOOL_SCHEMAS", "SCHEMAS")


@dataclass
class Registered:
    name: str
    module: str
    doc: str
    is_async: bool
    signature: str
    schema: str = ""  # the declared schema, as indented JSON; "" when none is declared
    used_by: list[Workflow] = field(default_factory=list)


def declared_schema(name: str, function: Callable[..., Any]) -> Any:
    for attribute in SCHEMA_ATTRIBUTES:
        value = getattr(function, attribute, None)
        if isinstance(value, Mapping):
            return value
    for table_name in SCHEMA_TABLES:
        table = getattr(tools_module, table_name, None)
        if isinstance(table, Mapping) and isinstance(table.get(name), Mapping):
            return table[name]
    return None


def _describe(name: str, function: Callable[..., Any]) -> Registered:
    target = inspect.unwrap(function)
    try:
        signature = f"{target.__name__}{inspect.signature(target)}"
    except (TypeError, ValueError):
        signature = getattr(target, "__name__", name)
    schema = declared_schema(name, function)
    return Registered(
        name=name,
        module=getattr(target, "__module__", "") or "",
        doc=inspect.cleandoc(target.__doc__ or ""),
        is_async=inspect.iscoroutinefunction(target),
        signature=signature,
        schema=json.dumps(schema, indent=2, sort_keys=True, default=str) if schema else "",
    )


def _uses(workflows: Iterable[Workflow], kind: str, setting: str) -> dict[str, list[Workflow]]:
    """{name: the workflows whose draft has a `kind` step naming it in `setting`}."""
    found: dict[str, list[Workflow]] = {}
    for workflow in workflows:
        steps = workflow.draft.get("steps") if isinstance(workflow.draft, Mapping) else None
        names = set()
        for raw in steps if isinstance(steps, list) else ():
            if not isinstance(raw, Mapping) or raw.get("kind") != kind:
                continue
            config = raw.get("config")
            if isinstance(config, Mapping) and isinstance(config.get(setting), str):
                names.add(config[setting])
        for name in names:
            found.setdefault(name, []).append(workflow)
    return found


def registered(workspace: Any) -> tuple[list[Registered], list[Registered]]:
    """(tools, validators), by name, each with the workspace's workflows that use it."""
    load_kinds()
    workflows = list(
        Workflow.objects.filter(workspace=workspace, archived_at__isnull=True).order_by("name")
    )
    tool_uses = _uses(workflows, "tool", "tool")
    validator_uses = _uses(workflows, "llm", "validator")
    tools = [_describe(name, fn) for name, fn in sorted(tools_module.TOOLS.items())]
    validators = [_describe(name, fn) for name, fn in sorted(tools_module.VALIDATORS.items())]
    for item in tools:
        item.used_by = tool_uses.get(item.name, [])
    for item in validators:
        item.used_by = validator_uses.get(item.name, [])
    return tools, validators
