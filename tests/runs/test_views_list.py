"""The run list: filters, search, sorting, keyset pages, bulk actions and who may act."""

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from tests.conftest import make_member
from tests.support.workflows import chain, publish, record
from vectorbea.accounts.models import Role
from vectorbea.engine import StepFailed
from vectorbea.eventlog.models import RunSummary
from vectorbea.runs.commands import cancel_run, pause_run, start_run


def fail(run_id, step_id: str = "s0", message: str = "bad config") -> None:
    record(run_id, StepFailed(step_id, 1, "permanent", message, detail={"then": "fail"}))


def needs_attention(run_id, step_id: str = "s0", message: str = "bad config") -> None:
    record(run_id, StepFailed(step_id, 1, "permanent", message))


def listed(response) -> list[str]:
    return re.findall(r'id="run-([0-9a-f-]{36})"', response.content.decode())


def runs_url(**params) -> str:
    url = reverse("runs", kwargs={"ws": "acme"})
    if params:
        url += "?" + "&".join(f"{k}={v}" for k, v in params.items())
    return url


@pytest.fixture
def workflows(acme):
    return publish(acme, chain(2), name="Nightly"), publish(acme, chain(1), name="Triage")


@pytest.fixture
def some_runs(acme, alice, workflows):
    nightly, triage = workflows
    vera = make_member("vera", acme, Role.EDITOR)
    running = start_run(nightly, {"customer": "Initech"}, started_by=alice)
    failed = start_run(nightly, {"customer": "Globex"}, started_by=vera)
    fail(failed.id)
    paused = start_run(triage, {"ticket": 42}, started_by=alice)
    pause_run(paused.id, actor="alice")
    cancelled = start_run(triage, {"ticket": 7}, started_by=vera)
    cancel_run(cancelled.id, actor="vera")
    return {"running": running, "failed": failed, "paused": paused, "cancelled": cancelled}


def test_it_lists_runs_newest_update_first_with_what_each_row_needs(client, alice, some_runs):
    client.force_login(alice)
    response = client.get(runs_url())
    assert response.status_code == 200
    # Inside a test's transaction the database clock stands still: ties go by run id.
    expected = RunSummary.objects.order_by("-updated_at", "-run_id").values_list("run_id")
    assert listed(response) == [str(run_id) for (run_id,) in expected]
    html = response.content.decode()
    assert "Nightly" in html and "v1" in html and "vera" in html
    assert 'data-status="failed"' in html and "s0" in html  # the step it failed at


def test_the_list_costs_a_fixed_number_of_queries(
    client, alice, acme, workflows, django_assert_max_num_queries
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def queries(url: str) -> list[str]:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(url).status_code == 200
        return [q["sql"] for q in captured.captured_queries]

    client.force_login(alice)
    start_run(workflows[0], {}, started_by=alice)
    client.get(runs_url())  # warm the session and caches
    few = queries(runs_url())
    for i in range(40):
        start_run(workflows[i % 2], {"i": i}, started_by=alice)
    many = queries(runs_url())
    assert len(many) == len(few)  # not one more per row
    ours = [sql for sql in many if "eventlog_" in sql]
    assert len(ours) == 1 and "eventlog_event" not in ours[0]  # the summary, never the log
    # The app shell's own queries (session, user, membership, nav) and the session's save
    # come on top of the page of runs and the two filters' choices.
    with django_assert_max_num_queries(12):
        response = client.get(runs_url())
    assert len(listed(response)) == 41
    with django_assert_max_num_queries(12):
        client.get(runs_url(status="attention", q="i", sort="-started"))


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"status": "failed"}, ["failed"]),
        ({"status": "attention"}, []),
        ({"status": "cancelled"}, ["cancelled"]),
        ({"q": "globex"}, ["failed"]),
        ({"q": "TICKET"}, ["cancelled", "paused"]),
        ({"q": "nobody"}, []),
    ],
)
def test_filters_and_search(client, alice, some_runs, params, expected):
    client.force_login(alice)
    response = client.get(runs_url(**params))
    assert sorted(listed(response)) == sorted(str(some_runs[name].id) for name in expected)


