"""Cron schedules: firing due ones once per time (also with two schedulers at once),
skipping missed times instead of bursting, recording why a run could not start, and
plain-language validation."""

import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.utils import timezone

from tests.support.workflows import chain, publish
from tests.triggers.conftest import TICKET_SCHEMA
from vectorbea.budgets import killswitch
from vectorbea.eventlog import store
from vectorbea.eventlog.models import Run
from vectorbea.triggers import schedules
from vectorbea.triggers.models import Schedule
from vectorbea.workflows.models import WorkflowVersion, content_hash
from workers import sweeper

pytestmark = pytest.mark.django_db

TICKET = {"ticket": "Weekly report"}


def make_schedule(workflow, cron="*/5 * * * *", tz="UTC", run_input=None, **fields) -> Schedule:
    schedule = schedules.save_schedule(
        Schedule(
            workflow=workflow, cron=cron, timezone=tz, input=run_input or dict(TICKET), **fields
        )
    )
    return schedule


def make_due(schedule: Schedule, ago: timedelta = timedelta(0)) -> datetime:
    """Set the schedule's next time to its latest cron time (minus `ago`): due now."""
    due = schedules.latest_fire_at_or_before(schedule.cron, schedule.timezone, store.db_now() - ago)
    Schedule.objects.filter(pk=schedule.pk).update(next_fire_at=due)
    return due


def runs_of(schedule: Schedule) -> list[Run]:
    return list(
        Run.objects.filter(idempotency_key__startswith=f"schedule:{schedule.id}:").order_by(
            "created_at"
        )
    )


def test_saving_a_schedule_times_it_from_now_in_its_time_zone(workflow):
    schedule = make_schedule(workflow, cron="0 9 * * *", tz="Asia/Tokyo")

    local = schedule.next_fire_at.astimezone(schedules.zone("Asia/Tokyo"))
    assert (local.hour, local.minute, local.second) == (9, 0, 0)
    assert timezone.now() < schedule.next_fire_at <= timezone.now() + timedelta(days=1)


def test_a_due_schedule_fires_once_and_moves_to_its_next_time(workflow):
    schedule = make_schedule(workflow)
    due = make_due(schedule)

    assert schedules.fire_due_schedules() == 1
    assert schedules.fire_due_schedules() == 0  # not due again until its next time

    [run] = runs_of(schedule)
    assert run.idempotency_key == f"schedule:{schedule.id}:{due.isoformat()}"
    assert store.load(run.id).state.input == TICKET
    schedule.refresh_from_db()
    assert schedule.last_fired_at == due
    assert schedule.last_run_id == run.id
    assert schedule.last_error == ""
    assert schedule.next_fire_at == due + timedelta(minutes=5)


def test_a_schedule_not_yet_due_or_turned_off_does_not_fire(workflow):
    make_schedule(workflow)  # its next time is in the future
    off = make_schedule(workflow)
    make_due(off)
    schedules.set_enabled(off, False)

    assert schedules.fire_due_schedules() == 0
    assert Run.objects.count() == 0


def test_missed_times_fire_once_for_the_latest_not_as_a_burst(workflow):
    schedule = make_schedule(workflow, cron="*/5 * * * *")
    make_due(schedule, ago=timedelta(hours=3))  # 36 times missed while no scheduler ran
    latest = schedules.latest_fire_at_or_before(schedule.cron, "UTC", store.db_now())

    assert schedules.fire_due_schedules() == 1
    assert schedules.fire_due_schedules() == 0

    [run] = runs_of(schedule)
    assert run.idempotency_key.endswith(latest.isoformat())
    schedule.refresh_from_db()
    assert schedule.last_fired_at == latest
    assert schedule.next_fire_at == latest + timedelta(minutes=5)
    assert schedule.next_fire_at > timezone.now()


def test_turning_a_schedule_back_on_does_not_make_up_missed_times(workflow):
    schedule = make_schedule(workflow)
    schedules.set_enabled(schedule, False)
    Schedule.objects.filter(pk=schedule.pk).update(next_fire_at=timezone.now() - timedelta(days=1))

    schedules.set_enabled(schedule, True)

    schedule.refresh_from_db()
    assert schedule.next_fire_at > timezone.now()
    assert schedules.fire_due_schedules() == 0


def test_the_scheduler_tick_fires_due_schedules(workflow):
    schedule = make_schedule(workflow)
    make_due(schedule)

    sweeper.tick()

    assert len(runs_of(schedule)) == 1


def test_a_thrown_kill_switch_is_recorded_and_the_schedule_moves_on(workflow, acme):
    schedule = make_schedule(workflow)
    due = make_due(schedule)
    killswitch.stop_everything(acme.id, actor="alice", reason="audit")

    assert schedules.fire_due_schedules() == 1  # handled, not raised

    schedule.refresh_from_db()
    assert runs_of(schedule) == []
    assert schedule.last_error.startswith(f"Not started at {due.isoformat()}: Runs are stopped")
    assert schedule.next_fire_at == due + timedelta(minutes=5)
    assert schedule.enabled


