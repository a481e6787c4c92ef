"""The approver inbox: the gates waiting for you (and, for owners and admins, those waiting
for others), one gate's page with its history from the log, the decision POST, giving a
gate to other approvers or escalating it early, and the audit export."""

import csv
import json
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from uuid import UUID

from django.contrib import messages
from django.db import connection
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from vectorbea.accounts.access import Access, Capability, workspace_view
from vectorbea.accounts.models import Role
from vectorbea.approvals.commands import escalate_gate, reassign_gate
from vectorbea.approvals.forms import DecisionForm, EscalateForm, ReassignForm, form_fields
from vectorbea.approvals.inbox import DEFAULT_FILTER, FILTERS, gates_for
from vectorbea.approvals.models import Gate
from vectorbea.approvals.others import approvers_text, deciders, members, waiting_for_others
from vectorbea.approvals.rules import decider_check, refusal_for
from vectorbea.approvals.topics import count_context
from vectorbea.engine import (
    ApprovalEscalated,
    ApprovalGranted,
    ApprovalReassigned,
    ApprovalTimedOut,
    RunCancelled,
)
from vectorbea.eventlog import store
from vectorbea.eventlog.models import Run, RunSummary
from vectorbea.runs.commands import (
    ActionRefused,
    BadArguments,
    GateNotWaiting,
    NotAnApprover,
    decide_gate,
)
from vectorbea.runs.listing import NEEDS_ATTENTION
from vectorbea.runs.timeline import TimelineRow, step_names
from vectorbea.workflows.models import Workflow


def item_context(
    request: HttpRequest,
    access: Access,
    gate: Gate,
    form: DecisionForm | None = None,
    problem: str | None = None,
) -> dict[str, Any]:
    """What one inbox item (approvals/_gate.html) shows: the same for the list, the gate's
    page and the answer to a decision."""
    refusal = refusal_for(request.user, access, gate)
    return {
        "access": access,
        "gate": gate,
        "can_decide": refusal is None,
        "refusal": refusal,
        "form": form,
        "fields": form_fields(gate.form, form),
        "problem": problem,
    }


@workspace_view()
@require_GET
def inbox(request: HttpRequest, access: Access) -> HttpResponse:
    status = request.GET.get("status", DEFAULT_FILTER)
    status = status if status in FILTERS else DEFAULT_FILTER
    workflows = Workflow.objects.filter(workspace=access.workspace).order_by("name")
    workflow_id = _uuid(request.GET.get("workflow"))
    if workflow_id and not workflows.filter(pk=workflow_id).exists():
        workflow_id = None
    gates = gates_for(request.user, access, status, workflow_id)
    context = {
        "access": access,
        "items": [item_context(request, access, gate) for gate in gates],
        "filters": [(key, label) for key, (label, _) in FILTERS.items()],
        "status": status,
        "workflows": workflows,
        "workflow_id": workflow_id,
        "can_export": access.can(Capability.MANAGE_WORKSPACE),
        "role_decides": access.can(Capability.DECIDE_APPROVALS),
        "today": date.today().isoformat(),
        "month_ago": (date.today() - timedelta(days=30)).isoformat(),
    }
    manages = access.can(Capability.MANAGE_WORKSPACE)
    if manages and status == DEFAULT_FILTER and not workflow_id:
        others = waiting_for_others(request.user, access)
        context["others"] = others
        context["usernames"] = [m.user.username for m in members(access)] if others else []
        context["role_choices"] = Role.choices
    # Runs needing attention, beside the approvals, for the roles that can act on them.
    if not request.htmx and access.can(Capability.OPERATE_RUNS):
        context["attention_count"] = RunSummary.objects.filter(
            workspace=access.workspace, status__in=NEEDS_ATTENTION
        ).count()
        context["shows_attention"] = True
    template = "approvals/inbox.html#results" if request.htmx else "approvals/inbox.html"
    response = render(request, template, context)
    response["Vary"] = "HX-Request"
    return response


@workspace_view()
@require_GET
def inbox_count(request: HttpRequest, access: Access) -> HttpResponse:
    """The navigation's count, for a page whose socket (re)connected and may have missed a
    push: the same fragment the "inbox" topic pushes."""
    return render(
        request, "approvals/_inbox_count.html", count_context(request.user, access.membership)
    )


def _uuid(value: str | None) -> UUID | None:
    try:
        return UUID(value) if value else None
    except ValueError:
        return None


def get_gate(access: Access, run_id: UUID, step_id: str) -> Gate:
    """The step's latest gate in a run of this workspace, or 404."""
    gate = (
        Gate.objects.select_related("workflow", "run")
        .filter(workspace=access.workspace, run_id=run_id, step_id=step_id)
        .order_by("-attempt")
        .first()
    )
    if gate is None:
        raise Http404("No such approval")
    return gate


def gate_history(run: Run, step_id: str) -> list[TimelineRow]:
    """Everything the log says about this step (every opening of its gate, every decision,
    escalation and timeout), and the run ending because of it, in plain language."""
    names = step_names(store.definition_for(run.current_version_id))
    return [
        TimelineRow.of(recorded, names)
        for recorded in store.read_events(run.id)
        if getattr(recorded.event, "step_id", None) == step_id
        or isinstance(recorded.event, RunCancelled)
    ]