def test_runs_that_need_a_person_have_their_own_filter_and_badge(
    client, alice, some_runs, workflows
):
    nightly, _ = workflows
    stuck = start_run(nightly, {"customer": "Hooli"}, started_by=alice)
    needs_attention(stuck.id, message="401 Unauthorized")
    client.force_login(alice)

    response = client.get(runs_url(status="attention"))

    assert listed(response) == [str(stuck.id)]
    html = response.content.decode()
    assert 'data-status="needs_attention"' in html
    assert "Needs attention" in html


@pytest.mark.parametrize(
    ("sort", "order"),
    [
        ("-updated", ("-updated_at", "-run_id")),
        ("updated", ("updated_at", "run_id")),
        ("-started", ("-started_at", "-run_id")),
        ("started", ("started_at", "run_id")),
    ],
)
def test_sorting(client, alice, some_runs, sort, order):
    client.force_login(alice)
    expected = [str(r) for (r,) in RunSummary.objects.order_by(*order).values_list("run_id")]
    assert listed(client.get(runs_url(sort=sort))) == expected


def test_it_filters_by_workflow_started_by_and_dates(client, alice, some_runs, workflows):
    client.force_login(alice)
    vera = some_runs["failed"].started_by
    assert set(listed(client.get(runs_url(workflow=workflows[1].id)))) == {
        str(some_runs["paused"].id),
        str(some_runs["cancelled"].id),
    }
    assert set(listed(client.get(runs_url(started_by=vera.pk)))) == {
        str(some_runs["failed"].id),
        str(some_runs["cancelled"].id),
    }
    today = timezone.localdate()
    assert len(listed(client.get(runs_url(since=today, until=today)))) == 4
    tomorrow = today + timedelta(days=1)
    assert listed(client.get(runs_url(since=tomorrow))) == []


def test_search_finds_a_run_by_the_start_of_its_id(client, alice, some_runs):
    client.force_login(alice)
    run_id = str(some_runs["paused"].id)
    assert listed(client.get(runs_url(q=run_id[:8]))) == [run_id]
    assert listed(client.get(runs_url(q=run_id))) == [run_id]


def test_keyset_pages_cover_every_run_once_even_when_rows_tie(client, alice, acme, workflows):
    runs = [start_run(workflows[0], {"i": i}) for i in range(23)]
    # Same updated_at for many rows: the run id breaks the tie.
    same = timezone.now()
    RunSummary.objects.filter(run_id__in=[r.id for r in runs[:12]]).update(updated_at=same)
    client.force_login(alice)
    seen: list[str] = []
    url = runs_url()
    from vectorbea.runs import listing

    listing_size = listing.PAGE_SIZE
    listing.PAGE_SIZE = 5
    try:
        while url:
            html = client.get(url, headers={"HX-Request": "true"}).content.decode()
            seen += re.findall(r'id="run-([0-9a-f-]{36})"', html)
            more = re.search(r'id="runs-more".*?href="([^"]+)"', html, re.S)
            url = more.group(1).replace("&amp;", "&") if more else ""
    finally:
        listing.PAGE_SIZE = listing_size
    assert sorted(seen) == sorted(str(r.id) for r in runs)
    assert len(seen) == len(set(seen))
    expected = [str(s.run_id) for s in RunSummary.objects.order_by("-updated_at", "-run_id")]
    assert seen == expected


def test_cost_so_far_sums_every_attempt(client, alice, acme):
    definition = chain(2)
    definition["steps"][0]["retry"] = {"maximum_attempts": 3, "initial_interval_seconds": 0}
    run = start_run(publish(acme, definition), {})
    record(run.id, StepFailed("s0", 1, "transient", "529", usage={"cost_usd": 0.25}))
    summary = RunSummary.objects.get(run=run)
    assert summary.cost_usd == Decimal("0.25")
    client.force_login(alice)
    assert "$0.25" in client.get(runs_url()).content.decode()


