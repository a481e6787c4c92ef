"""What a schedule's cron expression may be: 5 fields, or 6 with seconds last, and no two
runs closer than the installation's minimum (a minute unless VECTORBEA_SCHEDULE_MIN_INTERVAL_SECONDS
says otherwise). The form says the next runs as the expression is typed, and refuses the
rest in plain words; a stored schedule that breaks the rule is turned off when it is due."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.utils.html import escape

from tests.triggers.test_schedules import make_due, make_schedule, runs_of
from tests.triggers.test_views import schedule_post, url
from vectorbea.triggers import schedules
from vectorbea.triggers.models import Schedule

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
EVERY_SECOND = (
    "Runs may be at most once a minute on this installation, and “* * * * * *” starts them "
    "1 second apart."
)
SEVEN_FIELDS = (
    "A schedule has 5 fields (minute hour day month weekday) or 6 (with seconds last); "
    "“* * * * * * *” has 7."
)


@pytest.mark.parametrize(
    ("cron", "message"),
    [
        ("* * * * * *", EVERY_SECOND),
        ("* * * * * * *", SEVEN_FIELDS),
        (
            "0 0 9 * * 1-5 2030",
            "A schedule has 5 fields (minute hour day month weekday) or 6 (with seconds "
            "last); “0 0 9 * * 1-5 2030” has 7.",
        ),
        (
            "0 9 * * * 0,30",
            "Runs may be at most once a minute on this installation, and “0 9 * * * 0,30” "
            "starts them 30 seconds apart.",
        ),
        (
            "@hourly",
            "A schedule has 5 fields (minute hour day month weekday) or 6 (with seconds "
            "last); “@hourly” has 1.",
        ),
    ],
)
def test_too_frequent_or_wrongly_sized_expressions_are_refused_in_plain_words(cron, message):
    with pytest.raises(schedules.BadSchedule) as caught:
        schedules.check_cron(cron)

    assert str(caught.value) == message


@pytest.mark.parametrize("cron", ["* * * * *", "*/15 9-17 * * 1-5", "0 9 * * 1-5 30", "0 9 L * *"])
def test_once_a_minute_or_less_often_is_accepted(cron):
    schedules.check_cron(cron)


def test_the_gap_over_midnight_counts_when_two_days_in_a_row_match(settings):
    settings.VECTORBEA_SCHEDULE_MIN_INTERVAL_SECONDS = 7200

    with pytest.raises(schedules.BadSchedule, match="starts them 1 hour apart"):
        schedules.check_cron("0 0,12,23 * * *")  # 23:00, then 00:00 the next day
    schedules.check_cron("0 0,12,23 * * 1")  # Mondays only: 23:00 is a week before 00:00
    with pytest.raises(schedules.BadSchedule, match="starts them 1 hour apart"):
        schedules.check_cron("0 0,12,23 * * 1,2")


def test_the_minimum_is_an_installation_setting(settings):
    settings.VECTORBEA_SCHEDULE_MIN_INTERVAL_SECONDS = 1
    schedules.check_cron("* * * * * *")

    settings.VECTORBEA_SCHEDULE_MIN_INTERVAL_SECONDS = 3600
    with pytest.raises(schedules.BadSchedule) as caught:
        schedules.check_cron("*/15 * * * *")
    assert str(caught.value) == (
        "Runs may be at most once an hour on this installation, and “*/15 * * * *” starts "
        "them 15 minutes apart."
    )
    schedules.check_cron("0 * * * *")


def minimum_in_a_child(value: str | None) -> subprocess.CompletedProcess:
    """What a fresh process reads for the setting, with the variable set to `value` (None:
    not set)."""
    env = {k: v for k, v in os.environ.items() if k != "VECTORBEA_SCHEDULE_MIN_INTERVAL_SECONDS"}
    if value is not None:
        env["VECTORBEA_SCHEDULE_MIN_INTERVAL_SECONDS"] = value
    code = (
        "import django; django.setup(); from django.conf import settings; "
        "print(settings.VECTORBEA_SCHEDULE_MIN_INTERVAL_SECONDS)"
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_setting_is_read_from_the_environment_and_defaults_to_a_minute():
    assert minimum_in_a_child(None).stdout.strip() == "60"
    assert minimum_in_a_child("300").stdout.strip() == "300"
    refused = minimum_in_a_child("0")
    assert refused.returncode != 0
    assert "VECTORBEA_SCHEDULE_MIN_INTERVAL_SECONDS must be at least 1." in refused.stderr


# --- the form -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cron", "message"), [("* * * * * *", EVERY_SECOND), ("* * * * * * *", SEVEN_FIELDS)]
)
def test_the_form_refuses_them_and_saves_nothing(client, alice, workflow, cron, message):
    client.force_login(alice)

    response = client.post(url("schedule-create", workflow), schedule_post(cron=cron))

    assert response.status_code == 400
    assert response.context["schedule_form"].errors["cron"] == [message]
    assert escape(message) in response.content.decode()
    assert not Schedule.objects.exists()


def next_times(html: str) -> list[str]:
    preview = html[html.index('id="schedule-preview"') :]
    preview = preview[: preview.index("</div>")]
    return re.findall(r"<li><time[^>]*>([^<]+)</time></li>", preview)


def test_the_form_says_when_the_expression_would_run_as_it_is_typed(client, alice, workflow):
    client.force_login(alice)
    preview = url("schedule-preview", workflow)

    shown = client.get(preview, {"cron": "0 9 * * 1-5", "timezone": "Europe/Paris"})

    assert shown.status_code == 200
    times = re.findall(r"<li><time[^>]*>([^<]+)</time></li>", shown.content.decode())
    assert len(times) == 5
    assert all(re.search(r"· 09:00:00 CES?T$", when) for when in times), times
    assert not any(when.startswith(("Sat", "Sun")) for when in times)
    refused = client.get(preview, {"cron": "* * * * * *", "timezone": "UTC"}).content.decode()
    assert escape(EVERY_SECOND) in refused
    assert "<time" not in refused
    empty = client.get(preview, {"cron": "  ", "timezone": "UTC"}).content.decode()
    assert "Type a cron expression to see when it would run." in empty


def test_the_add_and_edit_forms_show_the_next_runs(client, alice, workflow):
    client.force_login(alice)
    page = client.get(url("workflow-triggers", workflow)).content.decode()
    assert 'hx-get="' + url("schedule-preview", workflow) + '"' in page
    assert "Runs may be at most once a minute here." in page

    refused = client.post(url("schedule-create", workflow), schedule_post(cron="0 9 * * 1-5 2030"))
    assert next_times(refused.content.decode()) == []
    assert "It would not run: see what is wrong above." in refused.content.decode()

    schedule = make_schedule(workflow, cron="30 6 * * *", tz="Asia/Tokyo")
    edit = client.get(url("schedule-edit", workflow, schedule_id=schedule.id)).content.decode()
    times = next_times(edit)
    assert len(times) == 5
    assert all(when.endswith("06:30:00 JST") for when in times), times


def test_only_people_who_manage_triggers_get_the_preview(client, carol, bob, workflow):
    params = {"cron": "0 9 * * *", "timezone": "UTC"}
    client.force_login(carol)  # a viewer
    assert client.get(url("schedule-preview", workflow), params).status_code == 403
    client.force_login(bob)  # not in Acme
    assert client.get(url("schedule-preview", workflow), params).status_code == 404


# --- stored schedules -----------------------------------------------------------------------


def test_a_stored_per_second_schedule_is_turned_off_when_it_is_due(workflow):
    schedule = make_schedule(workflow, cron="* * * * * *")  # saved outside the form
    make_due(schedule)

    assert schedules.fire_due_schedules() == 1

    schedule.refresh_from_db()
    assert (schedule.enabled, schedule.next_fire_at) == (False, None)
    assert schedule.last_error == f"Turned off: {EVERY_SECOND}"
    assert runs_of(schedule) == []


def test_turning_on_a_schedule_the_form_would_refuse_is_refused(client, alice, workflow):
    schedule = make_schedule(workflow, cron="* * * * * *", enabled=False)
    client.force_login(alice)

    response = client.post(
        url("schedule-toggle", workflow, schedule_id=schedule.id), {"enabled": "1"}, follow=True
    )

    assert escape(f"The schedule stays off: {EVERY_SECOND} Edit it to turn it on.") in (
        response.content.decode()
    )
    schedule.refresh_from_db()
    assert (schedule.enabled, schedule.next_fire_at) == (False, None)