@workspace_view()
@require_GET
def gate_detail(request: HttpRequest, access: Access, run_id: UUID, step_id: str) -> HttpResponse:
    gate = get_gate(access, run_id, step_id)
    context = {
        **item_context(request, access, gate),
        "history": gate_history(gate.run, step_id),
        "detail": True,
        **manage_context(access, gate),
    }
    return render(request, "approvals/gate.html", context)


def manage_context(access: Access, gate: Gate) -> dict[str, Any]:
    """What an owner or admin sees on a waiting gate's page: who can decide it, and the
    forms to give it to others or escalate it."""
    if not gate.is_waiting or not access.can(Capability.MANAGE_WORKSPACE):
        return {}
    people = members(access)
    return {
        "manages": True,
        "role_choices": Role.choices,
        "usernames": [m.user.username for m in people],
        "deciders": deciders(gate, people),
        "named": approvers_text(gate.approver_roles, gate.approver_users),
    }


def _back(request: HttpRequest, access: Access, run_id: UUID, step_id: str) -> HttpResponse:
    """Back to where the form was: the gate's page, or the inbox."""
    if request.POST.get("back") == "gate":
        return redirect("gate", ws=access.workspace.slug, run_id=run_id, step_id=step_id)
    return redirect("inbox", ws=access.workspace.slug)


def _form_problem(form: Any) -> str:
    errors = form.non_field_errors() or [e for errs in form.errors.values() for e in errs]
    return " ".join(str(e) for e in errors) or "The form was not complete; try again."


@workspace_view(Capability.MANAGE_WORKSPACE)
@require_POST
def gate_reassign(request: HttpRequest, access: Access, run_id: UUID, step_id: str) -> HttpResponse:
    """Give a waiting gate to other approvers (owners and admins), recorded in the log."""
    gate = get_gate(access, run_id, step_id)
    form = ReassignForm([m.user.username for m in members(access)], request.POST)
    if not form.is_valid():
        messages.error(request, f"“{gate.title}” was not reassigned: {_form_problem(form)}")
        return _back(request, access, run_id, step_id)
    try:
        reassign_gate(
            gate.run_id,
            step_id,
            approvers=form.approvers,
            actor=request.user.username,
            reason=form.cleaned_data["reason"],
            gate=form.cleaned_data["gate"],
        )
    except ActionRefused as exc:
        messages.error(request, f"“{gate.title}” was not reassigned: {exc}")
        return _back(request, access, run_id, step_id)
    names = approvers_text(form.approvers["roles"], form.approvers["users"])
    messages.success(request, f"“{gate.title}” now waits for {names}.")
    return _back(request, access, run_id, step_id)


@workspace_view(Capability.MANAGE_WORKSPACE)
@require_POST
def gate_escalate(request: HttpRequest, access: Access, run_id: UUID, step_id: str) -> HttpResponse:
    """Take a waiting gate's escalation now (owners and admins), recorded in the log."""
    gate = get_gate(access, run_id, step_id)
    form = EscalateForm(request.POST)
    if not form.is_valid():
        messages.error(request, f"“{gate.title}” was not escalated: {_form_problem(form)}")
        return _back(request, access, run_id, step_id)
    try:
        escalate_gate(
            gate.run_id,
            step_id,
            actor=request.user.username,
            reason=form.cleaned_data["reason"],
            gate=form.cleaned_data["gate"],
        )
    except ActionRefused as exc:
        messages.error(request, f"“{gate.title}” was not escalated: {exc}")
        return _back(request, access, run_id, step_id)
    gate = get_gate(access, run_id, step_id)
    names = approvers_text(gate.approver_roles, gate.approver_users)
    messages.success(request, f"“{gate.title}” was escalated: it now waits for {names}.")
    return _back(request, access, run_id, step_id)


@workspace_view()
@require_POST
def gate_decide(request: HttpRequest, access: Access, run_id: UUID, step_id: str) -> HttpResponse:
    """Decide a gate. Only a signed-in POST with CSRF decides; the rule of who may is
    checked on the run's state inside the append (403 and nothing appended if not)."""
    gate = get_gate(access, run_id, step_id)
    form = DecisionForm(gate.form, request.POST)
    if not form.is_valid():
        return _answer(request, access, gate, form, None, 400)
    try:
        decide_gate(
            gate.run_id,
            step_id,
            approve=form.approving,
            actor=request.user.username,
            reason=form.cleaned_data["reason"],
            fields=form.values if form.approving else {},
            gate=form.cleaned_data["gate"],
            check=decider_check(request.user, access),
        )
    except NotAnApprover as exc:
        return _answer(request, access, gate, None, str(exc), 403)
    except BadArguments as exc:  # an agent's tool call, edited into arguments it cannot take
        return _answer(request, access, gate, None, str(exc), 400)
    except GateNotWaiting as exc:
        gate = get_gate(access, run_id, step_id)
        return _answer(request, access, gate, None, str(exc), 409)
    gate = get_gate(access, run_id, step_id)
    if not request.htmx:
        verdict = "approved" if form.approving else "denied"
        messages.success(request, f"You {verdict} “{gate.title}”.")
        return redirect("gate", ws=access.workspace.slug, run_id=run_id, step_id=step_id)
    return _answer(request, access, gate, None, None, 200)


