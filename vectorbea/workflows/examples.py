"""Example workflows a new workspace starts with: each runs without any outside service
except where its input says so (the URL to fetch) or it asks a model: LLM steps name no
provider, so they call the workspace's default provider (Settings → Providers) with its
default model. Until the workspace has one, such a run stops at the step and says where to
add one.

`install_examples(workspace, user)` creates them, each with a published v1; calling it again
changes nothing (examples are found again by name)."""

from typing import Any

from vectorbea.accounts.models import Workspace
from vectorbea.workflows import commands
from vectorbea.workflows.models import Workflow

TEXT = {"type": "string"}


def _schema(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": required,
        "x-order": list(properties),  # jsonb keeps keys in its own order
    }


def _edge(source: str, target: str, port: str | None = None) -> dict[str, Any]:
    return {"source": source, "target": target, "port": port}


TRIAGE = {
    "input_schema": _schema(
        {
            "ticket": {**TEXT, "description": "What the customer wrote"},
            "customer": {**TEXT, "description": "Who wrote it"},
        },
        ["ticket"],
    ),
    "steps": [
        {
            "id": "read",
            "kind": "transform",
            "name": "Read the ticket",
            "config": {
                "output": {
                    "text": "{{ input.ticket }}",
                    "customer": "{{ input.customer | default('unknown') }}",
                    "urgent": "{{ 'urgent' in (input.ticket | lower) }}",
                }
            },
        },
        {
            "id": "route",
            "kind": "branch",
            "name": "Is it urgent?",
            "config": {
                "conditions": [{"port": "urgent", "when": "{{ steps.read.output.urgent }}"}],
                "default_port": "normal",
            },
        },
        {
            "id": "approve",
            "kind": "approval",
            "name": "Escalate to on-call?",
            "config": {
                "title": "Page the on-call engineer for this ticket?",
                "instructions": "Approve if the customer is blocked right now.",
                "payload": "{{ steps.read.output }}",
                "timeout_seconds": 86400,
                "on_timeout": "deny",
            },
        },
        {
            "id": "escalate",
            "kind": "transform",
            "name": "Escalate",
            "config": {"output": {"queue": "on-call", "ticket": "{{ steps.read.output.text }}"}},
        },
        {
            "id": "file",
            "kind": "transform",
            "name": "File in the normal queue",
            "config": {"output": {"queue": "support", "ticket": "{{ steps.read.output.text }}"}},
        },
    ],
    "edges": [
        _edge("read", "route"),
        _edge("route", "approve", "urgent"),
        _edge("route", "file", "normal"),
        _edge("approve", "escalate", "approved"),
    ],
}

FETCH_AND_SUMMARISE = {
    "input_schema": _schema(
        {"url": {**TEXT, "description": "A public web page or API to read, https://…"}}, ["url"]
    ),
    "steps": [
        {
            "id": "fetch",
            "kind": "http",
            "name": "Fetch the page",
            "config": {"method": "GET", "url": "{{ input.url }}"},
            "retry": {"maximum_attempts": 3, "initial_interval_seconds": 2},
        },
        {
            "id": "summarise",
            "kind": "llm",
            "name": "Summarise",
            "config": {
                "system": "You summarise documents for busy engineers.",
                "prompt": "Summarise this in three short bullet points:\n\n"
                "{{ steps.fetch.output.body }}",
                "max_tokens": 400,
            },
        },
    ],
    "edges": [_edge("fetch", "summarise")],
}

WAIT_AND_REMIND = {
    "input_schema": _schema(
        {
            "message": {**TEXT, "description": "What to remind about"},
            "wait_seconds": {
                "type": "number",
                "minimum": 0,
                "maximum": 2592000,
                "description": "How long to wait first, in seconds (up to 30 days)",
            },
        },
        ["message", "wait_seconds"],
    ),
    "steps": [
        {
            "id": "wait",
            "kind": "delay",
            "name": "Wait",
            "config": {"seconds": "{{ input.wait_seconds }}"},
        },
        {
            "id": "remind",
            "kind": "transform",
            "name": "Remind",
            "config": {"output": {"reminder": "{{ input.message }}"}},
        },
    ],
    "edges": [_edge("wait", "remind")],
}

ASK_A_MODEL = {
    "input_schema": _schema(
        {"question": {**TEXT, "description": "What to ask the model"}}, ["question"]
    ),
    "steps": [
        {
            "id": "answer",
            "kind": "llm",
            "name": "Ask the model",
            "config": {
                "system": "You answer in two or three plain sentences.",
                "prompt": "{{ input.question }}",
                "max_tokens": 300,
            },
        },
    ],
    "edges": [],
}

EXAMPLES: dict[str, dict[str, Any]] = {
    "Triage a ticket": TRIAGE,
    "Fetch and summarise": FETCH_AND_SUMMARISE,
    "Wait and remind": WAIT_AND_REMIND,
    "Ask a model": ASK_A_MODEL,
}


def install_examples(workspace: Workspace, user: Any = None) -> list[Workflow]:
    """Create the example workflows in `workspace`, each with a published v1. Idempotent."""
    installed = []
    for name, definition in EXAMPLES.items():
        workflow = Workflow.objects.filter(workspace=workspace, name=name).first()
        if workflow is None:
            workflow = commands.create_workflow(workspace, user, name, definition)
        if not workflow.versions.exists():
            commands.publish_draft(workflow, workflow.draft_revision, user)
        installed.append(workflow)
    return installed
