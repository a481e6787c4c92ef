"""Settings → Limits, the kill switch and Usage, as members of each role see them: who may
change what, plain-language validation, history written once per real change, and the
numbers on the usage page."""

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from tests.conftest import make_member
from tests.support.workflows import chain, publish
from vectorbea.accounts.models import Role
from vectorbea.budgets import usage
from vectorbea.budgets.models import LimitsChange, SpendLedger, WorkflowLimits, WorkspaceLimits
from vectorbea.eventlog.models import RunSummary
from vectorbea.runs.commands import start_run

pytestmark = pytest.mark.django_db

D = Decimal
VALID = {
    "run_cap_usd": "",
    "daily_cap_usd": "",
    "monthly_cap_usd": "",
    "soft_threshold_percent": "80",
    "over_budget": "pause",
    "max_steps_per_run": "1000",
    "max_attempts_per_step": "10",
    "requests_per_minute": "",
    "tokens_per_minute": "",
    "max_concurrent_runs": "",
    "max_concurrent_runs_per_workflow": "",
}
LLM = {"provider": "openai", "model": "gpt-4o-mini", "prompt": "x" * 400, "max_tokens": 1000}


def limits_url(name: str = "limits", *args, ws: str = "acme") -> str:
    return reverse(name, args=[ws, *args])


def text(response) -> str:
    """The page's text with tags and runs of whitespace collapsed."""
    html = re.sub(r"<[^>]+>", " ", response.content.decode())
    html = " ".join(html.replace("&amp;", "&").replace("&#x27;", "'").split())
    return re.sub(r" ([,.;:])", r"\1", html)


@pytest.fixture
def owner(client, alice):
    client.force_login(alice)
    return client


@pytest.fixture
def carol(acme):
    return make_member("carol", acme, Role.VIEWER)


@pytest.fixture
def dave(acme):
    return make_member("dave", acme, Role.EDITOR)


def save(client, **changes):
    return client.post(limits_url(), {**VALID, **changes})


# --- who may do what -----------------------------------------------------------------------


def test_a_viewer_sees_the_limits_read_only_and_may_not_post(client, carol, acme):
    WorkspaceLimits.objects.create(workspace=acme, daily_cap_usd=D("25"), max_concurrent_runs=4)
    client.force_login(carol)

    page = client.get(limits_url())

    assert page.status_code == 200
    assert 'id="limits-form"' not in page.content.decode()
    assert "Stop everything" not in text(page)  # a viewer cannot operate runs
    shown = text(page)
    assert "Daily cap $25.00" in shown and "Monthly cap no limit" in shown
    assert "Runs at once in the workspace 4" in shown
    assert "read-only for you" in shown

    assert save(client, daily_cap_usd="1").status_code == 403
    assert (
        client.post(limits_url("kill-switch-stop"), {"reason": "x", "confirm": "on"}).status_code
        == 403
    )
    workflow = publish(acme, chain(1))
    assert (
        client.post(limits_url("workflow-limits", workflow.id), {"run_cap_usd": "1"}).status_code
        == 403
    )
    assert WorkspaceLimits.objects.get(workspace=acme).daily_cap_usd == D(25)
    assert not LimitsChange.objects.exists() and not WorkflowLimits.objects.exists()


def test_an_editor_may_neither_change_limits_nor_throw_the_kill_switch(client, dave, acme):
    client.force_login(dave)
    page = client.get(limits_url())
    assert 'id="limits-form"' not in page.content.decode()
    assert "Stop everything" not in text(page)
    assert save(client, daily_cap_usd="1").status_code == 403
    stop = client.post(limits_url("kill-switch-stop"), {"reason": "x", "confirm": "on"})
    assert stop.status_code == 403
    assert not LimitsChange.objects.exists()
    assert not WorkspaceLimits.objects.filter(workspace=acme, stopped_at__isnull=False).exists()


def test_an_admin_gets_the_form(client, acme):
    client.force_login(make_member("erin", acme, Role.ADMIN))
    page = client.get(limits_url())
    assert 'id="limits-form"' in page.content.decode()
    assert save(client, daily_cap_usd="5").status_code == 302


def test_strangers_and_visitors_get_nothing(client, bob, acme):
    client.force_login(bob)
    assert client.get(limits_url()).status_code == 404
    assert save(client, daily_cap_usd="1").status_code == 404
    assert client.get(limits_url("usage")).status_code == 404
    client.logout()
    assert client.get(limits_url()).status_code == 302
    assert not WorkspaceLimits.objects.exists()


