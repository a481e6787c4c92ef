"""An ended run's page tells the truth: on cancel, failure, denial and completion nothing
waits, counts down or is "now on", the cost is final, and a denial is its own outcome.
Also the page's input and output block, and re-running a run through the run form."""

import re

from django.urls import reverse

from tests.approvals.support import gate_step, publish_gated
from tests.conftest import make_member
from tests.runs.test_views_list import fail
from tests.support.workflows import chain, publish, record
from vectorbea.accounts.models import Role
from vectorbea.engine import StepCompleted
from vectorbea.eventlog import store
from vectorbea.eventlog.models import Run, RunSummary
from vectorbea.eventlog.projections import current_label
from vectorbea.runs.commands import cancel_run, decide_gate, retry_failed_step, start_run
from vectorbea.runs.models import Rerun
from vectorbea.workflows.models import WorkflowVersion, content_hash

HTMX = {"HX-Request": "true"}


def page(client, run, **params) -> str:
    path = reverse("run-detail", kwargs={"ws": "acme", "run_id": run.id})
    query = "?" + "&".join(f"{k}={v}" for k, v in params.items()) if params else ""
    return client.get(path + query).content.decode()


def step_badges(html: str) -> dict[str, str]:
    """Each step row's badge class in the step list."""
    rows = re.findall(
        r'<li id="step-(\w+)" class="step-row".*?class="badge status-(\w+)"', html, re.S
    )
    return dict(rows)


def graph_statuses(html: str) -> dict[str, str]:
    return dict(
        (step, status)
        for status, step in re.findall(r'class="graph-node status-(\w+)" data-step="(\w+)"', html)
    )


def assert_ended(html: str) -> None:
    """What no ended run's page shows."""
    assert "Now on" not in html
    assert "Cost so far" not in html and "<dt>Cost</dt>" in html
    assert "so far" not in html
    assert 'class="countdown"' not in html
    assert "data-finished" in html


def delayed(acme):
    """a → wait 10 min → b."""
    definition = chain(1)
    definition["steps"].append(
        {"id": "wait", "kind": "delay", "name": "Cool off", "config": {"seconds": 600}}
    )
    definition["steps"].append({"id": "b", "kind": "noop", "config": {}})
    definition["edges"] += [
        {"source": "s0", "target": "wait", "port": None},
        {"source": "wait", "target": "b", "port": None},
    ]
    return publish(acme, definition, name="Cooling")


def test_a_cancelled_run_waits_for_nothing(client, alice, acme):
    run = start_run(delayed(acme), {"n": 1})
    record(run.id, StepCompleted("s0", 1, {"ok": True}))
    client.force_login(alice)
    waiting = page(client, run)
    assert "Now on" in waiting and "Cool off (waiting: delay)" in waiting
    assert 'class="countdown"' in waiting and "Cost so far" in waiting

    cancel_run(run.id, actor="alice", reason="Not needed")
    html = page(client, run)

    assert_ended(html)
    assert step_badges(html) == {"s0": "completed", "wait": "cancelled", "b": "not_run"}
    assert graph_statuses(html) == {"s0": "completed", "wait": "cancelled", "b": "not_run"}
    assert "Not run" in html
    assert "Cool off (waiting: delay)" not in html
    assert '<div class="run-reason"><dt>Reason</dt><dd>Not needed</dd>' in html
    assert "No output: the run was cancelled." in html
    summary = RunSummary.objects.get(run=run)
    assert (summary.current_label, summary.current_steps, summary.wake_at) == ("", [], None)
    detail = client.get(
        reverse("run-step", kwargs={"ws": "acme", "run_id": run.id}) + "?id=wait", headers=HTMX
    ).content.decode()
    assert "Waits until" not in detail and "countdown" not in detail
    assert "status-cancelled" in detail


def test_a_failed_run_says_where_it_failed_and_offers_a_retry(client, alice, acme):
    run = start_run(publish(acme, chain(3)), {})
    fail(run.id, "s0", "bad config")
    client.force_login(alice)
    html = page(client, run)

    assert_ended(html)
    assert step_badges(html) == {"s0": "gave_up", "s1": "not_run", "s2": "not_run"}
    assert "<dt>Failed at</dt><dd>s0</dd>" in html
    assert "Retry from failed step" in html
    assert "No output: the run failed." in html


