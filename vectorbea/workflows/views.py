"""Workflow pages: the list, the builder (canvas + config panel), versions, import/export,
and the form that starts a run. Every view goes through workspace_view."""

import json
from datetime import timedelta
from typing import Any
from uuid import UUID

from django.contrib import messages
from django.core.exceptions import RequestDataTooBig
from django.db.models import Count, IntegerField, OuterRef, Subquery
from django.db.models.functions import Coalesce
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from vectorbea.accounts.access import Access, Capability, workspace_view
from vectorbea.engine.graph import MAX_STEP_NAME_LENGTH
from vectorbea.engine.limits import BadJson, parse_json
from vectorbea.eventlog.models import Run
from vectorbea.keys import vault
from vectorbea.runs.commands import CannotStart, InvalidRunInput, start_run
from vectorbea.steps.flow import run_by_the_engine
from vectorbea.steps.registry import KINDS
from vectorbea.workflows import commands, panel, tools_list, trial
from vectorbea.workflows.checks import draft_issues, issues_json, ports_of
from vectorbea.workflows.diff import diff_definitions
from vectorbea.workflows.forms import ImportForm, NameForm, RunInputForm
from vectorbea.workflows.models import Workflow, WorkflowVersion, content_hash

MAX_DRAFT_BYTES = commands.MAX_IMPORT_BYTES


def get_workflow(access: Access, workflow_id: UUID) -> Workflow:
    """A workflow of this workspace, or 404: another workspace's does not exist here."""
    return get_object_or_404(
        Workflow.objects.select_related("draft_updated_by"),
        pk=workflow_id,
        workspace=access.workspace,
    )


def get_version(workflow: Workflow, number: int) -> WorkflowVersion:
    return get_object_or_404(
        WorkflowVersion.objects.select_related("created_by"), workflow=workflow, number=number
    )


# --- the list ------------------------------------------------------------------------------


def workflow_rows(access: Access, archived: bool) -> list[Workflow]:
    """The workspace's workflows with their latest version, last run status and the number
    of runs in the last 24 hours: one query."""
    since = timezone.now() - timedelta(hours=24)
    latest = WorkflowVersion.objects.filter(workflow=OuterRef("pk")).order_by("-number")
    last_run = Run.objects.filter(workflow=OuterRef("pk")).order_by("-created_at")
    recent = (
        Run.objects.filter(workflow=OuterRef("pk"), created_at__gte=since)
        .order_by()
        .values("workflow")
        .annotate(n=Count("*"))
        .values("n")
    )
    return list(
        Workflow.objects.filter(workspace=access.workspace, archived_at__isnull=not archived)
        .annotate(
            latest_number=Subquery(latest.values("number")[:1]),
            last_run_id=Subquery(last_run.values("id")[:1]),
            last_run_status=Subquery(last_run.values("summary__status")[:1]),
            runs_24h=Coalesce(Subquery(recent, output_field=IntegerField()), 0),
        )
        .order_by("-updated_at")
    )


@workspace_view(Capability.VIEW)
@require_GET
def workflows(request: HttpRequest, access: Access) -> HttpResponse:
    archived = request.GET.get("archived") == "1"
    rows = workflow_rows(access, archived)
    archived_count = (
        0
        if archived
        else Workflow.objects.filter(workspace=access.workspace, archived_at__isnull=False).count()
    )
    context = {
        "access": access,
        "rows": rows,
        "archived": archived,
        "archived_count": archived_count,
        "can_edit": access.can(Capability.EDIT_WORKFLOWS),
        "can_run": access.can(Capability.START_RUNS),
    }
    return render(request, "workflows/list.html", context)


@workspace_view(Capability.EDIT_WORKFLOWS)
@require_http_methods(["GET", "POST"])
def workflow_create(request: HttpRequest, access: Access) -> HttpResponse:
    form = NameForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            workflow = commands.create_workflow(
                access.workspace, request.user, form.cleaned_data["name"]
            )
        except commands.NameTaken as exc:
            form.add_error("name", str(exc))
        else:
            return redirect("workflow-builder", ws=access.workspace.slug, workflow_id=workflow.id)
    status = 400 if form.errors else 200
    context = {"access": access, "form": form, "import_form": ImportForm()}
    return render(request, "workflows/create.html", context, status=status)