def test_the_settings_and_the_top_bar_link_to_the_pages(owner):
    html = owner.get(reverse("workspace-settings", args=["acme"])).content.decode()
    assert f'href="{limits_url()}"' in html
    assert f'href="{limits_url("usage")}"' in html


# --- saving and its history ----------------------------------------------------------------


def test_saving_writes_the_limits_and_one_history_entry(owner, acme, alice):
    response = save(
        owner,
        run_cap_usd="$2.50",
        daily_cap_usd="1,250",
        monthly_cap_usd="0.000001",
        soft_threshold_percent="90%",
        over_budget="fail",
        max_steps_per_run="500",
        max_attempts_per_step="5",
        requests_per_minute="600",
        tokens_per_minute="1,000,000",
        max_concurrent_runs="10",
        max_concurrent_runs_per_workflow="2",
    )

    assert response.status_code == 302
    limits = WorkspaceLimits.objects.get(workspace=acme)
    assert (limits.run_cap_usd, limits.daily_cap_usd, limits.monthly_cap_usd) == (
        D("2.5"),
        D(1250),
        D("0.000001"),
    )
    assert (limits.soft_threshold_percent, limits.over_budget) == (90, "fail")
    assert (limits.max_steps_per_run, limits.max_attempts_per_step) == (500, 5)
    assert (limits.requests_per_minute, limits.tokens_per_minute) == (600, 1_000_000)
    assert (limits.max_concurrent_runs, limits.max_concurrent_runs_per_workflow) == (10, 2)
    change = LimitsChange.objects.get()
    assert change.actor == alice and change.workflow is None
    assert change.changes == {
        "run_cap_usd": ["no limit", "$2.50"],
        "daily_cap_usd": ["no limit", "$1,250.00"],
        "monthly_cap_usd": ["no limit", "$0.000001"],
        "soft_threshold_percent": ["80 % of a cap", "90 % of a cap"],
        "over_budget": ["Pause (needs attention)", "Fail the run"],
        "max_steps_per_run": ["1,000", "500"],
        "max_attempts_per_step": ["10", "5"],
        "requests_per_minute": ["no limit", "600"],
        "tokens_per_minute": ["no limit", "1,000,000"],
        "max_concurrent_runs": ["no limit", "10"],
        "max_concurrent_runs_per_workflow": ["no limit", "2"],
    }
    page = owner.get(limits_url())
    assert "Saved the limits" in text(page)
    assert 'value="2.5"' in page.content.decode()  # the form shows what was typed, plainly


def test_a_save_that_changes_nothing_writes_no_history(owner, acme):
    save(owner, daily_cap_usd="10")
    response = save(owner, daily_cap_usd="10.000000")  # the same amount, written differently
    assert response.status_code == 302
    assert LimitsChange.objects.count() == 1
    assert "Nothing changed" in text(owner.get(limits_url()))


def test_only_what_changed_is_in_the_history_and_blank_means_no_limit(owner, acme):
    save(owner, daily_cap_usd="10", max_concurrent_runs="3")
    save(owner, daily_cap_usd="", max_concurrent_runs="3", max_steps_per_run="2000")

    latest = LimitsChange.objects.latest("id")
    assert latest.changes == {
        "daily_cap_usd": ["$10.00", "no limit"],
        "max_steps_per_run": ["1,000", "2,000"],
    }
    limits = WorkspaceLimits.objects.get(workspace=acme)
    assert limits.daily_cap_usd is None and limits.max_concurrent_runs == 3


def test_saving_leaves_the_kill_switch_alone(owner, acme):
    stopped_at = timezone.now()
    WorkspaceLimits.objects.create(
        workspace=acme, stopped_at=stopped_at, stopped_by="dave", stop_reason="Loop"
    )
    save(owner, daily_cap_usd="3")
    limits = WorkspaceLimits.objects.get(workspace=acme)
    assert (limits.stopped_at, limits.stopped_by, limits.daily_cap_usd) == (stopped_at, "dave", 3)