def test_a_viewer_sees_the_list_but_cannot_act(client, acme, some_runs):
    viewer = make_member("vic", acme, Role.VIEWER)
    client.force_login(viewer)
    html = client.get(runs_url()).content.decode()
    assert 'name="run"' not in html and "Retry from failed step" not in html
    response = client.post(
        reverse("runs-bulk", kwargs={"ws": "acme"}),
        {"action": "cancel", "run": [str(some_runs["running"].id)]},
    )
    assert response.status_code == 403
    assert RunSummary.objects.get(run=some_runs["running"]).status == "running"


def test_bulk_actions_say_what_happened_to_each_run(client, alice, some_runs):
    client.force_login(alice)
    ids = [str(some_runs[name].id) for name in ("running", "failed", "cancelled")]
    url = reverse("runs-bulk", kwargs={"ws": "acme"})
    html = client.post(
        url, {"action": "retry", "run": ids}, headers={"HX-Request": "true"}
    ).content.decode()
    assert "Retrying from step &#x27;s0&#x27;." in html
    assert html.count("Only a run that failed at a step can be retried from it.") == 2
    html = client.post(
        url, {"action": "cancel", "run": ids}, headers={"HX-Request": "true"}
    ).content.decode()
    assert html.count("Cancelled.") == 2 and "Already finished; nothing to cancel." in html
    assert '<template><tr id="run-' in html and 'hx-swap-oob="true"' in html
    assert {RunSummary.objects.get(run_id=i).status for i in ids} == {"cancelled"}


def test_bulk_actions_need_the_csrf_token(alice, some_runs):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    response = client.post(
        reverse("runs-bulk", kwargs={"ws": "acme"}),
        {"action": "cancel", "run": [str(some_runs["running"].id)]},
    )
    assert response.status_code == 403
    assert RunSummary.objects.get(run=some_runs["running"]).status == "running"


def test_bulk_actions_ignore_another_workspaces_runs(client, alice, bob, globex):
    theirs = start_run(publish(globex, chain(1)), {})
    client.force_login(alice)
    html = client.post(
        reverse("runs-bulk", kwargs={"ws": "acme"}),
        {"action": "cancel", "run": [str(theirs.id)]},
        headers={"HX-Request": "true"},
    ).content.decode()
    assert "Not found in this workspace." in html
    assert RunSummary.objects.get(run=theirs).status == "running"


def test_input_with_markup_is_escaped_in_the_list(client, alice, acme):
    workflow = publish(acme, chain(1), name="<script>alert(1)</script>")
    start_run(workflow, {"x": "<img src=x onerror=alert(2)>"})
    client.force_login(alice)
    html = client.get(runs_url()).content.decode()
    assert "<script>alert(1)" not in html and "&lt;script&gt;" in html


def test_the_status_filter_offers_needs_attention_once_and_old_links_still_work(
    client, alice, some_runs, workflows
):
    nightly, _ = workflows
    stuck = start_run(nightly, {"customer": "Hooli"}, started_by=alice)
    needs_attention(stuck.id)
    client.force_login(alice)

    html = client.get(runs_url()).content.decode()
    status_select = re.search(r'<select name="status".*?</select>', html, re.S).group(0)
    assert status_select.count("Needs attention") == 1

    response = client.get(runs_url(status="needs_attention"))
    assert listed(response) == [str(stuck.id)]
    assert 'value="attention" selected' in response.content.decode()


def test_a_reversed_date_range_says_so_instead_of_matching_nothing(client, alice, some_runs):
    client.force_login(alice)
    today = timezone.localdate()
    yesterday = today - timedelta(days=1)

    response = client.get(runs_url(since=today, until=yesterday))

    html = response.content.decode()
    assert "The dates are the wrong way round" in html
    assert html.count("The dates are the wrong way round") == 1
    assert "Swap them" in html
    assert len(listed(response)) == 4  # the reversed dates filter nothing
