"""Settings → Limits (budgets, guards, rate limits, concurrency, the kill switch) and Usage.

Every member sees the limits; only owners and admins (Capability.MANAGE_WORKSPACE) get the
forms and may change them. Anyone who may operate runs may throw the kill switch and undo
it: it is the workspace-wide form of pausing a run. Strangers get a 404.
"""

from datetime import timedelta
from typing import Any
from uuid import UUID

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from vectorbea.accounts.access import Access, Capability, workspace_view
from vectorbea.budgets import admission, forms, killswitch, usage
from vectorbea.budgets.models import LimitsChange, WorkflowLimits, WorkspaceLimits
from vectorbea.eventlog.models import RunSummary
from vectorbea.workflows.models import Workflow

HISTORY_SHOWN = 50


def _history(access: Access) -> list[dict[str, Any]]:
    entries = (
        LimitsChange.objects.filter(workspace=access.workspace)
        .select_related("actor", "workflow")
        .order_by("-at", "-id")[:HISTORY_SHOWN]
    )
    return [
        {
            "change": change,
            "who": change.actor.get_username() if change.actor else "A former member",
            "workflow": change.workflow,
            "fields": [
                {
                    "label": forms.LABELS.get(name, name.replace("_", " ").capitalize()),
                    "old": values[0] if isinstance(values, list) and values else "",
                    "new": values[-1] if isinstance(values, list) and values else values,
                }
                for name, values in (change.changes or {}).items()
            ],
        }
        for change in entries
    ]


def _workflow_rows(access: Access, bound: dict[UUID, forms.WorkflowCapForm] | None = None):
    workflows = (
        Workflow.objects.filter(workspace=access.workspace, archived_at__isnull=True)
        .select_related("limits")
        .only("id", "name", "limits__run_cap_usd")
        .order_by("name", "id")
    )
    rows = []
    for workflow in workflows:
        limits: WorkflowLimits | None = getattr(workflow, "limits", None)
        cap = limits.run_cap_usd if limits else None
        form = (bound or {}).get(workflow.id) or forms.WorkflowCapForm(
            initial={"run_cap_usd": cap}, auto_id=f"id_wf-{workflow.id}-%s"
        )
        rows.append({"workflow": workflow, "cap": cap, "form": form})
    return rows


def _limits_context(access: Access, **extra: Any) -> dict[str, Any]:
    limits = forms.limits_of(access.workspace)
    can_manage = access.can(Capability.MANAGE_WORKSPACE)
    context: dict[str, Any] = {
        "access": access,
        "limits": limits,
        "can_manage": can_manage,
        "can_operate": access.can(Capability.MANAGE_WORKSPACE),
        "values": [
            (
                title,
                [
                    (s.label, forms.display(s.name, getattr(limits, s.name)))
                    for s in forms.SETTINGS
                    if s.section == key
                ],
            )
            for key, title in forms.SECTIONS.items()
        ],
        "history": _history(access),
        "stop_form": forms.StopForm(),
        "paused_runs": RunSummary.objects.filter(
            workspace=access.workspace, status="paused"
        ).count(),
        **extra,
    }
    if can_manage and "form" not in context:
        revision = forms.revision_of(access.workspace)
        context["form"] = forms.LimitsForm(initial=forms.initial_for(limits, revision))
    if "workflow_rows" not in context:
        context["workflow_rows"] = _workflow_rows(access)
    return context


@workspace_view(Capability.VIEW)
@require_http_methods(["GET", "POST"])
def limits(request: HttpRequest, access: Access) -> HttpResponse:
    if request.method == "GET":
        return render(request, "budgets/limits.html", _limits_context(access))
    if not access.can(Capability.MANAGE_WORKSPACE):
        raise PermissionDenied("Only owners and admins can change the limits.")
    form = forms.LimitsForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        try:
            change = forms.save_limits(access.workspace, data, request.user, data["revision"])
        except forms.LimitsChanged as exc:
            _refuse_stale(form, exc.change)
        else:
            if change is None:
                messages.info(request, "Nothing changed: the limits are as they were.")
            else:
                names = ", ".join(forms.LABELS[name].lower() for name in change.changes)
                messages.success(request, f"Saved the limits ({names}).")
                admission.admit_queued(access.workspace.id)  # a limit raised or lifted
            return redirect(_limits_url(access))
    context = _limits_context(access, form=form)
    return render(request, "budgets/limits.html", context, status=400)


def _refuse_stale(form: forms.LimitsForm, change: LimitsChange) -> None:
    who = change.actor.get_username() if change.actor else "Someone"
    form.add_error(
        None,
        f"{who} changed these limits while you were editing them (see the history below). "
        "Check their change, then save again to apply yours.",
    )
    form.data = form.data.copy()
    form.data["revision"] = str(forms.revision_of(change.workspace))