@workspace_view(Capability.EDIT_WORKFLOWS)
@require_http_methods(["GET", "POST"])
def workflow_import(request: HttpRequest, access: Access) -> HttpResponse:
    form = ImportForm(request.POST or None, request.FILES or None)
    problems = []
    if request.method == "POST" and form.is_valid():
        try:
            workflow = commands.import_workflow(
                access.workspace, request.user, form.cleaned_data["json"], form.cleaned_data["name"]
            )
        except commands.ImportRefused as exc:
            problems = exc.problems
        except commands.NameTaken as exc:
            form.add_error("name", str(exc))
        else:
            messages.success(request, f"Imported “{workflow.name}” as a draft.")
            return redirect("workflow-builder", ws=access.workspace.slug, workflow_id=workflow.id)
    status = 400 if (form.errors or problems) else 200
    context = {"access": access, "form": form, "problems": problems}
    return render(request, "workflows/import.html", context, status=status)


@workspace_view(Capability.EDIT_WORKFLOWS)
@require_http_methods(["GET", "POST"])
def workflow_rename(request: HttpRequest, access: Access, workflow_id: UUID) -> HttpResponse:
    workflow = get_workflow(access, workflow_id)
    form = NameForm(request.POST or None, initial={"name": workflow.name})
    if request.method == "POST" and form.is_valid():
        try:
            commands.rename_workflow(workflow, form.cleaned_data["name"])
        except commands.NameTaken as exc:
            form.add_error("name", str(exc))
        else:
            if request.htmx:
                context = {"workflow": workflow, "can_edit": True}
                return render(request, "workflows/builder.html#title", context)
            messages.success(request, f"Renamed to “{workflow.name}”.")
            return redirect("workflows", ws=access.workspace.slug)
    if request.htmx and form.errors:
        # The builder's title: the old name back, with why (a 200, so that htmx swaps it in).
        workflow.refresh_from_db(fields=["name"])
        context = {
            "workflow": workflow,
            "can_edit": True,
            "title_error": " ".join(form.errors["name"]),
        }
        return render(request, "workflows/builder.html#title", context)
    status = 400 if form.errors else 200
    context = {"access": access, "form": form, "workflow": workflow}
    return render(request, "workflows/rename.html", context, status=status)


@workspace_view(Capability.EDIT_WORKFLOWS)
@require_POST
def workflow_duplicate(request: HttpRequest, access: Access, workflow_id: UUID) -> HttpResponse:
    copy = commands.duplicate_workflow(get_workflow(access, workflow_id), request.user)
    messages.success(request, f"Created “{copy.name}” from the draft.")
    return redirect("workflow-builder", ws=access.workspace.slug, workflow_id=copy.id)


@workspace_view(Capability.EDIT_WORKFLOWS)
@require_POST
def workflow_archive(request: HttpRequest, access: Access, workflow_id: UUID) -> HttpResponse:
    workflow = get_workflow(access, workflow_id)
    if request.POST.get("restore") == "1":
        commands.unarchive_workflow(workflow)
        messages.success(request, f"Restored “{workflow.name}” from the archive.")
    else:
        commands.archive_workflow(workflow)
        messages.success(
            request,
            f"Archived “{workflow.name}”. Runs in progress go on; it can be restored any time.",
        )
    return redirect("workflows", ws=access.workspace.slug)


# --- the builder ---------------------------------------------------------------------------


