from collections.abc import Callable
from uuid import UUID

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import reswap

from vectorbea.accounts.access import Access, Capability, workspace_view
from vectorbea.engine import RunState
from vectorbea.engine.state import TERMINAL_RUN_STATUSES
from vectorbea.eventlog import store
from vectorbea.eventlog.models import Run, RunSummary
from vectorbea.runs import commands, listing
from vectorbea.runs.attention import AttentionItem, attention_items
from vectorbea.runs.forms import RESOLVE_FORMS, RunFilterForm
from vectorbea.runs.graph import layout_for, with_status
from vectorbea.runs.step_detail import step_detail
from vectorbea.runs.timeline import (
    run_context,
    steps_of_state,
    timeline_rows,
    with_shown_status,
)
from vectorbea.workflows.models import WorkflowVersion

FIRST_PAGE = 200  # the timeline shows the first events, then pages by seq, then the live tail
MORE_PAGE = 200
MAX_BULK = 100


def get_run(access: Access, run_id: UUID) -> Run:
    """A run of this workspace, or 404: another workspace's run does not exist here."""
    return get_object_or_404(
        Run.objects.select_related("workflow", "version", "started_by", "summary__version"),
        pk=run_id,
        workspace=access.workspace,
    )


def int_param(request: HttpRequest, name: str, default: int = 0) -> int:
    try:
        return max(0, int(request.GET.get(name, default)))
    except ValueError:
        return default


# The run list


@workspace_view()
@require_GET
def runs(request: HttpRequest, access: Access) -> HttpResponse:
    form = RunFilterForm(request.GET or None, access.workspace)
    filters = form.filters() if form.is_bound else listing.Filters()
    page = listing.run_page(access.workspace.id, filters, request.GET.get("cursor", ""))
    query = request.GET.copy()
    query.pop("cursor", None)
    context = {
        "access": access,
        "form": form,
        "filters": filters,
        "page": page,
        "query": query.urlencode(),
        "can_operate": access.can(Capability.OPERATE_RUNS),
        "runs_url": reverse("runs", kwargs={"ws": access.workspace.slug}),
    }
    if request.htmx and request.GET.get("cursor"):
        return render(request, "runs/list.html#more_rows", context)
    if request.htmx and not request.htmx.boosted:
        return render(request, "runs/list.html#filtered", context)
    return render(request, "runs/list.html", context)


@workspace_view()
@require_GET
def runs_attention_count(request: HttpRequest, access: Access) -> HttpResponse:
    """How many runs wait for a person: the count on the run list's "Needs attention" tab,
    loaded after the page so the list itself costs no extra query."""
    count = RunSummary.objects.filter(
        workspace=access.workspace, status__in=listing.NEEDS_ATTENTION
    ).count()
    return render(request, "runs/list.html#attention_count", {"attention_count": count})


BULK_ACTIONS = {"cancel", "retry", "retry_newest"}


@workspace_view(Capability.OPERATE_RUNS)
@require_POST
def runs_bulk(request: HttpRequest, access: Access) -> HttpResponse:
    action = request.POST.get("action", "")
    ids = []
    for value in request.POST.getlist("run")[:MAX_BULK]:
        try:
            ids.append(UUID(value))
        except ValueError:
            continue
    ids = list(dict.fromkeys(ids))
    workflow_of = dict(
        Run.objects.filter(workspace=access.workspace, pk__in=ids).values_list("pk", "workflow_id")
    )
    results: list[tuple[UUID | None, str]] = []
    if action not in BULK_ACTIONS:
        results.append((None, "Choose an action for the selected runs."))
    elif not ids:
        results.append((None, "Select one or more runs first."))
    elif action == "retry_newest" and len(set(workflow_of.values())) > 1:
        results.append(
            (
                None,
                "Select runs of one workflow: retrying on the newest version moves each run "
                "to that workflow's newest version, so do one workflow at a time.",
            )
        )
    else:
        results = _bulk(action, ids, set(workflow_of), request.user.username)
    changed = [r for r, _ in results if r in workflow_of]
    rows = listing.with_row_columns(
        RunSummary.objects.filter(workspace=access.workspace, run_id__in=changed)
    )
    context = {
        "access": access,
        "results": results,
        "rows": list(rows),
        "can_operate": True,
        "runs_url": reverse("runs", kwargs={"ws": access.workspace.slug}),
    }
    if not request.htmx:
        for run_id, message in results:
            messages.info(request, f"Run {str(run_id)[:8]}: {message}" if run_id else message)
        return redirect("runs", ws=access.workspace.slug)
    return render(request, "runs/list.html#bulk_result", context)


