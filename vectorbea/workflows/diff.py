"""A readable diff between two definitions: what a reviewer of a new version wants to know."""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

STEP_FIELDS = (("kind", "kind"), ("config", "settings"), ("retry", "retry policy"))


@dataclass(frozen=True)
class Change:
    action: str  # "added", "removed" or "changed": how the line is marked
    text: str


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


def _setting_names(old: Any, new: Any) -> list[str]:
    old = old if isinstance(old, Mapping) else {}
    new = new if isinstance(new, Mapping) else {}
    return sorted(key for key in {*old, *new} if old.get(key) != new.get(key))


def _step_changes(step_id: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> list[Change]:
    changes = []
    old_name, new_name = old.get("name") or step_id, new.get("name") or step_id
    if old_name != new_name:
        changes.append(Change("changed", f"Renamed step “{old_name}” to “{new_name}”"))
    parts = []
    if old.get("kind") != new.get("kind"):
        parts.append(f"kind {old.get('kind')} → {new.get('kind')}")
    settings = _setting_names(old.get("config"), new.get("config"))
    if settings:
        parts.append("settings " + ", ".join(settings))
    if old.get("retry") != new.get("retry"):
        parts.append("retry policy")
    if old.get("timeout_seconds") != new.get("timeout_seconds"):
        parts.append("timeout")
    if parts:
        label = _label(new, step_id)
        changes.append(Change("changed", f"Changed step {label}: {'; '.join(parts)}"))
    return changes


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
    changes += [
        Change("changed", f"Changed input field “{name}”")
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