def _builder_context(
    request: HttpRequest,
    access: Access,
    workflow: Workflow,
    definition: dict[str, Any],
    version: WorkflowVersion | None,
) -> dict[str, Any]:
    can_edit = access.can(Capability.EDIT_WORKFLOWS) and version is None
    ws, wid = access.workspace.slug, workflow.id
    latest = workflow.latest_version()
    data = {
        "workflowId": str(wid),
        "revision": workflow.draft_revision,
        "definition": definition,
        "kinds": panel.palette(),
        "ports": ports_of(definition),
        "issues": issues_json(draft_issues(definition, access.workspace.id), definition),
        "readOnly": not can_edit,
        "unpublished": _unpublished(workflow, definition) if version is None else False,
        "urls": {
            "draft": reverse("workflow-draft", args=[ws, wid]),
            "panel": reverse("workflow-panel", args=[ws, wid]),
            "publish": reverse("workflow-publish", args=[ws, wid]),
        },
        "user": request.user.get_username(),
    }
    return {
        "access": access,
        "workflow": workflow,
        "version": version,
        "latest": latest,
        "can_edit": can_edit,
        "can_run": access.can(Capability.START_RUNS),
        "can_restore": access.can(Capability.EDIT_WORKFLOWS) and version is not None,
        "palette": data["kinds"] if can_edit else [],
        "builder_data": data,
    }


@workspace_view(Capability.VIEW)
@require_GET
def workflow_builder(request: HttpRequest, access: Access, workflow_id: UUID) -> HttpResponse:
    workflow = get_workflow(access, workflow_id)
    context = _builder_context(request, access, workflow, workflow.draft, None)
    return render(request, "workflows/builder.html", context)


def _unpublished(workflow: Workflow, definition: Any) -> bool:
    """Whether the draft differs from the latest published version (or none exists)."""
    latest = workflow.versions.order_by("-number").values_list("content_hash", flat=True).first()
    return latest != content_hash(definition)


def _posted_definition(request: HttpRequest) -> tuple[Any, int | None]:
    """(definition, revision) from a JSON body, or from form fields (navigator.sendBeacon);
    BadJson or ValueError says what is wrong with them."""
    try:
        if request.content_type == "application/json":
            body = parse_json(request.body, "The draft", max_bytes=MAX_DRAFT_BYTES)
            if not isinstance(body, dict):
                raise ValueError("Send an object with a definition and a revision.")
            definition, revision = body.get("definition"), body.get("revision")
        else:
            text = request.POST.get("definition", "null")
            definition = parse_json(text, "The draft", max_bytes=MAX_DRAFT_BYTES)
            revision = request.POST.get("revision")
    except RequestDataTooBig:
        raise ValueError(f"The draft is larger than {MAX_DRAFT_BYTES:,} bytes.") from None
    try:
        return definition, int(revision) if revision is not None else None
    except (TypeError, ValueError) as exc:
        raise ValueError("The revision must be a whole number.") from exc


def _conflict(exc: commands.DraftConflict) -> JsonResponse:
    return JsonResponse(
        {
            "error": "conflict",
            "message": str(exc),
            "revision": exc.revision,
            "updatedBy": exc.updated_by,
            "updatedAt": exc.updated_at.isoformat() if exc.updated_at else None,
        },
        status=409,
    )


@workspace_view(Capability.EDIT_WORKFLOWS)
@require_POST
def workflow_draft(request: HttpRequest, access: Access, workflow_id: UUID) -> HttpResponse:
    """Autosave: the whole draft and the revision it is based on. Saved with its problems;
    refused (409) when someone else saved in between."""
    workflow = get_workflow(access, workflow_id)
    try:
        definition, revision = _posted_definition(request)
    except (BadJson, ValueError) as exc:
        return JsonResponse({"error": "invalid", "message": str(exc)}, status=400)
    if not isinstance(definition, dict) or revision is None:
        message = "Send the draft as a JSON object with the revision it is based on."
        return JsonResponse({"error": "invalid", "message": message}, status=400)
    try:
        new_revision = commands.save_draft(workflow, definition, revision, request.user)
    except commands.DraftConflict as exc:
        return _conflict(exc)
    return JsonResponse(
        {
            "revision": new_revision,
            "issues": issues_json(draft_issues(definition, access.workspace.id), definition),
            "ports": ports_of(definition),
            "unpublished": _unpublished(workflow, definition),
            "savedAt": timezone.now().isoformat(),
        }
    )


