"""Workflows with approval gates, and small readers of what a run recorded."""

from typing import Any

from django.db import connection

from tests.support.live import event_rows, event_types
from tests.support.workflows import publish
from vectorbea.accounts.models import Workspace
from vectorbea.workflows.models import Workflow


def gate_step(step_id: str = "gate", name: str = "Refund", **config: Any) -> dict[str, Any]:
    return {
        "id": step_id,
        "kind": "approval",
        "name": name,
        "config": {
            "title": "Refund {{ input.amount }} EUR to {{ input.customer }}?",
            "instructions": "Check the order first.",
            "payload": {"amount": "{{ input.amount }}", "draft": "Dear {{ input.customer }}"},
            **config,
        },
    }


def gated(denied_edge: bool = False, after: str = "noop", **config: Any) -> dict[str, Any]:
    """gate → pay (→ sorry on the denied port)."""
    steps = [gate_step(**config), {"id": "pay", "kind": after, "config": {}}]
    edges = [{"source": "gate", "target": "pay", "port": None}]
    if denied_edge:
        steps.append({"id": "sorry", "kind": after, "config": {}})
        edges.append({"source": "gate", "target": "sorry", "port": "denied"})
    return {"input_schema": {"type": "object"}, "steps": steps, "edges": edges}


def two_gates_in_parallel(after: str = "noop", **config: Any) -> dict[str, Any]:
    """start → (legal gate, finance gate) → join."""
    return {
        "input_schema": {"type": "object"},
        "steps": [
            {"id": "start", "kind": after, "config": {}},
            gate_step("legal", "Legal review", **config),
            gate_step("finance", "Finance review", **config),
            {"id": "join", "kind": after, "config": {}},
        ],
        "edges": [
            {"source": "start", "target": "legal", "port": None},
            {"source": "start", "target": "finance", "port": None},
            {"source": "legal", "target": "join", "port": None},
            {"source": "finance", "target": "join", "port": None},
        ],
    }


def publish_gated(workspace: Workspace, definition: dict | None = None, **config: Any) -> Workflow:
    return publish(workspace, definition or gated(**config), name="Refunds")


def payloads(run_id, type_name: str) -> list[dict]:
    return [payload for _, t, payload in event_rows(run_id) if t == type_name]


def decisions(run_id) -> list[str]:
    return [t for t in event_types(run_id) if t in ("ApprovalGranted", "ApprovalDenied")]


def event_count(run_id) -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM eventlog_event WHERE run_id = %s", [run_id])
        return cursor.fetchone()[0]
