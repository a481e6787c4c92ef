"""A workflow's triggers page (webhooks and schedules), and the public webhook endpoint.

Everyone in the workspace sees the page; EDIT_WORKFLOWS manages it. A webhook's signing
secret appears in exactly one response: the one that creates the endpoint.
"""

import json
import time
import zoneinfo
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from croniter import CroniterError
from django.contrib import messages
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect

from vectorbea.accounts.access import Access, Capability, workspace_view
from vectorbea.triggers import schedules, webhooks
from vectorbea.triggers.forms import ScheduleForm
from vectorbea.triggers.models import Schedule, WebhookDelivery, WebhookEndpoint
from vectorbea.workflows.models import Workflow
from vectorbea.workflows.views import get_workflow

RECENT_DELIVERIES = 10
NEXT_FIRE_TIMES = 5
TIME_ZONES = sorted(zoneinfo.available_timezones())


def _context(
    request: HttpRequest, access: Access, workflow: Workflow, **extra: Any
) -> dict[str, Any]:
    since = timezone.now() - timedelta(hours=24)
    endpoints = list(
        WebhookEndpoint.objects.filter(workflow=workflow)
        .select_related("created_by")
        .order_by("created_at")
    )
    for endpoint in endpoints:
        endpoint.url = _hook_url(request, endpoint)
        endpoint.recent = list(
            WebhookDelivery.objects.filter(endpoint=endpoint, received_at__gte=since)
            .select_related("run")
            .order_by("-last_received_at")[:RECENT_DELIVERIES]
        )
    now = timezone.now()
    schedule_form = extra.pop("schedule_form", None) or ScheduleForm(workflow)
    rows = list(
        Schedule.objects.filter(workflow=workflow)
        .select_related("created_by", "last_run")
        .order_by("created_at")
    )
    for schedule in rows:
        schedule.input_json = json.dumps(schedule.input)
        schedule.upcoming = _upcoming(schedule, now) if schedule.enabled else []
    return {
        "access": access,
        "workflow": workflow,
        "published": workflow.latest_version(),
        "can_edit": access.can(Capability.EDIT_WORKFLOWS),
        "endpoints": endpoints,
        "schedules": rows,
        "schedule_form": schedule_form,
        "preview": _preview_context(schedule_form, now),
        "time_zones": TIME_ZONES,
        **extra,
    }


def _preview_context(form: ScheduleForm, now: datetime) -> dict[str, Any]:
    """What the form's preview shows. A refused form already says what is wrong with the
    expression under its field: the preview then only points there."""
    zone_name = str(form["timezone"].value() or "UTC").strip()
    if form.is_bound and ("cron" in form.errors or "timezone" in form.errors):
        return {"upcoming": [], "problem": "", "refused_above": True, "zone": zone_name}
    upcoming, problem = form.preview(now)
    return {"upcoming": upcoming, "problem": problem, "zone": zone_name}


def _upcoming(schedule: Schedule, now: datetime) -> list[datetime]:
    try:
        return schedules.fire_times(schedule.cron, schedule.timezone, now, NEXT_FIRE_TIMES)
    except (CroniterError, ValueError):  # saved outside the form; firing turns it off
        return []


def _hook_url(request: HttpRequest, endpoint: WebhookEndpoint) -> str:
    return request.build_absolute_uri(reverse("webhook-receive", args=[endpoint.public_id]))


def _to_page(request: HttpRequest, access: Access, workflow: Workflow) -> HttpResponse:
    url = reverse("workflow-triggers", args=[access.workspace.slug, workflow.id])
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


@workspace_view(Capability.VIEW)
@require_GET
def workflow_triggers(request: HttpRequest, access: Access, workflow_id: UUID) -> HttpResponse:
    workflow = get_workflow(access, workflow_id)
    return render(request, "triggers/triggers.html", _context(request, access, workflow))


