"""The JSON API at /api/: start and follow runs, cancel and retry them, decide approvals.

Every operation names the capability it needs, the same one as the equivalent page
(VIEW to read, START_RUNS to start, OPERATE_RUNS to cancel or retry, DECIDE_APPROVALS to
decide), and goes through the same commands as the pages. Objects are looked up in the
token's workspace only: another workspace's id is answered exactly like a missing one.
"""

from typing import Any
from uuid import UUID

from django.http import HttpRequest, JsonResponse
from ninja import Header, NinjaAPI, Path, Query, Status

from vectorbea.accounts.access import Capability
from vectorbea.api.auth import Caller, TokenAuth
from vectorbea.api.docs import PlainDocs
from vectorbea.api.errors import (
    CONFLICT,
    ERRORS,
    INVALID,
    MAX_BODY_BYTES,
    JsonParser,
    Refused,
    install_handlers,
)
from vectorbea.api.schemas import (
    MAX_INT,
    ApprovalOut,
    DecisionIn,
    EventOut,
    RunOut,
    StartRunIn,
    VersionOut,
    WorkflowOut,
)
from vectorbea.approvals.forms import DecisionForm
from vectorbea.approvals.inbox import gates_for
from vectorbea.approvals.models import Gate
from vectorbea.approvals.rules import decider_check
from vectorbea.engine import ConcurrencyConflict, event_to_payload
from vectorbea.engine.graph import STEP_ID_PATTERN
from vectorbea.eventlog import store
from vectorbea.eventlog.models import Run, RunSummary
from vectorbea.runs import commands
from vectorbea.workflows.models import Workflow, WorkflowVersion

DESCRIPTION = f"""Start and follow runs of Vectorbea workflows, and decide approvals.

Authenticate with an API token from Settings → API tokens:
`Authorization: Bearer vb_…`. A token belongs to one workspace and has a role; it may do
what a member with that role may do. It acts for the person who created it: runs it starts
are theirs, and it stops working when it expires, is revoked, or its creator leaves the
workspace or loses its role (401). Errors are JSON: `{{"detail": "...", "problems":
[{{"path": "...", "message": "..."}}]}}`. Request bodies are JSON objects of at most
{MAX_BODY_BYTES:,} bytes."""


class Api(NinjaAPI):
    def get_openapi_operation_id(self, operation: Any) -> str:
        return operation.view_func.__name__


api = Api(
    title="Vectorbea API",
    version="1",
    description=DESCRIPTION,
    urls_namespace="api",
    parser=JsonParser(),
    docs=PlainDocs(),
    docs_url="/docs",
)
install_handlers(api)

VIEW = TokenAuth(Capability.VIEW)
START = TokenAuth(Capability.START_RUNS)
OPERATE = TokenAuth(Capability.OPERATE_RUNS)
DECIDE = TokenAuth(Capability.DECIDE_APPROVALS)

BUSY = "The run changed while acting on it; try again."


def caller(request: HttpRequest) -> Caller:
    return request.auth  # type: ignore[attr-defined]


# --- workflows ----------------------------------------------------------------------------------


def workflow_of(who: Caller, workflow_id: UUID) -> Workflow:
    workflow = Workflow.objects.filter(pk=workflow_id, workspace=who.workspace).first()
    if workflow is None:
        raise Refused(404, "No such workflow.")
    return workflow


@api.get(
    "/workflows",
    auth=VIEW,
    response={200: list[WorkflowOut], **ERRORS},
    summary="List the workspace's workflows",
    tags=["workflows"],
)
def list_workflows(request: HttpRequest) -> list[dict[str, Any]]:
    workflows = Workflow.objects.filter(workspace=caller(request).workspace).order_by("name")
    latest: dict[UUID, int] = {}
    for workflow_id, number in WorkflowVersion.objects.filter(workflow__in=workflows).values_list(
        "workflow_id", "number"
    ):
        latest[workflow_id] = max(number, latest.get(workflow_id, 0))
    return [
        {
            "id": workflow.id,
            "name": workflow.name,
            "archived": workflow.archived_at is not None,
            "latest_version": latest.get(workflow.id),
        }
        for workflow in workflows
    ]


@api.get(
    "/workflows/{workflow_id}/versions",
    auth=VIEW,
    response={200: list[VersionOut], **ERRORS, **INVALID},
    summary="List a workflow's published versions, newest first",
    tags=["workflows"],
)
def list_versions(request: HttpRequest, workflow_id: UUID) -> list[dict[str, Any]]:
    workflow = workflow_of(caller(request), workflow_id)
    return [
        {
            "number": version.number,
            "created_at": version.created_at,
            "input_schema": version.definition.get("input_schema") or {"type": "object"},
        }
        for version in workflow.versions.order_by("-number")
    ]


