"""The run page: timeline pages, failures only, graph, step detail, time travel, actions."""

import re
import tracemalloc
from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse

from tests.conftest import make_member
from tests.runs.test_views_list import fail, record
from tests.support.workflows import chain, publish
from vectorbea.accounts.models import Role
from vectorbea.engine import (
    CallCharged,
    RunCancelled,
    RunPaused,
    RunResumed,
    StepCompleted,
    StepFailed,
    StepInterrupted,
)
from vectorbea.eventlog import store
from vectorbea.eventlog.models import RunSummary
from vectorbea.runs.commands import pause_run, start_run
from vectorbea.steps.templating import PREVIEW_LIMITS

HTMX = {"HX-Request": "true"}


def url(name: str, run, **params) -> str:
    path = reverse(name, kwargs={"ws": "acme", "run_id": run.id})
    return path + ("?" + "&".join(f"{k}={v}" for k, v in params.items()) if params else "")


def seqs(html: str) -> list[int]:
    return [int(s) for s in re.findall(r'data-seq="(\d+)"', html)]


def append_raw(run_id, events) -> None:
    loaded = store.load(run_id)
    store.append(
        run_id, loaded.state, lambda s, now: events, loaded.definition, now=loaded.clock.now()
    )


@pytest.fixture
def run(acme):
    definition = chain(3)
    definition["steps"][1] = {
        "id": "s1",
        "kind": "tool",
        "name": "Summarise",
        "config": {"tool": "echo_args", "args": {"customer": "{{ input.customer }}"}},
        "retry": {"maximum_attempts": 2, "initial_interval_seconds": 30},
    }
    return start_run(publish(acme, definition, name="Nightly"), {"customer": "Initech"})


def test_the_run_page_shows_graph_steps_timeline_and_time_travel(client, alice, run):
    client.force_login(alice)
    html = client.get(url("run-detail", run)).content.decode()
    assert seqs(html) == [1, 2]
    assert 'class="graph-node status-running" data-step="s0"' in html
    assert 'data-step="s1" data-status="pending"' in html
    assert 'id="as-of-seq" name="seq" min="1" max="2"' in html
    assert 'ws-connect="/ws/w/acme/runs/' in html and 'data-last-seq="2"' in html
    assert "timeline-more" not in html
    assert 'id="run-actions"' in html  # alice owns Acme


def test_a_big_run_shows_its_first_page_then_pages_by_seq(
    client, alice, run, django_assert_max_num_queries
):
    append_raw(
        run.id, [RunPaused("alice", "") if i % 2 == 0 else RunResumed("alice") for i in range(450)]
    )
    client.force_login(alice)
    client.get(url("run-detail", run))
    with django_assert_max_num_queries(14):
        html = client.get(url("run-detail", run)).content.decode()
    assert seqs(html) == list(range(1, 201))
    assert "Load more · 252 more events" in html
    shown = seqs(html)
    more = re.search(r'id="timeline-more".*?href="([^"]+)"', html, re.S).group(1)
    while more:
        page = client.get(more.replace("&amp;", "&"), headers=HTMX).content.decode()
        shown += seqs(page)
        found = re.search(r'id="timeline-more".*?href="([^"]+)"', page, re.S)
        more = found.group(1) if found else ""
    assert shown == list(range(1, 453))


def test_failures_only_shows_failures_and_retries(client, alice, run):
    record(run.id, StepCompleted("s0", 1, {"ok": True}))
    record(run.id, StepFailed("s1", 1, "transient", "provider overloaded (529)"))
    client.force_login(alice)
    html = client.get(url("run-detail", run, failures=1)).content.decode()
    types = re.findall(r'data-type="(\w+)"', html)
    assert types == ["StepFailed", "RetryScheduled"]
    assert "provider overloaded (529)" in html and 'class="countdown" data-until=' in html
    assert 'class="timeline failures-only"' in html