@workspace_view(Capability.VIEW)
@require_GET
def workspace_triggers(request: HttpRequest, access: Access) -> HttpResponse:
    """Every schedule and webhook of the workspace's workflows on one page: what starts
    runs without a person, when it next does, and how its last try went."""
    since = timezone.now() - timedelta(hours=24)
    mine = {"workflow__workspace": access.workspace}
    rows = list(
        Schedule.objects.filter(**mine)
        .select_related("workflow", "last_run")
        .order_by("-enabled", "next_fire_at", "workflow__name", "created_at")
    )
    endpoints = list(
        WebhookEndpoint.objects.filter(**mine)
        .select_related("workflow")
        .annotate(
            recent=Count("deliveries", filter=Q(deliveries__last_received_at__gte=since)),
            refused=Count(
                "deliveries",
                filter=Q(deliveries__last_received_at__gte=since, deliveries__status__gte=400),
            ),
        )
        .order_by("-enabled", "workflow__name", "created_at")
    )
    for endpoint in endpoints:
        endpoint.url = _hook_url(request, endpoint)
    context = {
        "access": access,
        "schedules": rows,
        "endpoints": endpoints,
        "can_edit": access.can(Capability.EDIT_WORKFLOWS),
    }
    return render(request, "triggers/workspace.html", context)


# --- webhooks ------------------------------------------------------------------------------


@workspace_view(Capability.EDIT_WORKFLOWS)
@require_POST
@never_cache
def webhook_create(request: HttpRequest, access: Access, workflow_id: UUID) -> HttpResponse:
    """Makes an endpoint and answers with the page showing its secret, this once."""
    workflow = get_workflow(access, workflow_id)
    endpoint, secret = webhooks.create_endpoint(workflow, request.user)
    url = _hook_url(request, endpoint)
    revealed = {
        "endpoint": endpoint,
        "url": url,
        "secret": secret,
        "curl": webhooks.curl_example(url, secret, schedules.input_schema_of(workflow)),
    }
    context = _context(request, access, workflow, revealed=revealed)
    return render(request, "triggers/triggers.html", context, status=201)


def _endpoint(access: Access, workflow_id: UUID, endpoint_id: UUID) -> WebhookEndpoint:
    workflow = get_workflow(access, workflow_id)
    return get_object_or_404(
        WebhookEndpoint.objects.select_related("workflow"), pk=endpoint_id, workflow=workflow
    )


@workspace_view(Capability.EDIT_WORKFLOWS)
@require_POST
def webhook_toggle(
    request: HttpRequest, access: Access, workflow_id: UUID, endpoint_id: UUID
) -> HttpResponse:
    endpoint = _endpoint(access, workflow_id, endpoint_id)
    enabled = request.POST.get("enabled") == "1"
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(enabled=enabled)
    messages.success(
        request,
        "The webhook is on: signed deliveries start runs."
        if enabled
        else "The webhook is off: deliveries to it get a 404 and start nothing.",
    )
    return _to_page(request, access, endpoint.workflow)


@workspace_view(Capability.EDIT_WORKFLOWS)
@require_POST
def webhook_delete(
    request: HttpRequest, access: Access, workflow_id: UUID, endpoint_id: UUID
) -> HttpResponse:
    endpoint = _endpoint(access, workflow_id, endpoint_id)
    endpoint.delete()
    messages.success(request, "Deleted the webhook. Its URL starts nothing any more.")
    return _to_page(request, access, endpoint.workflow)


# --- schedules -----------------------------------------------------------------------------


@workspace_view(Capability.EDIT_WORKFLOWS)
@require_POST
def schedule_create(request: HttpRequest, access: Access, workflow_id: UUID) -> HttpResponse:
    workflow = get_workflow(access, workflow_id)
    form = ScheduleForm(workflow, request.POST)
    if not form.is_valid():
        context = _context(request, access, workflow, schedule_form=form)
        return render(request, "triggers/triggers.html", context, status=400)
    schedule = form.apply(Schedule(workflow=workflow, created_by=request.user))
    schedules.save_schedule(schedule)
    messages.success(request, _saved_message(schedule))
    return _to_page(request, access, workflow)


def _schedule(access: Access, workflow_id: UUID, schedule_id: UUID) -> Schedule:
    workflow = get_workflow(access, workflow_id)
    return get_object_or_404(
        Schedule.objects.select_related("workflow"), pk=schedule_id, workflow=workflow
    )


def _saved_message(schedule: Schedule) -> str:
    if not schedule.enabled:
        return f"Saved the schedule “{schedule.cron}” ({schedule.timezone}). It is off."
    first = schedule.next_fire_at.astimezone(schedules.zone(schedule.timezone))
    return (
        f"Saved the schedule “{schedule.cron}” ({schedule.timezone}). "
        f"It first runs {first:%Y-%m-%d %H:%M:%S %Z}."
    )