def test_input_the_workflow_no_longer_accepts_is_recorded(workflow):
    schedule = make_schedule(workflow)
    make_due(schedule)
    stricter = {
        **chain(1),
        "input_schema": {**TICKET_SCHEMA, "required": ["ticket", "customer"]},
    }
    WorkflowVersion.objects.create(
        workflow=workflow, number=2, definition=stricter, content_hash=content_hash(stricter)
    )

    schedules.fire_due_schedules()

    schedule.refresh_from_db()
    assert runs_of(schedule) == []
    assert "the input does not match the workflow's" in schedule.last_error
    assert "'customer' is a required property" in schedule.last_error


def test_an_unpublished_or_archived_workflow_is_recorded(acme):
    from vectorbea.workflows.models import Workflow

    draft_only = Workflow.objects.create(workspace=acme, name="Draft only", draft={})
    archived = publish(acme, chain(1), name="Old")
    Workflow.objects.filter(pk=archived.pk).update(archived_at=timezone.now())
    first = make_schedule(draft_only)
    second = make_schedule(archived)
    make_due(first)
    make_due(second)

    assert schedules.fire_due_schedules() == 2

    first.refresh_from_db()
    second.refresh_from_db()
    assert "has no published version" in first.last_error
    assert "is archived" in second.last_error
    assert Run.objects.count() == 0


def test_a_later_success_clears_the_error(workflow, acme):
    schedule = make_schedule(workflow)
    make_due(schedule)
    killswitch.stop_everything(acme.id, actor="alice", reason="audit")
    schedules.fire_due_schedules()
    killswitch.allow_again(acme.id, actor="alice")
    make_due(schedule)

    schedules.fire_due_schedules()

    schedule.refresh_from_db()
    assert schedule.last_error == ""
    assert len(runs_of(schedule)) == 1


def fire_at_once(schedulers: int) -> int:
    """Run fire_due_schedules in `schedulers` threads (each its own connection) released
    at the same moment; how many schedules they handled in all."""
    barrier = threading.Barrier(schedulers)
    counts: list[int] = []

    def fire() -> None:
        try:
            barrier.wait()
            counts.append(schedules.fire_due_schedules())
        finally:
            connection.close()

    threads = [threading.Thread(target=fire) for _ in range(schedulers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return sum(counts)


@pytest.mark.django_db(transaction=True)
def test_two_schedulers_fire_a_schedule_once_per_tick(workflow):
    """Against a schedule due now, two schedulers at once: exactly one of them handles it,
    every time, and each fire time has exactly one run."""
    # Every minute: a tick cannot come due again while the other scheduler is still
    # looking (with a per-second schedule, a slow machine makes that a legitimate tick).
    schedule = make_schedule(workflow, cron="* * * * *")
    handled, fire_times = [], set()
    for _ in range(6):
        fire_times.add(make_due(schedule))
        handled.append(fire_at_once(2))

    assert handled == [1] * 6
    keys = [run.idempotency_key for run in runs_of(schedule)]
    assert len(keys) == len(set(keys)) == len(fire_times)


# --- cron and time zones --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cron", "message"),
    [
        ("61 * * * *", "“61 * * * *” is not a cron expression: a value is out of range"),
        (
            "* * *",
            "A schedule has 5 fields (minute hour day month weekday) or 6 (with seconds "
            "last); “* * *” has 3.",
        ),
        ("0 9 * * mon-fry", "“0 9 * * mon-fry” is not a cron expression: a field has a word"),
        ("*/0 * * * *", "“*/0 * * * *” is not a cron expression: step '0' in field 0"),
        ("0 0 30 2 *", "“0 0 30 2 *” never fires: no date matches it."),
    ],
)
def test_a_bad_cron_expression_is_explained(cron, message):
    with pytest.raises(schedules.BadSchedule) as caught:
        schedules.check_cron(cron)

    assert str(caught.value).startswith(message)


def test_an_unknown_time_zone_is_explained():
    with pytest.raises(schedules.BadSchedule) as caught:
        schedules.zone("Mars/Olympus_Mons")

    assert str(caught.value) == (
        "“Mars/Olympus_Mons” is not a time zone we know. Use a name from the tz database, "
        "such as UTC, Europe/Paris or America/New_York."
    )


def test_fire_times_follow_daylight_saving_in_the_schedules_zone():
    before_dst = datetime(2026, 3, 27, 12, 0, tzinfo=UTC)  # Paris moves to CEST on the 29th

    times = schedules.fire_times("0 9 * * *", "Europe/Paris", before_dst, 3)

    assert [t.strftime("%d %H:%M %Z") for t in times] == [
        "28 09:00 CET",
        "29 09:00 CEST",
        "30 09:00 CEST",
    ]
    assert [t.astimezone(UTC).hour for t in times] == [8, 7, 7]


def test_a_sixth_field_is_seconds():
    start = datetime(2026, 1, 1, 0, 0, 0, tzinfo=UTC)

    times = schedules.fire_times("* * * * * */20", "UTC", start, 3)

    assert [t.second for t in times] == [20, 40, 0]
