"""Small hand-made builders for engine tests."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from vectorbea.engine import (
    APPROVAL_PORTS,
    Definition,
    Event,
    KindSpec,
    Recorded,
    RunStarted,
    RunState,
    fold,
)

T0 = datetime(2025, 1, 1, 9, 0, tzinfo=UTC)


def branch_ports(config: dict[str, Any]) -> tuple[str, ...]:
    return tuple(config.get("ports", ("yes", "no")))


KINDS: dict[str, KindSpec] = {
    "noop": KindSpec("noop", {"type": "object"}),
    "http": KindSpec(
        "http",
        {
            "type": "object",
            "required": ["url", "method"],
            "properties": {
                "url": {"type": "string", "minLength": 1},
                "method": {"enum": ["GET", "POST"]},
                "headers": {"type": "object", "additionalProperties": {"type": "string"}},
            },
            "additionalProperties": False,
        },
    ),
    "branch": KindSpec(
        "branch",
        {
            "type": "object",
            "properties": {"ports": {"type": "array", "items": {"type": "string"}, "minItems": 1}},
        },
        ports=branch_ports,
    ),
    "delay": KindSpec("delay", {"type": "object"}),
    "approval": KindSpec("approval", {"type": "object"}, ports=lambda config: APPROVAL_PORTS),
}


def step(step_id: str, kind: str = "noop", **extra: Any) -> dict[str, Any]:
    return {"id": step_id, "kind": kind, **extra}


def edge(source: str, target: str, port: str | None = None) -> dict[str, Any]:
    return {"source": source, "target": target, "port": port}


def definition_json(
    steps: Sequence[dict[str, Any] | str], edges: Sequence[tuple[str, ...]] = ()
) -> dict[str, Any]:
    return {
        "steps": [step(item) if isinstance(item, str) else item for item in steps],
        "edges": [edge(*item) for item in edges],
    }


def definition(
    steps: Sequence[dict[str, Any] | str], edges: Sequence[tuple[str, ...]] = ()
) -> Definition:
    return Definition.from_json(definition_json(steps, edges))


def log(*events: Event, first_seq: int = 1, start: datetime = T0) -> list[Recorded]:
    """Recorded events one second apart, from ``start`` + ``first_seq`` seconds."""
    return [
        Recorded(seq, start + timedelta(seconds=seq), event)
        for seq, event in enumerate(events, first_seq)
    ]


def started(*events: Event) -> list[Recorded]:
    return log(RunStarted("wf", "v1", {"topic": "otters"}, started_by="alice"), *events)


def state_after(*events: Event) -> RunState:
    return fold(started(*events))


def event_types(events: Iterable[Event]) -> list[str]:
    return [type(event).__name__ for event in events]