def _bulk(action: str, ids: list[UUID], found: set[UUID], actor: str) -> list[tuple[UUID, str]]:
    """What happened to each selected run, in the order selected."""
    mine = [run_id for run_id in ids if run_id in found]
    if action == "retry_newest":
        outcomes = commands.retry_attention_runs(mine, actor=actor, newest_version=True)
        said = {o.run_id: o.message if o.ok else f"Not retried: {o.message}" for o in outcomes}
    else:
        said = {run_id: _bulk_one(action, run_id, actor) for run_id in mine}
    return [(run_id, said.get(run_id, "Not found in this workspace.")) for run_id in ids]


def _bulk_one(action: str, run_id: UUID, actor: str) -> str:
    if action == "cancel":
        if commands.cancel_run(run_id, actor=actor, reason="Cancelled from the run list"):
            return "Cancelled."
        return "Already finished; nothing to cancel."
    try:
        step_id = commands.retry_failed_step(run_id, actor=actor)
    except commands.ActionRefused as refused:
        return str(refused)
    return f"Retrying from step '{step_id}'."


# The run page


@workspace_view()
@require_GET
def run_detail(request: HttpRequest, access: Access, run_id: UUID) -> HttpResponse:
    run = get_run(access, run_id)
    return render(request, "runs/detail.html", _page_context(request, access, run))


def _page_context(request: HttpRequest, access: Access, run: Run) -> dict:
    summary = run.summary
    failures_only = request.GET.get("failures") == "1"
    rows = timeline_rows(
        run.id,
        limit=FIRST_PAGE,
        upto=summary.last_seq,
        failures_only=failures_only,
        version_id=run.current_version_id,
    )
    shown = rows[-1].seq if rows else 0
    state = store.load(run.id).state
    return {
        **run_context(run, summary, access.workspace.slug, state),
        **lineage(access, run, state),
        "access": access,
        "can_operate": access.can(Capability.OPERATE_RUNS),
        "rows": rows,
        "failures_only": failures_only,
        "last_seq": summary.last_seq,
        "more": _more(run, shown, summary.last_seq, failures_only, len(rows) == FIRST_PAGE),
    }


MAX_RERUNS_SHOWN = 10


def lineage(access: Access, run: Run, state: RunState) -> dict:
    """The run this one re-runs, and the runs that re-ran it (newest first)."""
    origin = None
    if state.rerun_of:
        origin = Run.objects.filter(pk=state.rerun_of, workspace=access.workspace).first()
    reruns = list(
        RunSummary.objects.filter(workspace=access.workspace, run__rerun__origin_id=run.id)
        .only("run_id", "status")
        .order_by("-started_at")[: MAX_RERUNS_SHOWN + 1]
    )
    more = 0
    if len(reruns) > MAX_RERUNS_SHOWN:
        more = (
            RunSummary.objects.filter(
                workspace=access.workspace, run__rerun__origin_id=run.id
            ).count()
            - MAX_RERUNS_SHOWN
        )
    return {
        "origin": origin,
        "reruns": reruns[:MAX_RERUNS_SHOWN],
        "more_reruns": more,
    }


def _more(run: Run, after: int, upto: int, failures_only: bool, full: bool) -> dict | None:
    """The "load more" row between the pages shown and the live tail, if any are left."""
    if after >= upto or (failures_only and not full):
        return None
    return {
        "after": after,
        "upto": upto,
        "failures": "1" if failures_only else "",
        "hidden": None if failures_only else upto - after,
        "run": run,
    }


@workspace_view()
@require_GET
def run_events(request: HttpRequest, access: Access, run_id: UUID) -> HttpResponse:
    """The next page of the timeline by seq (replaces the "load more" row)."""
    run = get_run(access, run_id)
    after = int_param(request, "after")
    upto = min(int_param(request, "upto", run.summary.last_seq), run.summary.last_seq)
    failures_only = request.GET.get("failures") == "1"
    rows = timeline_rows(
        run.id,
        after,
        MORE_PAGE,
        upto=upto,
        failures_only=failures_only,
        version_id=run.current_version_id,
    )
    shown = rows[-1].seq if rows else upto
    context = {
        "rows": rows,
        "ws_slug": access.workspace.slug,
        "as_of_url": reverse("run-as-of", kwargs={"ws": access.workspace.slug, "run_id": run.id}),
        "run": run,
        "more": _more(run, shown, upto, failures_only, len(rows) == MORE_PAGE),
        "finished": run.summary.status in TERMINAL_RUN_STATUSES,  # nothing to count down
    }
    return render(request, "runs/detail.html#more_rows", context)