def test_step_detail_has_attempts_settings_output_tokens_and_cost(client, alice, run):
    record(run.id, StepCompleted("s0", 1, {"ok": True}))
    usage = {"model": "m-1", "input_tokens": 120, "output_tokens": 30, "cost_usd": 0.02}
    record(run.id, StepFailed("s1", 1, "transient", "provider overloaded (529)", usage=usage))
    client.force_login(alice)
    html = client.get(url("run-step", run, id="s1"), headers=HTMX).content.decode()
    assert "<html" not in html and 'data-step="s1"' in html
    assert "Summarise" in html and "Retry scheduled" in html
    assert "120 in · 30 out" in html and "$0.02" in html and "m-1" in html
    assert "provider overloaded (529)" in html and "transient" in html
    assert "&quot;customer&quot;: &quot;Initech&quot;" in html  # settings rendered for this run
    assert "(rendered for this run)" in html
    full = client.get(url("run-step", run, id="s0")).content.decode()
    assert "<html" in full and "&quot;ok&quot;: true" in full
    assert client.get(url("run-step", run, id="nope")).status_code == 404


def test_an_interrupted_attempt_shows_as_interrupted_in_step_detail(client, alice, run):
    record(run.id, StepInterrupted("s0", 1, "worker shutdown", "The worker was stopped."))
    client.force_login(alice)
    html = client.get(url("run-step", run, id="s0"), headers=HTMX).content.decode()
    first = re.search(r'<tr class="attempt-(\w+)"><td>1</td>', html)
    assert first is not None and first.group(1) == "interrupted"
    assert "The worker was stopped." in html
    second = re.search(r'<tr class="attempt-(\w+)"><td>2</td>', html)  # it ran again
    assert second is not None and second.group(1) == "running"


def test_a_call_charged_after_the_run_was_cancelled_shows_in_its_cost_step_and_timeline(
    client, alice, run
):
    record(run.id, StepCompleted("s0", 1, {"ok": True}))
    record(run.id, RunCancelled("alice", "enough"))
    estimate = {"provider": "openai", "model": "gpt-4", "cost_usd": 0.0612, "cost_estimated": True}
    append_raw(run.id, [CallCharged("s1", 1, estimate, "cancelled")])
    client.force_login(alice)

    html = client.get(url("run-detail", run)).content.decode()
    assert RunSummary.objects.get(run=run).cost_usd == Decimal("0.0612")
    assert 'data-type="CallCharged"' in html
    assert (
        "Step &#x27;Summarise&#x27; was charged $0.0612 for the model call of attempt 1, the "
        "most it may have cost: its answer was never read (the attempt was stopped while it "
        "waited)"
    ) in html
    step = client.get(url("run-step", run, id="s1"), headers=HTMX).content.decode()
    assert "$0.06 · gpt-4" in step  # the step's cost
    assert "<td>1</td>" in step and "(estimate)</span>" in step  # the attempt's


def test_time_travel_shows_the_state_as_of_an_event(client, alice, run):
    record(run.id, StepCompleted("s0", 1, {"ok": True}))  # seq 3, 4 (s1 starts)
    client.force_login(alice)
    html = client.get(url("run-as-of", run, seq=2), headers=HTMX).content.decode()
    assert "As of event <strong>2</strong> of 4" in html
    assert 'data-step="s0" data-status="running"' in html
    html = client.get(url("run-as-of", run, seq=4), headers=HTMX).content.decode()
    assert 'data-step="s0" data-status="completed"' in html
    assert 'data-step="s1" data-status="running"' in html
    state = store.state_as_of(run.id, 3)
    html = client.get(url("run-as-of", run, seq=3), headers=HTMX).content.decode()
    for step_id, step in state.steps.items():
        assert f'data-step="{step_id}" data-status="{step.status}"' in html


ACTIONS = ["run-cancel", "run-pause", "run-resume", "run-retry"]


@pytest.mark.parametrize("action", ACTIONS)
def test_a_viewer_can_view_but_not_act(client, acme, run, action):
    client.force_login(make_member("vic", acme, Role.VIEWER))
    html = client.get(url("run-detail", run)).content.decode()
    assert '<div id="run-actions" class="run-actions" hidden></div>' in html
    assert url(action, run) not in html
    assert client.post(url(action, run), headers=HTMX).status_code == 403
    assert store.load(run.id).state.last_seq == 2


@pytest.mark.parametrize("action", ACTIONS)
def test_actions_need_the_csrf_token(alice, run, action):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    assert client.post(url(action, run)).status_code == 403
    assert store.load(run.id).state.last_seq == 2