@workspace_view(Capability.EDIT_WORKFLOWS)
@require_http_methods(["GET", "POST"])
def schedule_edit(
    request: HttpRequest, access: Access, workflow_id: UUID, schedule_id: UUID
) -> HttpResponse:
    schedule = _schedule(access, workflow_id, schedule_id)
    form = ScheduleForm.of(schedule, request.POST or None)
    if request.method == "POST" and form.is_valid():
        schedules.save_schedule(form.apply(schedule))
        messages.success(request, _saved_message(schedule))
        return _to_page(request, access, schedule.workflow)
    context = {
        "access": access,
        "workflow": schedule.workflow,
        "schedule": schedule,
        "form": form,
        "preview": _preview_context(form, timezone.now()),
        "time_zones": TIME_ZONES,
    }
    status = 400 if form.errors else 200
    return render(request, "triggers/schedule_edit.html", context, status=status)


@workspace_view(Capability.EDIT_WORKFLOWS)
@require_GET
def schedule_preview(request: HttpRequest, access: Access, workflow_id: UUID) -> HttpResponse:
    """The schedule form's preview as it is typed: the next times, or why it is refused."""
    workflow = get_workflow(access, workflow_id)
    upcoming, problem = ScheduleForm(workflow, request.GET).preview(timezone.now())
    zone_name = (request.GET.get("timezone") or "UTC").strip()
    context = {"preview": {"upcoming": upcoming, "problem": problem, "zone": zone_name}}
    return render(request, "triggers/_schedule_preview.html", context)


@workspace_view(Capability.EDIT_WORKFLOWS)
@require_POST
def schedule_toggle(
    request: HttpRequest, access: Access, workflow_id: UUID, schedule_id: UUID
) -> HttpResponse:
    schedule = _schedule(access, workflow_id, schedule_id)
    enabled = request.POST.get("enabled") == "1"
    try:
        schedules.set_enabled(schedule, enabled)
    except schedules.BadSchedule as exc:
        messages.error(request, f"The schedule stays off: {exc} Edit it to turn it on.")
        return _to_page(request, access, schedule.workflow)
    messages.success(
        request,
        f"The schedule “{schedule.cron}” is on: it runs from its next time (missed times "
        "are not made up)."
        if enabled
        else f"The schedule “{schedule.cron}” is off.",
    )
    return _to_page(request, access, schedule.workflow)


@workspace_view(Capability.EDIT_WORKFLOWS)
@require_POST
def schedule_delete(
    request: HttpRequest, access: Access, workflow_id: UUID, schedule_id: UUID
) -> HttpResponse:
    schedule = _schedule(access, workflow_id, schedule_id)
    schedule.delete()
    messages.success(request, f"Deleted the schedule “{schedule.cron}”.")
    return _to_page(request, access, schedule.workflow)


# --- the public endpoint ---------------------------------------------------------------------


def _answer(status: int, detail: str, **more: Any) -> JsonResponse:
    return JsonResponse({"detail": detail, **more}, status=status)


@csrf_exempt
@require_POST
def webhook_receive(request: HttpRequest, public_id: str) -> HttpResponse:
    """POST /hooks/<public_id>/: the only write that needs no login. See webhooks.py for the
    signature; answers 202 {"run_id"} for a new event, 200 with the same run for a redelivery."""
    endpoint = (
        WebhookEndpoint.objects.select_related("workflow", "created_by")
        .filter(public_id=public_id, enabled=True)
        .first()
    )
    if endpoint is None:
        return _answer(404, "No such webhook, or it is turned off.")
    too_big = f"The body is over {webhooks.MAX_BODY_BYTES:,} bytes."
    length = request.headers.get("Content-Length") or "0"
    if not webhooks.is_whole_number(length, 20):
        return _answer(400, "Content-Length is not a number.")
    if int(length) > webhooks.MAX_BODY_BYTES:
        return _answer(413, too_big)
    body = request.read(webhooks.MAX_BODY_BYTES + 1)
    if len(body) > webhooks.MAX_BODY_BYTES:
        return _answer(413, too_big)
    try:
        secret = webhooks.secret_of(endpoint)
        event_id = webhooks.verify(secret, request.headers, body, time.time())
        payload = webhooks.parse_body(body)
        accepted = webhooks.deliver(endpoint, event_id, payload)
    except webhooks.Refused as refused:
        extra = {"problems": refused.problems} if refused.problems else {}
        return _answer(refused.status, refused.detail, **extra)
    return JsonResponse(
        {"run_id": str(accepted.run.id)}, status=200 if accepted.redelivery else 202
    )