@workspace_view(Capability.EDIT_WORKFLOWS)
@require_POST
def workflow_publish(request: HttpRequest, access: Access, workflow_id: UUID) -> HttpResponse:
    workflow = get_workflow(access, workflow_id)
    try:
        revision = int(request.POST.get("revision", ""))
    except ValueError:
        return JsonResponse({"error": "invalid", "message": "Which revision?"}, status=400)
    try:
        version = commands.publish_draft(workflow, revision, request.user)
    except commands.DraftConflict as exc:
        return _conflict(exc)
    except commands.PublishRefused as exc:
        listed = issues_json(exc.issues, workflow.draft)
        message = str(exc)
        if listed:  # the count of problems as the list shows them (each once)
            message = (
                f"Fix {len(listed)} problem{'s' if len(listed) != 1 else ''} before publishing."
            )
        return JsonResponse({"error": "refused", "message": message, "issues": listed}, status=400)
    ws = access.workspace.slug
    return JsonResponse(
        {
            "number": version.number,
            "hash": version.content_hash,
            "message": f"Published v{version.number}.",
            "runUrl": reverse("workflow-run", args=[ws, workflow.id]),
        }
    )


@workspace_view(Capability.VIEW)
@require_POST
def workflow_panel(request: HttpRequest, access: Access, workflow_id: UUID) -> HttpResponse:
    """The config panel for one step (or, with no step, the workflow's input schema),
    rendered from the definition the browser holds right now. Saves nothing."""
    workflow = get_workflow(access, workflow_id)
    try:
        definition = parse_json(
            request.POST.get("definition") or "null", "The draft", max_bytes=MAX_DRAFT_BYTES
        )
    except BadJson:
        definition = None
    if not isinstance(definition, dict):
        definition = workflow.draft
    step_id = request.POST.get("step", "")
    read_only = request.POST.get("readonly") == "1" or not access.can(Capability.EDIT_WORKFLOWS)
    context: dict[str, Any] = {
        "workflow": workflow,
        "read_only": read_only,
        "max_name_length": MAX_STEP_NAME_LENGTH,
    }
    step = next(
        (
            raw
            for raw in definition.get("steps") or ()
            if isinstance(raw, dict) and raw.get("id") == step_id
        ),
        None,
    )
    if step is None:
        context["input_rows"] = panel.input_rows(definition.get("input_schema"))
        context["input_types"] = panel.INPUT_TYPES
        context["step_count"] = len(definition.get("steps") or ())
        return render(request, "workflows/panel_input.html", context)
    kind = KINDS.get(str(step.get("kind")))
    context.update(
        {
            "step": step,
            "kind": kind,
            "sections": panel.step_fields(step),
            "references": panel.references(
                definition, step_id, vault.secret_names(access.workspace.id)
            ),
        }
    )
    if not read_only and kind is not None and kind.handler is not run_by_the_engine:
        outputs = {key: None for key in panel.upstream(definition, step_id)}
        context["trial"] = {
            "input": json.dumps(panel.sample_input(definition.get("input_schema")), indent=2),
            "outputs": json.dumps(outputs, indent=2),
            "has_upstream": bool(outputs),
            "url": reverse("workflow-test-step", args=[access.workspace.slug, workflow.id]),
        }
    return render(request, "workflows/panel_step.html", context)


TRIAL_OUTCOMES = {
    "permanent": "Failed, and a run would not retry it",
    "transient": "Failed; a run would retry it",
    "rate_limited": "Rate limited; a run would wait and retry",
    "invalid_output": "The answer does not fit its schema; a run would ask for a correction",
    "budget_exceeded": "Stopped by a budget",
    "cancelled": "Stopped",
    "deferred": "Not run yet",
}