def _answer(
    request: HttpRequest,
    access: Access,
    gate: Gate,
    form: DecisionForm | None,
    problem: str | None,
    status: int,
) -> HttpResponse:
    context = item_context(request, access, gate, form, problem)
    if not request.htmx:
        context["history"] = gate_history(gate.run, gate.step_id)
        context["detail"] = True
        return render(request, "approvals/gate.html", context, status=status)
    return render(request, "approvals/_gate.html", context, status=status)


# --- audit export -------------------------------------------------------------------------------

AUDIT_EVENTS = {
    "ApprovalGranted": "approved",
    "ApprovalDenied": "denied",
    "ApprovalTimedOut": "timed out",
    "ApprovalEscalated": "escalated",
    "ApprovalReassigned": "reassigned",
}
AUDIT_COLUMNS = (
    "at",
    "run_id",
    "seq",
    "workflow",
    "step_id",
    "gate",
    "decision",
    "actor",
    "reason",
    "fields",
)
MAX_AUDIT_DAYS = 366


def _day(value: str | None, default: date) -> date:
    try:
        return date.fromisoformat(value) if value else default
    except ValueError:
        return default


def audit_rows(workspace_id: UUID, since: datetime, until: datetime) -> list[dict[str, Any]]:
    """Every decision, timeout and escalation recorded in [since, until), from the log."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT e.run_id, e.seq, e.type, e.schema_version, e.payload, e.created_at, w.name "
            "FROM eventlog_event e JOIN eventlog_run r ON r.id = e.run_id "
            "JOIN workflows_workflow w ON w.id = r.workflow_id "
            "WHERE r.workspace_id = %s AND e.type = ANY(%s) "
            "AND e.created_at >= %s AND e.created_at < %s "
            "ORDER BY e.created_at, e.run_id, e.seq",
            [workspace_id, list(AUDIT_EVENTS), since, until],
        )
        found = cursor.fetchall()
    rows = []
    for run_id, seq, type_name, version, payload, at, workflow in found:
        event = store.recorded_from_row(seq, type_name, version, payload, at).event
        rows.append(
            {
                "at": at.isoformat(),
                "run_id": str(run_id),
                "seq": seq,
                "workflow": workflow,
                "step_id": event.step_id,
                "gate": getattr(event, "gate", ""),
                "decision": _audit_decision(event),
                "actor": getattr(event, "actor", "") or "",
                "reason": getattr(event, "reason", "") or "",
                "fields": dict(getattr(event, "fields", {}) or {}),
            }
        )
    return rows


def _audit_decision(event: Any) -> str:
    if isinstance(event, ApprovalTimedOut):
        return f"timed out ({event.outcome})"
    if isinstance(event, ApprovalEscalated):
        return "escalated" if event.actor is None else "escalated early"
    if isinstance(event, ApprovalReassigned):
        roles, users = event.approvers.get("roles", []), event.approvers.get("users", [])
        return f"reassigned to {approvers_text(roles, users)}"
    return "approved" if isinstance(event, ApprovalGranted) else "denied"


@workspace_view(Capability.MANAGE_WORKSPACE)
@require_GET
def audit_export(request: HttpRequest, access: Access) -> HttpResponse:
    """Decisions between two days (inclusive, UTC) as CSV (default) or JSON."""
    today = datetime.now(UTC).date()
    first = _day(request.GET.get("from"), today - timedelta(days=30))
    last = _day(request.GET.get("to"), today)
    if last < first:
        first, last = last, first
    first = max(first, last - timedelta(days=MAX_AUDIT_DAYS))
    since = datetime.combine(first, time.min, tzinfo=UTC)
    until = datetime.combine(last + timedelta(days=1), time.min, tzinfo=UTC)
    rows = audit_rows(access.workspace.id, since, until)
    name = f"approvals-{access.workspace.slug}-{first.isoformat()}-{last.isoformat()}"
    if request.GET.get("format") == "json":
        response = JsonResponse(
            {
                "workspace": access.workspace.slug,
                "from": first.isoformat(),
                "to": last.isoformat(),
                "decisions": rows,
            }
        )
        response["Content-Disposition"] = f'attachment; filename="{name}.json"'
        return response
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{name}.csv"'
    writer = csv.writer(response)
    writer.writerow(AUDIT_COLUMNS)
    for row in rows:
        cells = [
            json.dumps(row["fields"], sort_keys=True) if c == "fields" else row[c]
            for c in AUDIT_COLUMNS
        ]
        writer.writerow([_csv_safe(cell) for cell in cells])
    return response


def _csv_safe(value: Any) -> Any:
    """Text a spreadsheet would run as a formula is prefixed with a quote."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value