def test_pause_and_resume_are_events_with_their_actor(client, acme, run):
    client.force_login(make_member("ed", acme, Role.EDITOR))
    html = client.post(url("run-pause", run), headers=HTMX).content.decode()
    assert "Paused." in html and ">Resume</button>" in html
    assert RunSummary.objects.get(run=run).status == "paused"
    html = client.post(url("run-pause", run), headers=HTMX).content.decode()
    assert "The run is already paused." in html and "is-refused" in html
    client.post(url("run-resume", run), headers=HTMX)
    rows = store.read_events(run.id)
    assert [(type(r.event).__name__, r.event.actor) for r in rows[-2:]] == [
        ("RunPaused", "ed"),
        ("RunResumed", "ed"),
    ]


def test_retry_from_the_failed_step_and_refusals_in_plain_words(client, alice, run):
    client.force_login(alice)
    html = client.post(url("run-retry", run), headers=HTMX).content.decode()
    assert "Only a run that failed at a step can be retried from it." in html
    fail(run.id)
    html = client.post(url("run-retry", run), headers=HTMX).content.decode()
    assert "Retrying from step &#x27;s0&#x27;." in html
    assert RunSummary.objects.get(run=run).status == "running"


def test_cancel_then_cancel_again(client, alice, run):
    client.force_login(alice)
    response = client.post(url("run-cancel", run))  # without htmx: back to the page
    assert response.status_code == 302
    assert RunSummary.objects.get(run=run).status == "cancelled"
    html = client.post(url("run-cancel", run), headers=HTMX).content.decode()
    assert "already finished" in html


def test_event_content_is_escaped_on_the_page_and_in_step_detail(client, alice, acme):
    definition = chain(1)
    definition["steps"][0]["name"] = "<script>alert(1)</script>"
    run = start_run(publish(acme, definition), {"x": "<img src=x onerror=alert(2)>"})
    pause_run(run.id, actor="<b>eve</b>")
    client.force_login(alice)
    for response in (
        client.get(url("run-detail", run)),
        client.get(url("run-step", run, id="s0"), headers=HTMX),
        client.get(url("run-as-of", run, seq=3), headers=HTMX),
    ):
        html = response.content.decode()
        assert "<script>alert" not in html and "<b>eve</b>" not in html
        assert "<img src=x" not in html
    assert "Content-Security-Policy" in client.get(url("run-detail", run)).headers


def test_the_list_and_page_have_no_inline_script(client, alice, run):
    client.force_login(alice)
    for page in (reverse("runs", kwargs={"ws": "acme"}), url("run-detail", run)):
        html = client.get(page).content.decode()
        assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", html) == []
        assert " style=" not in html and "onclick" not in html


@pytest.mark.parametrize(
    ("template", "reason"),
    [
        # allocates five million spaces per level before anything could look at the result
        ("{{ {'who': [input.customer]}|tojson(indent=5000000) }}", "indent must be a whole number"),
        # nine million turns of two loops with nothing in them
        (
            "{% for a in input.n %}{% for b in input.n %}{% endfor %}{% endfor %}",
            "too much work|took longer than 0.5 seconds",
        ),
    ],
)
def test_step_detail_renders_hostile_settings_within_the_preview_limits(
    client, alice, acme, template, reason
):
    definition = chain(2)
    definition["steps"][1]["config"] = {"output": template}
    run = start_run(publish(acme, definition), {"customer": "Initech", "n": list(range(3000))})
    record(run.id, StepCompleted("s0", 1, {"ok": True}))
    record(run.id, StepFailed("s1", 1, "transient", "provider overloaded (529)"))
    client.force_login(alice)
    client.get(url("run-step", run, id="s1"), headers=HTMX)  # imports, caches, first queries

    tracemalloc.start()
    try:
        response = client.get(url("run-step", run, id="s1"), headers=HTMX)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    html = response.content.decode()
    assert peak < PREVIEW_LIMITS.bytes + 8 * 2**20
    assert response.status_code == 200
    assert "(as written)" in html
    assert re.search(
        r'class="muted settings-problem">Setting &#x27;output&#x27;: [^<]*(' + reason + ")", html
    )
