"""A readable diff between two definitions: what a reviewer of a new version wants to know,
down to each changed setting's old and new value."""

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from vectorbea.engine.graph import field_label
from vectorbea.steps.registry import KINDS, load_kinds
from vectorbea.workflows.checks import STEP_LABELS

MAX_VALUE_LENGTH = 160  # a longer value is cut short in the history
NOT_SET = "not set"
# The step settings every kind has, compared one by one after the kind's own settings.
STEP_SETTINGS = ("timeout_seconds", "on_failure", "on_error", "max_corrections", "allow_skip")


@dataclass(frozen=True)
class Change:
    action: str  # "added", "removed" or "changed": how the line is marked
    text: str
    old: str | None = None  # a changed setting's value before and after, as shown
    new: str | None = None

    @property
    def has_values(self) -> bool:
        return self.old is not None or self.new is not None


def shown(value: Any) -> str:
    """A setting's value as the history shows it: text as it is, the rest as JSON."""
    if value is None:
        return NOT_SET
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= MAX_VALUE_LENGTH else text[: MAX_VALUE_LENGTH - 1] + "…"


def _steps(definition: Any) -> dict[str, Mapping[str, Any]]:
    steps = definition.get("steps") if isinstance(definition, Mapping) else None
    return {
        raw["id"]: raw
        for raw in (steps if isinstance(steps, list) else ())
        if isinstance(raw, Mapping) and isinstance(raw.get("id"), str)
    }


def _edges(definition: Any) -> list[tuple[str, str, str | None]]:
    edges = definition.get("edges") if isinstance(definition, Mapping) else None
    found = []
    for raw in edges if isinstance(edges, list) else ():
        if isinstance(raw, Mapping):
            found.append((str(raw.get("source")), str(raw.get("target")), raw.get("port")))
    return found


def _label(step: Mapping[str, Any] | None, step_id: str) -> str:
    name = step.get("name") if step else None
    if isinstance(name, str) and name and name != step_id:
        return f"“{name}” ({step_id})"
    return f"“{step_id}”"


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _setting_changes(
    label: str, old: Mapping[str, Any], new: Mapping[str, Any], kind_name: Any
) -> list[Change]:
    """One change per setting whose value differs, with its old and new value."""
    load_kinds()
    kind = KINDS.get(str(kind_name))
    properties = _mapping(kind.config_schema.get("properties")) if kind else {}
    compared: list[tuple[str, Any, Any]] = []
    old_config, new_config = _mapping(old.get("config")), _mapping(new.get("config"))
    for key in [*properties, *sorted({*old_config, *new_config} - set(properties))]:
        compared.append(
            (field_label(key, properties.get(key)), old_config.get(key), new_config.get(key))
        )
    old_retry, new_retry = _mapping(old.get("retry")), _mapping(new.get("retry"))
    for key in sorted({*old_retry, *new_retry}):
        name = STEP_LABELS.get(f"retry.{key}") or field_label(key, None)
        compared.append((name, old_retry.get(key), new_retry.get(key)))
    for key in STEP_SETTINGS:
        compared.append((STEP_LABELS[key], old.get(key), new.get(key)))
    return [
        Change("changed", f"Changed step {label}: {name}", shown(before), shown(after))
        for name, before, after in compared
        if before != after
    ]


def _step_changes(step_id: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> list[Change]:
    changes = []
    old_name, new_name = old.get("name") or step_id, new.get("name") or step_id
    if old_name != new_name:
        changes.append(Change("changed", f"Renamed step “{old_name}” to “{new_name}”"))
    label = _label(new, step_id)
    if old.get("kind") != new.get("kind"):
        changes.append(
            Change(
                "changed",
                f"Changed step {label}: kind",
                shown(old.get("kind")),
                shown(new.get("kind")),
            )
        )
        return changes  # another kind's settings are not comparable one by one
    return changes + _setting_changes(label, old, new, new.get("kind"))


def _edge_text(edge: tuple[str, str, str | None], steps: Mapping[str, Mapping[str, Any]]) -> str:
    source, target, port = edge
    text = f"{_label(steps.get(source), source)} → {_label(steps.get(target), target)}"
    return f"{text} (when {port})" if port else text


def _input_changes(old: Any, new: Any) -> list[Change]:
    def fields(schema: Any) -> dict[str, Any]:
        props = schema.get("properties") if isinstance(schema, Mapping) else None
        return dict(props) if isinstance(props, Mapping) else {}

    def required(schema: Any) -> set[str]:
        names = schema.get("required") if isinstance(schema, Mapping) else None
        return set(names) if isinstance(names, list) else set()

    before, after = fields(old), fields(new)
    changes = [
        Change("added", f"Added input field “{name}”") for name in after if name not in before
    ]
    changes += [
        Change("removed", f"Removed input field “{name}”") for name in before if name not in after
    ]

    def described(schema: Any, name: str) -> str:
        prop = {k: v for k, v in _mapping(fields(schema).get(name)).items()}
        return shown({**prop, "required": name in required(schema)})

    changes += [
        Change(
            "changed", f"Changed input field “{name}”", described(old, name), described(new, name)
        )
        for name in after
        if name in before
        and (before[name] != after[name] or (name in required(old)) != (name in required(new)))
    ]
    if not changes and old != new:
        changes.append(Change("changed", "Changed the input schema"))
    return changes


def diff_definitions(old: Any, new: Any) -> list[Change]:
    """What changed from `old` to `new`, in plain words; [] when nothing did."""
    old_steps, new_steps = _steps(old), _steps(new)
    changes = [
        Change("added", f"Added step {_label(step, key)} ({step.get('kind')})")
        for key, step in new_steps.items()
        if key not in old_steps
    ]
    changes += [
        Change("removed", f"Removed step {_label(step, key)} ({step.get('kind')})")
        for key, step in old_steps.items()
        if key not in new_steps
    ]
    for key, step in new_steps.items():
        if key in old_steps:
            changes += _step_changes(key, old_steps[key], step)
    old_edges, new_edges = _edges(old), _edges(new)
    both = {**old_steps, **new_steps}
    changes += [
        Change("added", f"Connected {_edge_text(edge, both)}")
        for edge in new_edges
        if edge not in old_edges
    ]
    changes += [
        Change("removed", f"Disconnected {_edge_text(edge, both)}")
        for edge in old_edges
        if edge not in new_edges
    ]
    get = lambda d, k: d.get(k) if isinstance(d, Mapping) else None  # noqa: E731
    changes += _input_changes(get(old, "input_schema"), get(new, "input_schema"))
    if not changes and get(old, "layout") != get(new, "layout"):
        changes.append(Change("changed", "Moved steps on the canvas (no change to how it runs)"))
    return changes