def test_the_history_shows_who_changed_what_newest_first(owner, acme, client, carol):
    save(owner, daily_cap_usd="10")
    save(owner, daily_cap_usd="20")
    client.force_login(carol)  # viewers see the history too

    shown = text(client.get(limits_url()))

    history = shown[shown.index("History") :]
    assert history.index("$10.00 → $20.00") < history.index("no limit → $10.00")
    assert "alice" in history


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("daily_cap_usd", "-5", "The daily cap can’t be negative."),
        ("monthly_cap_usd", "1000000.01", "The monthly cap can be at most $1,000,000."),
        (
            "run_cap_usd",
            "0.0000001",
            "Use at most 6 decimal places for the budget per run (the smallest amount is "
            "$0.000001).",
        ),
        (
            "daily_cap_usd",
            "ten dollars",
            "Enter the daily cap in dollars, like 25 or 0.50, or leave it blank for no limit.",
        ),
        ("daily_cap_usd", "NaN", "Enter the daily cap in dollars"),
        ("daily_cap_usd", "1e5", "Enter the daily cap in dollars"),
        ("daily_cap_usd", "9" * 5000, "Enter the daily cap in dollars"),
        ("soft_threshold_percent", "0", "The warning threshold must be from 1 to 99 %."),
        ("soft_threshold_percent", "100", "The warning threshold must be from 1 to 99 %."),
        ("soft_threshold_percent", "", "Enter the warning threshold, from 1 to 99 %."),
        ("over_budget", "explode", "Choose to pause the run or to fail it."),
        ("over_budget", "", "Choose what happens to a run that reaches a budget or cap."),
        (
            "max_steps_per_run",
            "100001",
            "The maximum steps per run must be from 1 to 100,000.",
        ),
        (
            "max_steps_per_run",
            "2.5",
            "Enter the maximum steps per run as a whole number from 1 to 100,000.",
        ),
        ("max_steps_per_run", "", "Enter the maximum steps per run, from 1 to 100,000."),
        ("max_attempts_per_step", "0", "The maximum attempts per step must be from 1 to 100."),
        (
            "max_attempts_per_step",
            "-1",
            "The maximum attempts per step can’t be negative: enter a number from 1 to 100.",
        ),
        (
            "requests_per_minute",
            "0",
            "The requests per minute must be from 1 to 100,000; leave it blank for no limit.",
        ),
        (
            "tokens_per_minute",
            "100000001",
            "The tokens per minute must be from 1 to 100,000,000; leave it blank for no limit.",
        ),
        ("tokens_per_minute", "9" * 5000, "The tokens per minute must be from 1 to 100,000,000"),
        (
            "max_concurrent_runs",
            "10001",
            "The number of runs at once in the workspace must be from 1 to 10,000; leave it "
            "blank for no limit.",
        ),
        (
            "max_concurrent_runs_per_workflow",
            "-3",
            "The number of runs at once per workflow can’t be negative: enter a number from 1 "
            "to 10,000.",
        ),
        (
            "max_concurrent_runs_per_workflow",
            "many",
            "Enter the number of runs at once per workflow as a whole number from 1 to 10,000, "
            "or leave it blank for no limit.",
        ),
    ],
)
def test_each_bad_value_gets_a_plain_message_and_nothing_is_saved(owner, field, value, message):
    # A good change beside the bad one is not saved either.
    other = "monthly_cap_usd" if field != "monthly_cap_usd" else "daily_cap_usd"
    response = save(owner, **{field: value, other: "99"})

    assert response.status_code == 400
    assert message in text(response)
    assert "Nothing was saved" in text(response)
    assert not WorkspaceLimits.objects.exists()
    assert not LimitsChange.objects.exists()


def test_a_stale_form_does_not_undo_someone_elses_change(owner, acme, client):
    page = owner.get(limits_url())
    revision = re.search(r'name="revision" value="(\d*)"', page.content.decode()).group(1)
    erin = make_member("erin", acme, Role.ADMIN)
    from django.test import Client

    other = Client()
    other.force_login(erin)
    assert other.post(limits_url(), {**VALID, "daily_cap_usd": "50"}).status_code == 302

    response = owner.post(limits_url(), {**VALID, "max_steps_per_run": "10", "revision": revision})

    assert response.status_code == 400
    assert "erin changed these limits while you were editing them" in text(response)
    assert WorkspaceLimits.objects.get(workspace=acme).daily_cap_usd == 50  # not undone
    assert LimitsChange.objects.count() == 1
    # The form now knows that change: saving again applies this one.
    again = re.search(r'name="revision" value="(\d*)"', response.content.decode()).group(1)
    form = {**VALID, "daily_cap_usd": "50", "max_steps_per_run": "10", "revision": again}
    assert owner.post(limits_url(), form).status_code == 302
    assert WorkspaceLimits.objects.get(workspace=acme).max_steps_per_run == 10


# --- a workflow's own budget ---------------------------------------------------------------