@workspace_view()
@require_GET
def run_step(request: HttpRequest, access: Access, run_id: UUID) -> HttpResponse:
    """One step in detail (?id=<step id>), loaded into the run page."""
    run = get_run(access, run_id)
    loaded = store.load(run.id)
    detail = step_detail(run.id, loaded.state, loaded.definition, request.GET.get("id", ""))
    if detail is None:
        raise Http404("No such step")
    context = {
        "run": run,
        "step": detail,
        "shown": with_shown_status({"status": detail.status}, run.summary.status)["shown"],
        "finished": loaded.state.is_terminal,
        "ws_slug": access.workspace.slug,
        "access": access,
    }
    template = "runs/detail.html#step_detail" if request.htmx else "runs/step.html"
    return render(request, template, context)


@workspace_view()
@require_GET
def run_as_of(request: HttpRequest, access: Access, run_id: UUID) -> HttpResponse:
    """Time travel: the run's state as of event ?seq=N, by the engine's own fold."""
    run = get_run(access, run_id)
    last = run.summary.last_seq
    seq = min(max(int_param(request, "seq", last), 1), last)
    state = store.state_as_of(run.id, seq)
    steps = steps_of_state(state)
    graph = layout_for(run.current_version_id)
    definition = store.definition_for(run.current_version_id)
    from vectorbea.eventlog.projections import display_status

    status = display_status(state)
    context = {
        "run": run,
        "ws_slug": access.workspace.slug,
        "step_url": reverse("run-step", kwargs={"ws": access.workspace.slug, "run_id": run.id}),
        "seq": seq,
        "last_seq": last,
        "as_of_status": status,
        "as_of_at": timeline_rows(run.id, seq - 1, 1, version_id=run.current_version_id)[0].at,
        "graph": graph,
        "graph_nodes": [
            {**node, **with_shown_status(node, status)} for node in with_status(graph, steps)
        ],
        "graph_id": "as-of-graph",
        "as_of_steps": [
            {
                "id": step_id,
                "name": definition.steps[step_id].name or step_id,
                **with_shown_status(steps.get(step_id), status),
            }
            for step_id in definition.topo_order
        ],
    }
    template = "runs/detail.html#as_of" if request.htmx else "runs/as_of.html"
    return render(request, template, context)


# Operator actions: each one is an event with its actor (vectorbea.runs.commands)


def _operate(
    request: HttpRequest, access: Access, run_id: UUID, action: Callable[[Run, str], str]
) -> HttpResponse:
    run = get_run(access, run_id)
    try:
        message, refused = action(run, request.user.username), False
    except commands.ActionRefused as exc:
        message, refused = str(exc), True
    if not request.htmx:
        (messages.error if refused else messages.success)(request, message)
        return redirect("run-detail", ws=access.workspace.slug, run_id=run.id)
    summary = RunSummary.objects.get(run=run)
    context = {
        "run": run,
        "summary": summary,
        "ws_slug": access.workspace.slug,
        "can_operate": True,
        "action_message": message,
        "action_refused": refused,
    }
    return render(request, "runs/detail.html#action_response", context)


def _cancel(run: Run, actor: str) -> str:
    if not commands.cancel_run(run.id, actor=actor, reason="Cancelled from the run page"):
        raise commands.ActionRefused("The run has already finished; there is nothing to cancel.")
    return "Cancelled. Steps still running lose their leases; their results are refused."


def _pause(run: Run, actor: str) -> str:
    commands.pause_run(run.id, actor=actor)
    return "Paused. Steps already running finish; no new step starts until you resume."


def _resume(run: Run, actor: str) -> str:
    commands.resume_run(run.id, actor=actor)
    return "Resumed."


def _retry(run: Run, actor: str) -> str:
    denied = run.summary.status == "denied"
    step_id = commands.retry_failed_step(run.id, actor=actor)
    name = store.definition_for(run.current_version_id).steps[step_id].name or step_id
    if denied:
        return f"Asking again: approval '{name}' is open for a new decision."
    return f"Retrying from step '{name}'."