def _sample(text: str, what: str, example: str) -> dict[str, Any]:
    value = parse_json(text or "{}", what, max_bytes=MAX_DRAFT_BYTES)
    if not isinstance(value, dict):
        raise ValueError(f"{what} must be a JSON object, like {example}.")
    return value


@workspace_view(Capability.EDIT_WORKFLOWS)
@require_POST
def workflow_test_step(request: HttpRequest, access: Access, workflow_id: UUID) -> HttpResponse:
    """Run one step of the draft the browser holds with sample input, without a run, and
    show its output or its error (a fragment for the panel)."""
    workflow = get_workflow(access, workflow_id)
    context: dict[str, Any] = {}
    try:
        definition = parse_json(
            request.POST.get("definition") or "null", "The draft", max_bytes=MAX_DRAFT_BYTES
        )
        run_input = _sample(request.POST.get("input", ""), "The sample input", '{"ticket": "…"}')
        outputs = _sample(
            request.POST.get("outputs", ""), "The outputs of earlier steps", '{"read": {…}}'
        )
    except (BadJson, ValueError) as exc:
        context["refused"] = getattr(exc, "message", None) or str(exc)
        return render(request, "workflows/_trial.html", context, status=400)
    if not isinstance(definition, dict):
        definition = workflow.draft
    try:
        result = trial.try_step(
            access.workspace.id,
            workflow.id,
            definition,
            request.POST.get("step", ""),
            run_input,
            outputs,
        )
    except trial.TrialRefused as exc:
        context.update(refused=exc.message, problems=exc.problems)
        return render(request, "workflows/_trial.html", context, status=400)
    context["trial"] = result
    if result.ok:
        context["output"] = json.dumps(result.output, indent=2, ensure_ascii=False)
    else:
        context["outcome"] = TRIAL_OUTCOMES.get(result.error_class, "Failed")
    return render(request, "workflows/_trial.html", context)


# --- versions ------------------------------------------------------------------------------


@workspace_view(Capability.VIEW)
@require_GET
def workflow_versions(request: HttpRequest, access: Access, workflow_id: UUID) -> HttpResponse:
    workflow = get_workflow(access, workflow_id)
    versions = list(workflow.versions.select_related("created_by").order_by("-number"))
    entries = []
    for index, version in enumerate(versions):
        previous = versions[index + 1].definition if index + 1 < len(versions) else {}
        entries.append(
            {"version": version, "changes": diff_definitions(previous, version.definition)}
        )
    draft_changes = diff_definitions(versions[0].definition if versions else {}, workflow.draft)
    context = {
        "access": access,
        "workflow": workflow,
        "entries": entries,
        "draft_changes": draft_changes,
        "can_edit": access.can(Capability.EDIT_WORKFLOWS),
    }
    return render(request, "workflows/versions.html", context)


@workspace_view(Capability.VIEW)
@require_GET
def workflow_version(
    request: HttpRequest, access: Access, workflow_id: UUID, version_number: int
) -> HttpResponse:
    workflow = get_workflow(access, workflow_id)
    version = get_version(workflow, version_number)
    context = _builder_context(request, access, workflow, version.definition, version)
    return render(request, "workflows/builder.html", context)


@workspace_view(Capability.EDIT_WORKFLOWS)
@require_POST
def workflow_restore(
    request: HttpRequest, access: Access, workflow_id: UUID, version_number: int
) -> HttpResponse:
    workflow = get_workflow(access, workflow_id)
    version = get_version(workflow, version_number)
    commands.restore_version(workflow, version, request.user)
    messages.success(request, f"Restored v{version.number} as the draft. Publish to use it.")
    return redirect("workflow-builder", ws=access.workspace.slug, workflow_id=workflow.id)