@api.post(
    "/workflows/{workflow_id}/runs",
    auth=START,
    response={200: RunOut, 201: RunOut, **ERRORS, **CONFLICT, **INVALID},
    summary="Start a run",
    description=(
        "Starts a run on the newest published version (or `version`). With an "
        "`Idempotency-Key` header, the first request starts the run (201) and any later one "
        "with the same key answers with that same run (200), whatever its body. Input that "
        "does not match the workflow's input schema is refused with 422 and the problems by "
        "path; a workflow with no published version, an archived one, or a workspace whose kill "
        "switch is on, with 409."
    ),
    tags=["runs"],
)
def start_run(
    request: HttpRequest,
    workflow_id: UUID,
    body: StartRunIn,
    idempotency_key: str | None = Header(
        None,
        alias="Idempotency-Key",
        min_length=1,
        max_length=190,
        pattern=r"^[!-~]+$",
        description="Any text (printable ASCII, no spaces) naming this start, e.g. a UUID.",
    ),
) -> Status[dict[str, Any]]:
    who = caller(request)
    workflow = workflow_of(who, workflow_id)
    version = None
    if body.version is not None:
        version = workflow.versions.filter(number=body.version).first()
        if version is None:
            raise Refused(
                422,
                f"Workflow {workflow.name!r} has no version {body.version}.",
                [("version", "No published version has this number.")],
            )
    key = f"api:{idempotency_key}" if idempotency_key else None
    earlier = key and Run.objects.filter(workspace=who.workspace, idempotency_key=key).first()
    if earlier and earlier.workflow_id != workflow.id:
        raise Refused(409, "This Idempotency-Key already started a run of another workflow.")
    try:
        run = commands.start_run(
            workflow, body.input, started_by=who.initiator, idempotency_key=key, version=version
        )
    except commands.InvalidRunInput as exc:
        problems = [(problem.path, problem.message) for problem in exc.problems]
        raise Refused(
            422, "The input does not match the workflow's input schema.", problems
        ) from None
    except commands.CannotStart as exc:
        raise Refused(409, str(exc)) from None
    return Status(200 if earlier else 201, run_out(run.id))


# --- runs ---------------------------------------------------------------------------------------


def run_of(who: Caller, run_id: UUID) -> Run:
    run = Run.objects.filter(pk=run_id, workspace=who.workspace).first()
    if run is None:
        raise Refused(404, "No such run.")
    return run


def run_out(run_id: UUID) -> dict[str, Any]:
    summary = RunSummary.objects.select_related("run", "workflow", "version", "run__version").get(
        run_id=run_id
    )
    run = summary.run
    completed = summary.status == "completed"
    return {
        "id": run.id,
        "workflow_id": summary.workflow_id,
        "workflow": summary.workflow.name,
        "version": (summary.version or run.version).number,
        "status": summary.status,
        "error": summary.error,
        "cost_usd": float(summary.cost_usd),
        "created_at": run.created_at,
        "started_at": summary.started_at,
        "finished_at": summary.finished_at,
        "last_seq": summary.last_seq,
        "current_steps": list(summary.current_steps or []),
        "output": store.load(run.id).state.output if completed else None,
    }


@api.get(
    "/runs/{run_id}",
    auth=VIEW,
    response={200: RunOut, **ERRORS, **INVALID},
    summary="A run's status, cost and (once completed) output",
    tags=["runs"],
)
def get_run(request: HttpRequest, run_id: UUID) -> dict[str, Any]:
    return run_out(run_of(caller(request), run_id).id)


@api.get(
    "/runs/{run_id}/events",
    auth=VIEW,
    response={200: list[EventOut], **ERRORS, **INVALID},
    summary="A run's events after a seq, oldest first (for polling)",
    description=(
        "Pass the last `seq` you have as `after`; an empty list means nothing new yet. "
        "Payloads are the events as recorded."
    ),
    tags=["runs"],
)
def list_run_events(
    request: HttpRequest,
    run_id: UUID,
    after: int = Query(0, ge=0, le=MAX_INT, description="Only events with a greater seq."),
    limit: int = Query(100, ge=1, le=500, description="At most this many events."),
) -> list[dict[str, Any]]:
    run = run_of(caller(request), run_id)
    return [
        {
            "seq": recorded.seq,
            "type": type(recorded.event).__name__,
            "at": recorded.at,
            "payload": event_to_payload(recorded.event),
        }
        for recorded in store.read_events(run.id, after_seq=after, limit=limit)
    ]


@api.post(
    "/runs/{run_id}/cancel",
    auth=OPERATE,
    response={200: RunOut, **ERRORS, **CONFLICT, **INVALID},
    summary="Cancel a run",
    description="409 if the run has already finished.",
    tags=["runs"],
)
def cancel_run(request: HttpRequest, run_id: UUID) -> dict[str, Any]:
    who = caller(request)
    run = run_of(who, run_id)
    try:
        cancelled = commands.cancel_run(
            run.id, actor=who.username, reason="Cancelled through the API"
        )
    except ConcurrencyConflict:
        raise Refused(409, BUSY) from None
    if not cancelled:
        raise Refused(409, "The run has already finished; there is nothing to cancel.")
    return run_out(run.id)