def test_a_workflow_gets_its_own_budget_with_history(owner, acme, alice):
    workflow = publish(acme, chain(1), name="Nightly report")
    url = limits_url("workflow-limits", workflow.id)

    assert owner.post(url, {"run_cap_usd": "0.75"}).status_code == 302
    assert owner.post(url, {"run_cap_usd": "0.750"}).status_code == 302  # no change
    assert owner.post(url, {"run_cap_usd": ""}).status_code == 302  # back to the workspace's

    assert WorkflowLimits.objects.get(workflow=workflow).run_cap_usd is None
    changes = list(LimitsChange.objects.order_by("id"))
    assert [(c.workflow, c.actor, c.changes) for c in changes] == [
        (workflow, alice, {"run_cap_usd": ["the workspace’s budget", "$0.75"]}),
        (workflow, alice, {"run_cap_usd": ["$0.75", "the workspace’s budget"]}),
    ]
    shown = text(owner.get(limits_url()))
    assert "Nightly report: budget per run: $0.75 → the workspace’s budget" in shown


def test_clearing_a_budget_a_workflow_never_had_writes_nothing(owner, acme):
    workflow = publish(acme, chain(1))
    response = owner.post(limits_url("workflow-limits", workflow.id), {"run_cap_usd": ""})
    assert response.status_code == 302
    assert not WorkflowLimits.objects.exists() and not LimitsChange.objects.exists()


def test_a_bad_workflow_budget_is_refused_in_its_row(owner, acme):
    workflow = publish(acme, chain(1), name="Nightly report")
    response = owner.post(limits_url("workflow-limits", workflow.id), {"run_cap_usd": "-1"})
    assert response.status_code == 400
    assert "The workflow’s budget per run can’t be negative." in text(response)
    assert not WorkflowLimits.objects.exists()


def test_another_workspaces_workflow_is_not_found(owner, globex):
    theirs = publish(globex, chain(1))
    response = owner.post(limits_url("workflow-limits", theirs.id), {"run_cap_usd": "1"})
    assert response.status_code == 404


# --- the kill switch -----------------------------------------------------------------------


def test_stopping_needs_a_reason_and_a_confirmation(owner, acme):
    response = owner.post(limits_url("kill-switch-stop"), {"reason": "  ", "confirm": ""})
    shown = text(response)
    assert response.status_code == 400
    assert "Say why you are stopping everything" in shown
    assert "Tick the box to confirm" in shown
    assert not WorkspaceLimits.objects.filter(stopped_at__isnull=False).exists()


def test_stop_everything_pauses_runs_and_shows_a_banner_everywhere(client, alice, acme):
    run = start_run(publish(acme, chain(2)), {})
    client.force_login(alice)  # an owner

    response = client.post(
        limits_url("kill-switch-stop"), {"reason": "A loop is burning tokens", "confirm": "on"}
    )

    assert response.status_code == 302
    limits = WorkspaceLimits.objects.get(workspace=acme)
    assert (limits.stopped, limits.stopped_by, limits.stop_reason) == (
        True,
        "alice",
        "A loop is burning tokens",
    )
    assert RunSummary.objects.get(run=run).status == "paused"
    page = text(client.get(limits_url()))
    assert "Stopped everything: paused 1 run." in page
    assert "Everything is stopped" in page and "A loop is burning tokens" in page
    assert "Allow runs again" in page
    runs_page = client.get(reverse("runs", args=["acme"])).content.decode()
    assert 'id="kill-switch-banner"' in runs_page and "A loop is burning tokens" in runs_page
    history = LimitsChange.objects.get()
    assert history.actor == alice and "Kill switch" in history.changes


def test_allow_again_then_resume_the_runs_it_paused(client, alice, acme):
    run = start_run(publish(acme, chain(2)), {})
    client.force_login(alice)
    client.post(limits_url("kill-switch-stop"), {"reason": "Checking", "confirm": "on"})

    assert client.post(limits_url("kill-switch-allow")).status_code == 302
    assert not WorkspaceLimits.objects.get(workspace=acme).stopped
    page = client.get(limits_url())
    assert "Runs are allowed again" in text(page)
    assert (
        'id="kill-switch-banner"' not in client.get(reverse("runs", args=["acme"])).content.decode()
    )
    assert RunSummary.objects.get(run=run).status == "paused"  # until resumed
    assert "1 run is paused" in text(page)

    assert client.post(limits_url("kill-switch-resume")).status_code == 302
    assert RunSummary.objects.get(run=run).status != "paused"
    assert "Resumed 1 run the kill switch paused." in text(client.get(limits_url()))