@workspace_view(Capability.VIEW)
@require_GET
def workflow_export(request: HttpRequest, access: Access, workflow_id: UUID) -> HttpResponse:
    workflow = get_workflow(access, workflow_id)
    number = request.GET.get("version")
    if number:
        if not number.isdigit():
            raise Http404("No such version")
        definition = get_version(workflow, int(number)).definition
        suffix = f"-v{number}"
    else:
        definition = workflow.draft
        suffix = "-draft"
    document = commands.export_document(workflow.name, definition)
    response = HttpResponse(
        json.dumps(document, indent=2, ensure_ascii=False), content_type="application/json"
    )
    slug = "".join(c if c.isalnum() else "-" for c in workflow.name.lower()).strip("-")[:60]
    filename = f"{slug or 'workflow'}{suffix}.json"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


# --- registered Python tools ----------------------------------------------------------------


@workspace_view(Capability.VIEW)
@require_GET
def tools(request: HttpRequest, access: Access) -> HttpResponse:
    registered_tools, validators = tools_list.registered(access.workspace)
    context = {"access": access, "tools": registered_tools, "validators": validators}
    return render(request, "workflows/tools.html", context)


# --- starting a run ------------------------------------------------------------------------


@workspace_view(Capability.START_RUNS)
@require_http_methods(["GET", "POST"])
def workflow_run(request: HttpRequest, access: Access, workflow_id: UUID) -> HttpResponse:
    workflow = get_workflow(access, workflow_id)
    version = workflow.latest_version()
    context: dict[str, Any] = {"access": access, "workflow": workflow, "version": version}
    if version is None:
        return render(request, "workflows/run.html", context, status=409)
    schema = version.definition.get("input_schema") or {"type": "object"}
    form = RunInputForm(schema, request.POST or None)
    context["form"] = form
    origin = _rerun_origin(access, workflow, request)
    if origin is not None:  # a re-run: the form starts filled with that run's input
        context.update(_rerun_context(form, origin))
    context["draft_differs"] = content_hash(workflow.draft) != version.content_hash
    if request.method == "POST":
        if form.is_valid():
            form.check_schema()
        run_input = form.run_input()
        if origin is not None:  # what the form does not ask for is carried over as it was
            run_input = {**context["rerun_kept"], **run_input}
        if not form.errors:
            try:
                run = start_run(
                    workflow,
                    run_input,
                    started_by=request.user,
                    idempotency_key=f"run-form:{form.cleaned_data['idempotency_key']}",
                    version=version,
                    rerun_of=origin,
                )
            except InvalidRunInput as exc:
                for problem in exc.problems:
                    form.add_input_problem(problem.path, problem.message)
            except CannotStart as exc:  # not published, or the kill switch is on
                form.add_error(None, str(exc))
            else:
                return redirect("run-detail", ws=access.workspace.slug, run_id=run.id)
    status = 400 if form.errors else 200
    return render(request, "workflows/run.html", context, status=status)


def _rerun_origin(access: Access, workflow: Workflow, request: HttpRequest) -> Run | None:
    """The run of this workflow the form re-runs (?rerun=<id>, then the form's rerun_of),
    or None; 404 for one that is not this workspace's run of this workflow."""
    value = request.POST.get("rerun_of") if request.method == "POST" else request.GET.get("rerun")
    if not value:
        return None
    try:
        run_id = UUID(value)
    except ValueError:
        raise Http404("No such run") from None
    return get_object_or_404(Run, pk=run_id, workspace=access.workspace, workflow=workflow)


def _rerun_context(form: RunInputForm, origin: Run) -> dict[str, Any]:
    """Fill the form with the origin's input; what the form has no field for is kept as
    it was (listed, so the person knows), unless the version run now allows no more."""
    from vectorbea.eventlog import store

    run_input = store.load(origin.id).state.input or {}
    asked = set(form.input_names.values())
    for key, name in form.input_names.items():
        if name in run_input:
            form.initial[key] = run_input[name]
    kept = {name: value for name, value in run_input.items() if name not in asked}
    if isinstance(form.schema, dict) and form.schema.get("additionalProperties") is False:
        kept = {}  # the version this form runs takes nothing more
    return {"rerun_origin": origin, "rerun_kept": kept}