@workspace_view(Capability.MANAGE_WORKSPACE)
@require_POST
def workflow_limits(request: HttpRequest, access: Access, workflow_id: UUID) -> HttpResponse:
    workflow = get_object_or_404(Workflow, pk=workflow_id, workspace=access.workspace)
    form = forms.WorkflowCapForm(request.POST, auto_id=f"id_wf-{workflow.id}-%s")
    if not form.is_valid():
        rows = _workflow_rows(access, bound={workflow.id: form})
        context = _limits_context(access, workflow_rows=rows)
        return render(request, "budgets/limits.html", context, status=400)
    cap = form.cleaned_data["run_cap_usd"]
    change = forms.save_workflow_cap(workflow, cap, request.user)
    if change is None:
        messages.info(request, f"Nothing changed for “{workflow.name}”.")
    elif cap is None:
        messages.success(request, f"“{workflow.name}” now uses the workspace’s budget per run.")
    else:
        messages.success(
            request, f"Runs of “{workflow.name}” may now spend {forms.money_text(cap)} each."
        )
    return redirect(_limits_url(access))


# --- the kill switch -----------------------------------------------------------------------


def _limits_url(access: Access) -> str:
    """Back to the page, scrolled to its top where the message is: the forms post to an
    anchor (so a refused form opens where it was), and a redirect keeps that anchor unless
    it names another one."""
    return reverse("limits", args=[access.workspace.slug]) + "#main"


def _actor(request: HttpRequest) -> str:
    return request.user.get_username()


@workspace_view(Capability.MANAGE_WORKSPACE)
@require_POST
def stop_everything(request: HttpRequest, access: Access) -> HttpResponse:
    stop_form = forms.StopForm(request.POST)
    if not stop_form.is_valid():
        context = _limits_context(access, stop_form=stop_form)
        return render(request, "budgets/limits.html", context, status=400)
    stopped = killswitch.stop_everything(
        access.workspace.id,
        actor=_actor(request),
        reason=stop_form.cleaned_data["reason"],
        user=request.user,
    )
    runs = f"paused {_runs(stopped)}" if stopped else "no run was in progress"
    messages.warning(
        request,
        f"Stopped everything: {runs}. No run starts or continues until someone allows runs again.",
    )
    return redirect(_limits_url(access))


@workspace_view(Capability.MANAGE_WORKSPACE)
@require_POST
def allow_again(request: HttpRequest, access: Access) -> HttpResponse:
    killswitch.allow_again(access.workspace.id, actor=_actor(request), user=request.user)
    messages.success(
        request,
        "Runs are allowed again. New runs start as usual; the runs the kill switch paused "
        "stay paused until you resume them.",
    )
    return redirect(_limits_url(access))


@workspace_view(Capability.MANAGE_WORKSPACE)
@require_POST
def resume_stopped(request: HttpRequest, access: Access) -> HttpResponse:
    """Resume the runs the kill switch paused; while it is on, turn it off first."""
    workspace_id = access.workspace.id
    was_stopped = forms.limits_of(access.workspace).stopped
    killswitch.allow_again(workspace_id, actor=_actor(request), user=request.user)
    try:
        resumed = killswitch.resume_stopped(workspace_id, actor=_actor(request))
    except killswitch.SwitchIsOn as exc:  # thrown again in between
        messages.error(request, str(exc))
        return redirect(_limits_url(access))
    allowed = "Runs are allowed again. " if was_stopped else ""
    if resumed:
        messages.success(request, f"{allowed}Resumed {_runs(resumed)} the kill switch paused.")
    else:
        messages.info(request, f"{allowed}No run was left paused by the kill switch.")
    return redirect(_limits_url(access))


def _runs(n: int) -> str:
    return f"{n} run{'' if n == 1 else 's'}"


# --- usage ---------------------------------------------------------------------------------


@workspace_view(Capability.VIEW)
@require_GET
def usage_page(request: HttpRequest, access: Access) -> HttpResponse:
    now = timezone.now()
    limits: WorkspaceLimits = forms.limits_of(access.workspace)
    workspace_id = access.workspace.id
    since = now - timedelta(days=usage.CHART_DAYS)
    days = usage.daily_spend(workspace_id, now)
    by_workflow = usage.spend_by_workflow(workspace_id, since)
    context = {
        "access": access,
        "limits": limits,
        "periods": usage.current_spend(workspace_id, limits, now),
        "chart": usage.bar_chart(days, limits.daily_cap_usd),
        "by_workflow": by_workflow,
        "runs": usage.expensive_runs(workspace_id, since),
        "nothing_spent": not by_workflow and not any(day.spent_usd for day in days),
        "can_manage": access.can(Capability.MANAGE_WORKSPACE),
    }
    return render(request, "budgets/usage.html", context)
