"""Building workflows for tests: definitions as the builder would save them."""

from typing import Any

from vectorbea.accounts.models import Workspace
from vectorbea.workflows.models import Workflow, WorkflowVersion, content_hash

FAST_RETRY = {
    "maximum_attempts": 10,
    "initial_interval_seconds": 0.1,
    "backoff_coefficient": 1.0,
    "maximum_interval_seconds": 0.1,
}


def chain(n: int, kind: str = "noop", config: dict[str, Any] | None = None, **step) -> dict:
    """n steps in a line: s0 → s1 → … → s(n-1)."""
    steps = [{"id": f"s{i}", "kind": kind, "config": dict(config or {}), **step} for i in range(n)]
    edges = [{"source": f"s{i}", "target": f"s{i + 1}", "port": None} for i in range(n - 1)]
    return {"input_schema": {"type": "object"}, "steps": steps, "edges": edges}


def publish(workspace: Workspace, definition: dict, name: str = "Test workflow") -> Workflow:
    workflow = Workflow.objects.create(workspace=workspace, name=name, draft=definition)
    WorkflowVersion.objects.create(
        workflow=workflow, number=1, definition=definition, content_hash=content_hash(definition)
    )
    return workflow


def record(run_id, *facts) -> None:
    """Append what a worker would (facts + decide()), without a worker."""
    from vectorbea.eventlog import store
    from vectorbea.eventlog.record import then_decide

    loaded = store.load(run_id)
    store.append(
        run_id,
        loaded.state,
        then_decide(loaded.definition, list(facts)),
        loaded.definition,
        now=loaded.clock.now(),
    )