def test_a_denied_run_is_denied_not_failed_and_says_by_whom_and_why(client, alice, acme):
    run = start_run(publish_gated(acme), {"amount": 40, "customer": "Initech"})
    client.force_login(alice)
    decide_gate(run.id, "gate", approve=False, actor="bob", reason="Over the limit")
    html = page(client, run)

    summary = RunSummary.objects.get(run=run)
    assert summary.status == "denied"
    assert_ended(html)
    assert 'id="run-status" class="badge status-denied"' in html and ">Denied</span>" in html
    assert "Denied by bob at ‘Refund’, reason: Over the limit" in html
    assert "Retry from failed step" not in html and "Ask again" in html
    assert ">Failed" not in html and "Run failed" not in html
    assert "Run denied: Approval &#x27;Refund&#x27; was denied by bob: Over the limit" in html
    assert 'class="event kind-run-denied' in html
    assert step_badges(html) == {"gate": "completed", "pay": "not_run"}
    assert "No output: the run was denied at ‘Refund’." in html
    retry_failed_step(run.id, actor="alice")  # "Ask again": the gate opens anew
    assert RunSummary.objects.get(run=run).status == "waiting"
    assert store.load(run.id).state.step("gate").attempt == 2


def test_a_gate_that_times_out_denied_says_so(client, alice, acme):
    definition = {
        "input_schema": {"type": "object"},
        "steps": [gate_step(timeout_seconds=1), {"id": "pay", "kind": "noop", "config": {}}],
        "edges": [{"source": "gate", "target": "pay", "port": None}],
    }
    run = start_run(publish_gated(acme, definition), {"amount": 1, "customer": "x"})
    loaded = store.load(run.id)
    import time

    time.sleep(1.1)
    record(run.id)  # the sweeper's wake-up: decide sees the deadline passed
    client.force_login(alice)
    html = page(client, run)

    assert store.load(run.id).state.status == "denied", loaded.state
    assert "Denied at ‘Refund’: nobody decided before its timeout." in html
    assert_ended(html)


def test_a_completed_run_shows_its_final_cost_and_output(client, alice, acme):
    run = start_run(publish(acme, chain(2)), {"customer": "Initech"})
    record(run.id, StepCompleted("s0", 1, {"ok": True}))
    record(run.id, StepCompleted("s1", 1, {"answer": "42", "naïve": True}))
    client.force_login(alice)
    html = page(client, run)

    assert RunSummary.objects.get(run=run).status == "completed"
    assert_ended(html)
    assert step_badges(html) == {"s0": "completed", "s1": "completed"}
    assert re.search(
        r'<pre id="run-input">\{\n  &quot;customer&quot;: &quot;Initech&quot;\n\}</pre>', html
    )
    assert "&quot;naïve&quot;: true" in html  # pretty, and not \u-escaped
    assert 'data-copy="run-input"' in html and 'data-copy="run-output"' in html


def test_a_run_that_goes_on_has_its_input_and_no_output_yet(client, alice, acme):
    run = start_run(publish(acme, chain(2)), {"customer": "Initech"})
    client.force_login(alice)
    html = page(client, run)

    assert 'id="run-input"' in html and 'id="run-output"' not in html
    assert "its output appears here when it completes" in html
    assert "Cost so far" in html and "data-finished" not in html


def test_the_list_filters_and_badges_denied_runs(client, alice, acme):
    denied = start_run(publish_gated(acme), {"amount": 40, "customer": "Initech"})
    decide_gate(denied.id, "gate", approve=False, actor="bob", reason="no")
    failed = start_run(publish(acme, chain(1)), {})
    fail(failed.id)
    client.force_login(alice)
    runs = reverse("runs", kwargs={"ws": "acme"})

    html = client.get(runs + "?status=denied").content.decode()
    assert re.findall(r'id="run-([0-9a-f-]{36})"', html) == [str(denied.id)]
    assert 'class="badge status-denied" data-status="denied"' in html
    assert '<option value="denied" selected>Denied</option>' in html
    html = client.get(runs + "?status=failed").content.decode()
    assert re.findall(r'id="run-([0-9a-f-]{36})"', html) == [str(failed.id)]


def test_the_summary_of_an_ended_run_names_no_current_step(acme):
    run = start_run(delayed(acme), {})
    record(run.id, StepCompleted("s0", 1, {"ok": True}))
    loaded = store.load(run.id)
    assert current_label(loaded.state, loaded.definition) == "Cool off (waiting: delay)"
    cancel_run(run.id, actor="alice")
    loaded = store.load(run.id)
    assert current_label(loaded.state, loaded.definition) == ""


# --- re-running a run through the run form ----------------------------------------------------


def rerun_form(run) -> str:
    path = reverse("workflow-run", kwargs={"ws": "acme", "workflow_id": run.workflow_id})
    return f"{path}?rerun={run.id}"