def test_resume_while_stopped_allows_runs_again_first(client, alice, acme):
    run = start_run(publish(acme, chain(2)), {})
    client.force_login(alice)
    client.post(limits_url("kill-switch-stop"), {"reason": "Checking", "confirm": "on"})

    client.post(limits_url("kill-switch-resume"))

    assert not WorkspaceLimits.objects.get(workspace=acme).stopped
    assert RunSummary.objects.get(run=run).status != "paused"
    assert "Runs are allowed again. Resumed 1 run" in text(client.get(limits_url()))


def test_a_viewer_sees_the_switch_is_thrown_but_cannot_undo_it(client, carol, acme):
    WorkspaceLimits.objects.create(
        workspace=acme, stopped_at=timezone.now(), stopped_by="dave", stop_reason="Loop"
    )
    client.force_login(carol)
    page = client.get(limits_url())
    assert "Everything is stopped" in text(page) and "Allow runs again" not in text(page)
    assert client.post(limits_url("kill-switch-allow")).status_code == 403
    assert client.post(limits_url("kill-switch-resume")).status_code == 403
    assert WorkspaceLimits.objects.get(workspace=acme).stopped


# --- usage ---------------------------------------------------------------------------------


def test_usage_shows_today_and_this_month_against_the_caps(client, carol, acme):
    today = usage.utc_today(timezone.now())
    WorkspaceLimits.objects.create(workspace=acme, daily_cap_usd=D(10), monthly_cap_usd=D(200))
    for scope, key, spent in [
        ("day", usage.day_key(today), "8.5"),
        ("day", usage.day_key(today - timedelta(days=3)), "1.25"),
        ("month", usage.month_key(today), "42"),
    ]:
        SpendLedger.objects.create(workspace=acme, scope=scope, key=key, spent_usd=D(spent))
    workflow = publish(acme, chain(1), name="Nightly report")
    run = start_run(workflow, {})
    RunSummary.objects.filter(run=run).update(cost_usd=D("3.5"), started_at=timezone.now())
    client.force_login(carol)  # viewers may look

    response = client.get(limits_url("usage"))

    shown = text(response)
    html = response.content.decode()
    assert response.status_code == 200
    assert "Today $8.50 of $10.00 daily cap" in shown and "85% used" in shown
    assert "This month $42.00 of $200.00 monthly cap" in shown and "21% used" in shown
    assert html.count('class="chart-day') == 30
    assert f'data-day="{today:%Y-%m-%d}" data-spent="8.500000"' in html
    assert "Nightly report 1 $3.50" in shown
    assert reverse("run-detail", args=["acme", run.id]) in html
    assert "Nothing spent" not in shown


def test_usage_has_an_empty_state(owner):
    shown = text(owner.get(limits_url("usage")))
    assert "Nothing spent in the last 30 days" in shown
    assert "Today $0 No daily cap." in shown


# --- estimates on run pages ----------------------------------------------------------------


def test_the_start_form_and_the_run_page_show_estimates(owner, acme):
    workflow = publish(acme, chain(2, kind="llm", config=LLM, retry={"maximum_attempts": 3}))

    form = text(owner.get(reverse("workflow-run", args=["acme", workflow.id])))
    assert (
        "Typical $0.000414, worst case $0.003943, from the prompts and answer limits of 2 LLM "
        "steps." in form
    )

    run = start_run(workflow, {})
    page = text(owner.get(reverse("run-detail", args=["acme", run.id])))
    assert "Estimated total $0.000414 · at most $0.003943" in page


def test_the_pages_cost_a_fixed_number_of_queries(owner, acme):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def count(url: str) -> int:
        with CaptureQueriesContext(connection) as queries:
            assert owner.get(url).status_code == 200
        return len(queries)

    owner.get(limits_url())  # warm the session
    few = (count(limits_url()), count(limits_url("usage")))
    for n in range(8):
        workflow = publish(acme, chain(1), name=f"Workflow {n}")
        owner.post(limits_url("workflow-limits", workflow.id), {"run_cap_usd": str(n + 1)})
        save(owner, daily_cap_usd=str(n + 1))
        run = start_run(workflow, {})
        RunSummary.objects.filter(run=run).update(cost_usd=D(n + 1), started_at=timezone.now())
    many = (count(limits_url()), count(limits_url("usage")))
    assert many == few