@api.post(
    "/runs/{run_id}/retry",
    auth=OPERATE,
    response={200: RunOut, **ERRORS, **CONFLICT, **INVALID},
    summary="Retry a run from its failed step, or the step that needs attention",
    description="409 with the reason if the run has no step to retry.",
    tags=["runs"],
)
def retry_run(request: HttpRequest, run_id: UUID) -> dict[str, Any]:
    who = caller(request)
    run = run_of(who, run_id)
    try:
        commands.retry_failed_step(run.id, actor=who.username)
    except commands.ActionRefused as exc:
        raise Refused(409, str(exc)) from None
    except ConcurrencyConflict:
        raise Refused(409, BUSY) from None
    return run_out(run.id)


# --- approvals ----------------------------------------------------------------------------------


def gate_of(who: Caller, run_id: UUID, step_id: str) -> Gate:
    gate = (
        Gate.objects.select_related("workflow")
        .filter(workspace=who.workspace, run_id=run_id, step_id=step_id)
        .order_by("-attempt")
        .first()
    )
    if gate is None:
        raise Refused(404, "No such approval.")
    return gate


def approval_out(gate: Gate) -> dict[str, Any]:
    return {
        "run_id": gate.run_id,
        "step_id": gate.step_id,
        "gate": gate.key,
        "workflow_id": gate.workflow_id,
        "workflow": gate.workflow.name,
        "step_name": gate.step_name,
        "title": gate.title,
        "instructions": gate.instructions,
        "payload": gate.payload,
        "fields": list(gate.form or []),
        "run_input": gate.run_input,
        "status": gate.status,
        "required": gate.required,
        "granted_by": list(gate.granted_by or []),
        "requested_at": gate.requested_at,
        "timeout_at": gate.timeout_at,
        "decided_at": gate.decided_at,
        "decided_by": gate.decided_by,
        "reason": gate.reason,
    }


@api.get(
    "/approvals",
    auth=VIEW,
    response={200: list[ApprovalOut], **ERRORS},
    summary="The approvals waiting for this token's decision",
    description="The same list as the inbox shows a member with the token's role.",
    tags=["approvals"],
)
def list_approvals(request: HttpRequest) -> list[dict[str, Any]]:
    who = caller(request)
    return [approval_out(gate) for gate in gates_for(who, who.access)]


@api.post(
    "/approvals/{run_id}/{step_id}",
    auth=DECIDE,
    response={200: ApprovalOut, **ERRORS, **CONFLICT, **INVALID},
    summary="Approve or deny an approval",
    description=(
        "Recorded with the actor `api:<token name>`. 403 if the approval's rules do not let "
        "this token decide it (not among its approvers, or the token's creator started the "
        "run, through this token or otherwise); 409 "
        "if it is no longer waiting; 422 if a value is missing or wrong (a denial needs a "
        "reason)."
    ),
    tags=["approvals"],
)
def decide_approval(
    request: HttpRequest,
    run_id: UUID,
    body: DecisionIn,
    step_id: str = Path(..., max_length=64, pattern=f"^{STEP_ID_PATTERN.pattern}$"),
) -> dict[str, Any]:
    who = caller(request)
    gate = gate_of(who, run_id, step_id)
    form = decision_form(gate, body)
    try:
        commands.decide_gate(
            gate.run_id,
            gate.step_id,
            approve=body.approve,
            actor=who.username,
            reason=form.cleaned_data["reason"],
            fields=form.values if body.approve else {},
            gate=form.cleaned_data["gate"],
            check=decider_check(who, who.access),
        )
    except commands.NotAnApprover as exc:
        raise Refused(403, str(exc)) from None
    except commands.BadArguments as exc:
        raise Refused(400, str(exc)) from None
    except commands.GateNotWaiting as exc:
        raise Refused(409, str(exc)) from None
    except ConcurrencyConflict:
        raise Refused(409, BUSY) from None
    return approval_out(gate_of(who, run_id, step_id))


def decision_form(gate: Gate, body: DecisionIn) -> DecisionForm:
    """The inbox's form, filled from the JSON: the same rules (a denial needs a reason,
    required fields to approve, typed values), or 422 with what is wrong."""
    names = {spec["name"] for spec in gate.form or []}
    problems = [
        (f"fields.{name}", "This approval has no such field.")
        for name in body.fields
        if name not in names
    ]
    data = {
        "decision": "approve" if body.approve else "deny",
        "gate": body.gate or gate.key,
        "reason": body.reason,
        **{f"field-{name}": value for name, value in body.fields.items()},
    }
    form = DecisionForm(gate.form or [], data)
    if not form.is_valid() or problems:
        problems += [(f"fields.{name}", message) for name, message in form.field_problems.items()]
        problems += [
            (name, str(error))
            for name, errors in form.errors.items()
            if name != "__all__"
            for error in errors
        ]
        raise Refused(422, "The decision has invalid values.", problems)
    return form


def not_found(request: HttpRequest, rest: str = "") -> JsonResponse:
    """Any other path under /api/: a JSON 404, not the site's page."""
    return JsonResponse(
        {"detail": "No such API endpoint. See /api/openapi.json.", "problems": []}, status=404
    )