def typed(acme):
    definition = chain(1)
    definition["input_schema"] = {
        "type": "object",
        "properties": {"customer": {"type": "string"}, "amount": {"type": "integer"}},
        "required": ["customer"],
    }
    return publish(acme, definition, name="Typed")


def test_rerun_opens_the_form_filled_with_the_input_and_links_both_ways(client, alice, acme):
    origin = start_run(typed(acme), {"customer": "Initech", "amount": 7, "extra": {"k": 1}})
    client.force_login(alice)
    html = page(client, origin)
    assert f'href="{rerun_form(origin)}"' in html
    assert "Re-run as" not in html

    form = client.get(rerun_form(origin)).content.decode()
    assert Run.objects.count() == 1  # opening the form starts nothing
    assert 'value="Initech"' in form and 'value="7"' in form
    assert f'name="rerun_of" value="{origin.id}"' in form
    assert "<code>extra</code>" in form  # kept as it was, and said so
    key = re.search(r'name="idempotency_key" value="(\w+)"', form).group(1)
    customer = re.search(r'name="(input_\d)" value="Initech"', form).group(1)
    amount = re.search(r'name="(input_\d)" value="7"', form).group(1)

    response = client.post(
        rerun_form(origin).split("?")[0],
        {"idempotency_key": key, customer: "Initrode", amount: "8", "rerun_of": origin.id},
    )
    assert response.status_code == 302
    new = Run.objects.exclude(pk=origin.pk).get()
    state = store.load(new.id).state
    assert state.input == {"customer": "Initrode", "amount": 8, "extra": {"k": 1}}
    assert state.rerun_of == str(origin.id)
    assert Rerun.objects.get(run=new).origin_id == origin.id

    assert (
        f'Re-run of <a href="{reverse("run-detail", kwargs={"ws": "acme", "run_id": origin.id})}"'
        in page(client, new)
    )
    origin_html = page(client, origin)
    assert "Re-run as" in origin_html and str(new.id)[:8] in origin_html


def test_rerun_of_another_workspaces_run_is_not_found(client, alice, bob, acme, globex):
    theirs = start_run(typed(globex), {"customer": "Globex"})
    mine = typed(acme)
    client.force_login(alice)
    path = reverse("workflow-run", kwargs={"ws": "acme", "workflow_id": mine.id})

    assert client.get(f"{path}?rerun={theirs.id}").status_code == 404
    assert client.get(f"{path}?rerun=not-a-uuid").status_code == 404
    response = client.post(
        path, {"idempotency_key": "k" * 32, "input_0": "x", "rerun_of": theirs.id}
    )
    assert response.status_code == 404
    assert not Run.objects.filter(workflow=mine).exists()


def test_a_viewer_gets_no_rerun_link_and_no_form(client, acme):
    origin = start_run(typed(acme), {"customer": "Initech"})
    client.force_login(make_member("vic", acme, Role.VIEWER))

    assert rerun_form(origin) not in page(client, origin)
    assert client.get(rerun_form(origin)).status_code == 403


def test_rebuilding_the_projections_gives_the_same_rerun_rows(acme, alice):
    from vectorbea.eventlog.rebuild import rebuild_projections
    from vectorbea.runs.commands import rerun

    origin = start_run(typed(acme), {"customer": "Initech"})
    new = rerun(origin.id, started_by=alice)
    before = list(Rerun.objects.values_list("run_id", "origin_id"))
    Rerun.objects.all().delete()

    written = rebuild_projections()

    assert written["reruns"] == 1
    assert list(Rerun.objects.values_list("run_id", "origin_id")) == before == [(new.id, origin.id)]


def test_rerun_drops_input_the_newest_version_no_longer_takes(client, alice, acme):
    workflow = typed(acme)
    origin = start_run(workflow, {"customer": "Initech", "note": "old field"})
    closed = {**workflow.draft}
    closed["input_schema"] = {**closed["input_schema"], "additionalProperties": False}
    WorkflowVersion.objects.create(
        workflow=workflow, number=2, definition=closed, content_hash=content_hash(closed)
    )
    client.force_login(alice)

    form = client.get(rerun_form(origin)).content.decode()
    assert 'value="Initech"' in form and "<code>note</code>" not in form
    key = re.search(r'name="idempotency_key" value="(\w+)"', form).group(1)
    customer = re.search(r'name="(input_\d)" value="Initech"', form).group(1)
    path = rerun_form(origin).split("?")[0]
    response = client.post(
        path, {"idempotency_key": key, customer: "Initech", "rerun_of": origin.id}
    )

    assert response.status_code == 302
    new = Run.objects.exclude(pk=origin.pk).get()
    assert store.load(new.id).state.input == {"customer": "Initech"}
