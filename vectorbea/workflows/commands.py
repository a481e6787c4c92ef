"""The only writers of workflows: named actions the views (and the demo seed) call.

A draft is saved whole, with the revision it was based on; a save based on an older revision
is refused (someone else saved in between). Publishing copies the draft into a new immutable
WorkflowVersion, and only a draft without problems can be published.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.db.models import F
from django.db.models.functions import Now
from django.utils import timezone

from vectorbea.accounts.models import Workspace
from vectorbea.engine import MAX_STEPS, Issue, VectorbeaError
from vectorbea.engine.limits import BadJson, parse_json
from vectorbea.workflows.checks import draft_issues
from vectorbea.workflows.models import Workflow, WorkflowVersion, content_hash

MAX_NAME_LENGTH = 120
MAX_IMPORT_BYTES = 2_000_000
EXPORT_FORMAT = 1


def new_definition() -> dict[str, Any]:
    return {"input_schema": {"type": "object", "properties": {}}, "steps": [], "edges": []}


class DraftConflict(VectorbeaError):
    """Someone else saved the draft since the revision this change was based on."""

    def __init__(self, workflow: Workflow) -> None:
        self.revision = workflow.draft_revision
        self.updated_by = getattr(workflow.draft_updated_by, "username", None)
        self.updated_at = workflow.updated_at
        who = self.updated_by or "Someone else"
        super().__init__(
            f"{who} changed this draft since you opened it (now revision {self.revision})."
        )


class PublishRefused(VectorbeaError):
    def __init__(self, message: str, issues: list[Issue] | None = None) -> None:
        super().__init__(message)
        self.issues = issues or []


class ImportRefused(VectorbeaError):
    def __init__(self, problems: list[Issue]) -> None:
        super().__init__("; ".join(f"{p.path or '(file)'}: {p.message}" for p in problems))
        self.problems = problems


@dataclass(frozen=True)
class Imported:
    name: str | None
    definition: dict[str, Any]


def name_too_long(length: int) -> str:
    return (
        f"The workflow's name is {length:,} characters long; "
        f"a name can have at most {MAX_NAME_LENGTH} characters."
    )


def clean_name(name: str) -> str:
    return " ".join(str(name).split())[:MAX_NAME_LENGTH]


class NameTaken(VectorbeaError):
    """Another workflow of the workspace (archived ones included) has this name."""


def name_taken_message(workspace: Workspace, name: str) -> str:
    return (
        f"{workspace.name} already has a workflow named “{name}”. "
        "Give this one a different name, so runs and approvals say which workflow they are."
    )


def ensure_name_free(workspace: Workspace, name: str, exclude: Workflow | None = None) -> None:
    """NameTaken if another workflow of `workspace` has `name` (ignoring case)."""
    others = Workflow.objects.filter(workspace=workspace, name__iexact=name)
    if exclude is not None:
        others = others.exclude(pk=exclude.pk)
    if others.exists():
        raise NameTaken(name_taken_message(workspace, name))


def free_name(workspace: Workspace, wanted: str) -> str:
    """`wanted`, or "wanted (2)", "wanted (3)", ...: the first that no workflow has."""
    taken = {
        name.lower()
        for name in Workflow.objects.filter(
            workspace=workspace, name__istartswith=wanted[: MAX_NAME_LENGTH - 8]
        ).values_list("name", flat=True)
    }
    name, number = wanted, 1
    while name.lower() in taken:
        number += 1
        suffix = f" ({number})"
        name = wanted[: MAX_NAME_LENGTH - len(suffix)] + suffix
    return name


def create_workflow(
    workspace: Workspace, user: Any, name: str, definition: dict[str, Any] | None = None
) -> Workflow:
    """A new workflow; NameTaken if the workspace already has one of that name."""
    name = clean_name(name) or "Untitled workflow"
    ensure_name_free(workspace, name)
    return Workflow.objects.create(
        workspace=workspace,
        name=name,
        draft=definition if definition is not None else new_definition(),
        created_by=user,
        draft_updated_by=user,
    )


def rename_workflow(workflow: Workflow, name: str) -> None:
    """NameTaken if another workflow of its workspace has the new name."""
    name = clean_name(name) or workflow.name
    ensure_name_free(workflow.workspace, name, exclude=workflow)
    workflow.name = name
    workflow.save(update_fields=["name", "updated_at"])


def duplicate_workflow(workflow: Workflow, user: Any) -> Workflow:
    name = free_name(workflow.workspace, clean_name(f"Copy of {workflow.name}"))
    return create_workflow(workflow.workspace, user, name, dict(workflow.draft))


def archive_workflow(workflow: Workflow) -> None:
    workflow.archived_at = timezone.now()
    workflow.save(update_fields=["archived_at", "updated_at"])


def unarchive_workflow(workflow: Workflow) -> None:
    workflow.archived_at = None
    workflow.save(update_fields=["archived_at", "updated_at"])


def save_draft(workflow: Workflow, definition: Any, based_on: int, user: Any) -> int:
    """Save the whole draft if nobody saved since revision `based_on`; the new revision.

    A draft with problems is saved all the same: only publishing needs a valid one."""
    saved = Workflow.objects.filter(pk=workflow.pk, draft_revision=based_on).update(
        draft=definition,
        draft_revision=F("draft_revision") + 1,
        draft_updated_by=user,
        updated_at=Now(),
    )
    if not saved:
        raise DraftConflict(Workflow.objects.select_related("draft_updated_by").get(pk=workflow.pk))
    return based_on + 1


def publish_draft(workflow: Workflow, based_on: int, user: Any) -> WorkflowVersion:
    """Publish the draft as revision `based_on` showed it: a new immutable version."""
    with transaction.atomic():
        current = (
            Workflow.objects.select_for_update(of=("self",))
            .select_related("draft_updated_by")
            .get(pk=workflow.pk)
        )
        if current.draft_revision != based_on:
            raise DraftConflict(current)
        issues = draft_issues(current.draft, current.workspace_id)
        if issues:
            count = f"{len(issues)} problem{'s' if len(issues) != 1 else ''}"
            raise PublishRefused(f"Fix {count} before publishing.", issues)
        latest = current.versions.order_by("-number").first()
        digest = content_hash(current.draft)
        if latest is not None and latest.content_hash == digest:
            raise PublishRefused(f"Nothing to publish: the draft is the same as v{latest.number}.")
        return WorkflowVersion.objects.create(
            workflow=current,
            number=(latest.number if latest else 0) + 1,
            definition=current.draft,
            content_hash=digest,
            created_by=user,
        )


def restore_version(workflow: Workflow, version: WorkflowVersion, user: Any) -> int:
    """Make a version's definition the draft again (the draft's own history moves on)."""
    Workflow.objects.filter(pk=workflow.pk).update(
        draft=version.definition,
        draft_revision=F("draft_revision") + 1,
        draft_updated_by=user,
        updated_at=Now(),
    )
    return Workflow.objects.values_list("draft_revision", flat=True).get(pk=workflow.pk)


# --- import and export ---------------------------------------------------------------------


def export_document(name: str, definition: dict[str, Any]) -> dict[str, Any]:
    return {"vectorbea": EXPORT_FORMAT, "name": name, "definition": definition}


def parse_import(text: str | bytes) -> Imported:
    """An exported workflow (or a bare definition), checked whole; ImportRefused lists every
    problem with its path in the file."""
    try:
        data = parse_json(text, "The file", max_bytes=MAX_IMPORT_BYTES)
    except BadJson as exc:  # the message says where in the file
        raise ImportRefused([Issue("", exc.message)]) from None
    if not isinstance(data, Mapping):
        raise ImportRefused([Issue("", "The file must hold a JSON object (a workflow).")])
    prefix, name = "", None
    if "definition" in data:
        prefix, name = "definition.", data.get("name")
        if name is not None and not isinstance(name, str):
            raise ImportRefused([Issue("name", "The workflow's name must be text.")])
        if name is not None and len(name) > MAX_NAME_LENGTH:
            raise ImportRefused([Issue("name", name_too_long(len(name)))])
        data = data["definition"]
    steps = data.get("steps") if isinstance(data, Mapping) else None
    if isinstance(steps, list) and len(steps) > MAX_STEPS:
        message = (
            f"This workflow has {len(steps)} steps; a workflow can have at most {MAX_STEPS}. "
            "Split it into smaller workflows."
        )
        raise ImportRefused([Issue(f"{prefix}steps", message)])
    issues = draft_issues(data)
    if issues:
        raise ImportRefused(
            [
                Issue(
                    (prefix + issue.path).rstrip("."),
                    issue.message,
                    issue.step_id,
                    issue.edge_index,
                )
                for issue in issues
            ]
        )
    return Imported(name=name, definition=dict(data))


def import_workflow(workspace: Workspace, user: Any, text: str | bytes, name: str = "") -> Workflow:
    """Create a workflow from an exported file; nothing is saved unless all of it is valid."""
    imported = parse_import(text)
    return create_workflow(
        workspace, user, name or imported.name or "Imported workflow", imported.definition
    )
