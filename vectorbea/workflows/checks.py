"""What the builder asks of the engine: a draft's problems, said with the labels a person
sees (step names, field labels), and each step's output ports."""

import re
from collections.abc import Mapping
from typing import Any
from uuid import UUID

from vectorbea.engine import Issue, validate_definition
from vectorbea.engine.graph import field_label
from vectorbea.llm.resolve import provider_problems
from vectorbea.steps.registry import KINDS, kind_specs
from vectorbea.steps.templating import template_problems
from vectorbea.steps.workspace_secrets import missing_secrets, secret_problems


def draft_issues(definition: Any, workspace_id: UUID | None = None) -> list[Issue]:
    """Every problem with a definition, as the engine sees it (never raises on junk). With
    the workspace it is checked in, also every secret and provider it uses that the workspace
    lacks, and every address it calls that the installation refuses."""
    from vectorbea.steps.agent import agent_problems
    from vectorbea.workflows.agent_panel import output_schema_problems

    checks = [template_problems, secret_problems, agent_problems, output_schema_problems]
    if workspace_id is not None:
        checks.append(lambda data: missing_secrets(data, workspace_id))
        checks.append(lambda data: provider_problems(data, workspace_id))
    return validate_definition(definition, kind_specs(), checks=checks)


def issue_json(issue: Issue, definition: Any = None) -> dict[str, Any]:
    """An issue for the builder: `where` it is by labels ("Branch 1 → Condition 1 → When"),
    what to do (`advice`), and `message`, the two together."""
    where = issue_where(definition, issue)
    return {
        "path": issue.path,
        "where": where,
        "advice": named(definition, issue.advice),
        "message": plain_message(definition, issue, where),
        "step_id": issue.step_id,
        "edge_index": issue.edge_index,
    }


def issues_json(issues: list[Issue], definition: Any) -> list[dict[str, Any]]:
    """The builder's problem list: each problem once, said by labels."""
    seen: set[str] = set()
    listed = []
    for issue in issues:
        item = issue_json(issue, definition)
        if item["message"] not in seen:
            seen.add(item["message"])
            listed.append(item)
    return listed


# Labels of the step settings every kind has (the panel's "Retries, timeout and failures").
STEP_LABELS = {
    "id": "Id",
    "kind": "Kind",
    "name": "Step name",
    "config": "Settings",
    "retry": "Retries",
    "retry.maximum_attempts": "Maximum attempts",
    "retry.initial_interval_seconds": "First retry after (seconds)",
    "retry.backoff_coefficient": "Backoff coefficient",
    "retry.maximum_interval_seconds": "Longest wait (seconds)",
    "retry.jitter": "Jitter",
    "timeout_seconds": "Step timeout (seconds)",
    "on_failure": "If it cannot succeed",
    "on_error": "What each error leads to",
    "max_corrections": "Corrections of an invalid answer",
    "allow_skip": "A person may skip this step",
}
PATH_PART = re.compile(r"\.?([A-Za-z_][A-Za-z0-9_-]*)|\[(\d+)\]|\['((?:[^'\\]|\\.)*)'\]")


def _path_parts(path: str) -> list[str | int]:
    parts: list[str | int] = []
    for match in PATH_PART.finditer(path):
        name, index, quoted = match.groups()
        if index is not None:
            parts.append(int(index))
        else:
            parts.append(name if name is not None else quoted.replace("\\'", "'"))
    return parts


def _steps(definition: Any) -> list[Any]:
    steps = definition.get("steps") if isinstance(definition, Mapping) else None
    return steps if isinstance(steps, list) else []


MAX_LABEL_LENGTH = 60  # a longer step name is cut short where a problem names its step


def _step_label(raw: Any, fallback: str) -> str:
    name = raw.get("name") if isinstance(raw, Mapping) else None
    label = name.strip() if isinstance(name, str) and name.strip() else fallback
    return label if len(label) <= MAX_LABEL_LENGTH else label[: MAX_LABEL_LENGTH - 1] + "…"


def _singular(label: str, number: int) -> str:
    return f"{label[:-1]} {number}" if label.endswith("s") else f"{label}, item {number}"


def _config_labels(kind_name: Any, parts: list[str | int]) -> list[str]:
    kind = KINDS.get(str(kind_name))
    schema: Any = kind.config_schema if kind is not None else {}
    labels: list[str] = []
    for part in parts:
        if isinstance(part, int):
            label = labels.pop() if labels else "Item"
            labels.append(_singular(label, part + 1))
            schema = schema.get("items") if isinstance(schema, Mapping) else None
            continue
        properties = schema.get("properties") if isinstance(schema, Mapping) else None
        if isinstance(properties, Mapping) and part in properties:
            schema = properties[part]
            labels.append(field_label(part, schema))
        else:  # a key of a free-form object (a header's name, a tool argument)
            labels.append(f"“{part}”")
            schema = None
    return labels or [STEP_LABELS["config"]]


def issue_where(definition: Any, issue: Issue) -> str:
    """Where an issue is, by the labels a person sees in the builder."""
    kind_specs()  # loads the kinds
    steps = _steps(definition)
    parts = _path_parts(issue.path)
    if parts[:1] == ["steps"] and len(parts) > 1 and isinstance(parts[1], int):
        index = parts[1]
        raw = steps[index] if index < len(steps) else None
        fallback = issue.step_id or f"Step {index + 1}"
        labels = [_step_label(raw, fallback)]
        rest = parts[2:]
        if rest[:1] == ["config"]:
            labels += _config_labels(
                raw.get("kind") if isinstance(raw, Mapping) else None, rest[1:]
            )
        elif rest:
            key = ".".join(str(p) for p in rest[:2])
            label = STEP_LABELS.get(key) or STEP_LABELS.get(str(rest[0]))
            labels.append(label or field_label(str(rest[0]), None))
        return " → ".join(labels)
    if issue.step_id is not None:
        raw = next(
            (s for s in steps if isinstance(s, Mapping) and s.get("id") == issue.step_id), None
        )
        return _step_label(raw, issue.step_id)
    if parts[:1] == ["input_schema"]:
        return "Run input"
    if parts[:1] == ["edges"]:
        return "Connections"
    return "Workflow"


def plain_message(definition: Any, issue: Issue, where: str | None = None) -> str:
    """The issue as the builder says it: "<where>: <what to do>", or, for an issue that
    says it all (a cycle, an unconnected step), its message with step ids replaced by the
    steps' names."""
    where = issue_where(definition, issue) if where is None else where
    if issue.advice:
        return f"{where}: {named(definition, issue.advice)}"
    return named(definition, issue.message)


def named(definition: Any, text: str) -> str:
    """`text` with each quoted step id ('branch_1') replaced by the step's name."""
    for raw in _steps(definition):
        if isinstance(raw, Mapping) and isinstance(raw.get("id"), str):
            text = text.replace(f"'{raw['id']}'", f"“{_step_label(raw, raw['id'])}”")
    return text


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