@workspace_view(Capability.OPERATE_RUNS)
@require_POST
def run_cancel(request: HttpRequest, access: Access, run_id: UUID) -> HttpResponse:
    return _operate(request, access, run_id, _cancel)


@workspace_view(Capability.OPERATE_RUNS)
@require_POST
def run_pause(request: HttpRequest, access: Access, run_id: UUID) -> HttpResponse:
    return _operate(request, access, run_id, _pause)


@workspace_view(Capability.OPERATE_RUNS)
@require_POST
def run_resume(request: HttpRequest, access: Access, run_id: UUID) -> HttpResponse:
    return _operate(request, access, run_id, _resume)


@workspace_view(Capability.OPERATE_RUNS)
@require_POST
def run_retry(request: HttpRequest, access: Access, run_id: UUID) -> HttpResponse:
    return _operate(request, access, run_id, _retry)


# A step that needs attention: a person retries it (perhaps with new settings, perhaps on
# the newest version), supplies its output, skips it or fails the run.


@workspace_view(Capability.OPERATE_RUNS)
@require_POST
def run_resolve(request: HttpRequest, access: Access, run_id: UUID, action: str) -> HttpResponse:
    if action not in commands.RESOLUTIONS:
        raise Http404("No such action")
    run = get_run(access, run_id)
    step_id = request.POST.get("step", "")
    item = next((i for i in attention_items(run.id) if i.step_id == step_id), None)
    if item is None:
        message = "That step does not need attention any more; someone may have resolved it."
        return _resolved(request, access, run, message, refused=True)
    shown = item.forms[action]
    form = RESOLVE_FORMS[action](request.POST, initial=shown.initial, auto_id=shown.auto_id)
    if form.is_valid():
        try:
            message = _resolve(run, item, action, form.cleaned_data, request.user.username)
        except commands.ActionRefused as refused:
            form.add_error(None, str(refused))
        else:
            return _resolved(request, access, run, message)
    item.with_form(action, form)
    if request.htmx:
        context = {"run": run, "ws_slug": access.workspace.slug, "item": item, "form": form}
        return render(request, f"runs/detail.html#{action}_form", context)
    context = _page_context(request, access, run)
    context["attention"] = [item if i.step_id == step_id else i for i in context["attention"]]
    return render(request, "runs/detail.html", context, status=400)


def _resolve(run: Run, item: AttentionItem, action: str, data: dict, actor: str) -> str:
    """Answer the step; say what happens next. Raises ActionRefused."""
    step, note = item.step_id, data["note"]
    if action == "retry":
        config = data["settings"] if data["settings"] != item.settings else None
        version = None
        if data["version"]:
            version = WorkflowVersion.objects.filter(
                workflow_id=run.workflow_id, number=data["version"]
            ).first()
            if version is None:
                raise commands.ActionRefused(f"The workflow has no version {data['version']}.")
        commands.resolve_attention(
            run.id, step, "retry", actor=actor, note=note, config=config, version=version
        )
        how = " with the new settings" if config is not None else ""
        where = f" on version {version.number}" if version is not None else ""
        return f"Retrying step '{item.name}'{how}{where}."
    if action == "supply_output":
        commands.resolve_attention(
            run.id, step, "supply_output", actor=actor, note=note, output=data["output"]
        )
        return f"Step '{item.name}' has the output you gave; the run goes on."
    commands.resolve_attention(run.id, step, action, actor=actor, note=note)
    if action == "skip":
        return f"Skipped step '{item.name}'; the run goes on."
    return f"The run failed at step '{item.name}'."


def _resolved(
    request: HttpRequest, access: Access, run: Run, message: str, *, refused: bool = False
) -> HttpResponse:
    """After an answer (or one that came too late): the panel as it is now, and what
    happened, both out of band: the live update may have replaced the panel (and the form
    that asked) already. The live timeline shows the rest."""
    if not request.htmx:
        (messages.error if refused else messages.success)(request, message)
        return redirect("run-detail", ws=access.workspace.slug, run_id=run.id)
    context = {
        "run": run,
        "ws_slug": access.workspace.slug,
        "step_url": reverse("run-step", kwargs={"ws": access.workspace.slug, "run_id": run.id}),
        "can_operate": True,
        "attention": attention_items(run.id),
        "action_message": message,
        "action_refused": refused,
    }
    return reswap(render(request, "runs/detail.html#attention_response", context), "none")
