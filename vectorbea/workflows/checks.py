"""What the builder asks of the engine: a draft's problems, and each step's output ports."""

from collections.abc import Mapping
from typing import Any
from uuid import UUID

from vectorbea.engine import Issue, validate_definition
from vectorbea.steps.registry import KINDS, kind_specs
from vectorbea.steps.templating import template_problems
from vectorbea.steps.workspace_secrets import missing_secrets, secret_problems


def draft_issues(definition: Any, workspace_id: UUID | None = None) -> list[Issue]:
    """Every problem with a definition, as the engine sees it (never raises on junk). With
    the workspace it is checked in, also every secret it uses that the workspace lacks."""
    from vectorbea.steps.agent import agent_problems
    from vectorbea.workflows.agent_panel import output_schema_problems

    checks = [template_problems, secret_problems, agent_problems, output_schema_problems]
    if workspace_id is not None:
        checks.append(lambda data: missing_secrets(data, workspace_id))
    return validate_definition(definition, kind_specs(), checks=checks)


def issue_json(issue: Issue) -> dict[str, Any]:
    return {
        "path": issue.path,
        "message": issue.message,
        "step_id": issue.step_id,
        "edge_index": issue.edge_index,
    }


def step_ports(kind_name: str, config: Any) -> list[str] | None:
    """A step's named outputs, or None when it has one plain output (or we cannot tell)."""
    kind_specs()  # loads the kinds
    kind = KINDS.get(kind_name)
    if kind is None or kind.ports is None:
        return None
    try:
        return list(kind.ports(config if isinstance(config, Mapping) else {}))
    except Exception:  # half-written config: the step's issues say what is wrong
        return []


def ports_of(definition: Any) -> dict[str, list[str] | None]:
    """{step id: its ports} for every well-formed step of a definition."""
    steps = definition.get("steps") if isinstance(definition, Mapping) else None
    ports: dict[str, list[str] | None] = {}
    for raw in steps if isinstance(steps, list) else ():
        if isinstance(raw, Mapping) and isinstance(raw.get("id"), str):
            ports[raw["id"]] = step_ports(str(raw.get("kind")), raw.get("config"))
    return ports
