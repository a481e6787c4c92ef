"""Cron schedules: saving them, and firing the due ones from the scheduler's tick.

A schedule fires at the times its cron expression names in its time zone (croniter's
syntax: five fields, or six with seconds last, e.g. `0 9 * * 1-5` or `0 9 * * 1-5 30`), and
at most once per VECTORBEA_SCHEDULE_MIN_INTERVAL_SECONDS (a minute unless the installation
says otherwise): `check_cron` is the one rule, for the form and for every firing.

Firing (`fire_due_schedules`, called by every scheduler's tick):

- each due schedule is claimed in a transaction of its own with FOR UPDATE SKIP LOCKED, by
  the database's clock, so several schedulers never fire one schedule twice;
- the run is started with the idempotency key `schedule:<id>:<fire time>` in that same
  transaction, and the schedule moves to its next time;
- missed times are not made up: a schedule that was due several times while no scheduler
  ran fires once, for the most recent of them, then continues with the next time after now;
- a run that may not start (kill switch, nothing published, input the workflow no longer
  accepts, archived workflow) is recorded in `last_error` and the schedule moves on.
"""

import logging
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, CroniterError, CroniterNotAlphaError, croniter
from django.conf import settings
from django.db import transaction
from django.db.models.functions import Now

from vectorbea.eventlog.store import db_now
from vectorbea.runs.commands import (
    CannotStart,
    InputProblem,
    InvalidRunInput,
    input_problems,
    start_run,
)
from vectorbea.runs.initiators import Initiator
from vectorbea.triggers.models import Schedule
from vectorbea.workflows.models import Workflow

log = logging.getLogger(__name__)

TICK = timedelta(microseconds=1)


class BadSchedule(ValueError):
    """A cron expression or time zone that cannot be used, said plainly."""


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise BadSchedule(
            f"“{name}” is not a time zone we know. Use a name from the tz database, such as "
            "UTC, Europe/Paris or America/New_York."
        ) from None


def check_cron(expression: str) -> None:
    """Raise BadSchedule unless `expression` is a cron expression of 5 or 6 fields that
    fires at all, and never twice within the installation's
    VECTORBEA_SCHEDULE_MIN_INTERVAL_SECONDS."""
    fields = expression.split()
    if len(fields) not in (5, 6):
        raise BadSchedule(
            "A schedule has 5 fields (minute hour day month weekday) or 6 (with seconds "
            f"last); “{expression}” has {len(fields)}."
        )
    try:
        croniter(expression, datetime.now(UTC)).get_next(datetime)
    except CroniterBadDateError:
        raise BadSchedule(f"“{expression}” never fires: no date matches it.") from None
    except (CroniterError, ValueError, KeyError) as exc:
        reason = _reason(expression, exc)
        raise BadSchedule(f"“{expression}” is not a cron expression: {reason}.") from None
    minimum = settings.VECTORBEA_SCHEDULE_MIN_INTERVAL_SECONDS
    gap = gap_under(expression, minimum)
    if gap is not None:
        raise BadSchedule(
            f"Runs may be at most {once_every(minimum)} on this installation, and "
            f"“{expression}” starts them {_duration(gap)} apart."
        )


def _duration(seconds: int) -> str:
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} second{'s' if seconds != 1 else ''}"


def once_every(seconds: int) -> str:
    """A rate in words: "once a minute", "once every 5 minutes", "once every 90 seconds"."""
    single = {1: "once a second", 60: "once a minute", 3600: "once an hour", 86400: "once a day"}
    return single.get(seconds) or f"once every {_duration(seconds)}"


def _field_values(field: list[Any], low: int, high: int) -> list[int]:
    return list(range(low, high + 1)) if field == ["*"] else sorted({int(v) for v in field})


def gap_under(expression: str, minimum: int) -> int | None:
    """The shortest time in seconds between two fire times of `expression` (a valid 5- or
    6-field cron expression), if it is under `minimum`; else None. Read by the wall clock
    of the schedule's zone: a daylight-saving change is not counted.

    The times of day are the product of the hour, minute and second fields, so the
    shortest gap within a day is between two neighbours of that sorted set; the only other
    gap is from the last time of one day to the first of the next, which counts when two
    consecutive days both match."""
    expanded = croniter(expression).expanded
    minutes, hours = expanded[0], expanded[1]
    seconds = _field_values(expanded[5], 0, 59) if len(expanded) > 5 else [0]
    times = sorted(
        h * 3600 + m * 60 + s
        for h in _field_values(hours, 0, 23)
        for m in _field_values(minutes, 0, 59)
        for s in seconds
    )
    within = min((b - a for a, b in pairwise(times)), default=None)
    if within is not None and within < minimum:
        return within
    overnight = 86400 - times[-1] + times[0]
    if overnight < minimum and _two_days_in_a_row(expression):
        return overnight
    return None


def _two_days_in_a_row(expression: str) -> bool:
    """Whether two consecutive days match the day-of-month, month and weekday fields. Any
    month has consecutive days; otherwise the first 400 matching days from 2001 are looked
    at (years of any weekday pattern), so a pair that comes only once in many years, such as
    Feb 29 and Mar 1, may go unseen: one night in years with a shorter gap."""
    _, _, day, month, weekday, *_ = expression.split()
    if day == weekday == "*":
        return True
    it = croniter(f"0 0 {day} {month} {weekday}", datetime(2001, 1, 1))
    previous = it.get_next(datetime)
    for _ in range(400):
        current = it.get_next(datetime)
        if (current - previous).days == 1:
            return True
        previous = current
    return False


def _reason(expression: str, exc: Exception) -> str:
    text = str(exc)
    if "out of range" in text or "out of bands" in text:
        return (
            "a value is out of range (minute 0-59, hour 0-23, day 1-31, month 1-12, "
            "day of week 0-7, second 0-59)"
        )
    if "hash_id" in text:
        return "H (hashed) values are not supported; write the minute or hour itself"
    if isinstance(exc, CroniterNotAlphaError):
        return "a field has a word cron does not know (use numbers, or names like mon or jan)"
    return text.replace(f"[{expression}] ", "").rstrip(".") or "croniter cannot read it"


def fire_times(cron: str, timezone: str, after: datetime, count: int) -> list[datetime]:
    """The next `count` times after `after`, in the schedule's time zone."""
    it = croniter(cron, after.astimezone(zone(timezone)))
    return [it.get_next(datetime) for _ in range(count)]


def preview(cron: str, timezone: str, now: datetime, count: int = 5) -> tuple[list[datetime], str]:
    """What the form says of a cron expression as it is typed: its next `count` times in
    the zone, or why it is refused ("" and no times: nothing typed yet)."""
    cron = " ".join(cron.split())
    if not cron:
        return [], ""
    try:
        check_cron(cron)
        return fire_times(cron, timezone.strip() or "UTC", now, count), ""
    except BadSchedule as exc:
        return [], str(exc)


def next_fire_after(cron: str, timezone: str, after: datetime) -> datetime:
    return fire_times(cron, timezone, after, 1)[0].astimezone(UTC)


def latest_fire_at_or_before(cron: str, timezone: str, moment: datetime) -> datetime:
    it = croniter(cron, (moment + TICK).astimezone(zone(timezone)))
    return it.get_prev(datetime).astimezone(UTC)


def input_schema_of(workflow: Workflow) -> dict[str, Any]:
    version = workflow.latest_version()
    return (version.definition.get("input_schema") if version else None) or {"type": "object"}


def schedule_input_problems(workflow: Workflow, data: Any) -> list[InputProblem]:
    return input_problems(input_schema_of(workflow), data)


# --- writes -------------------------------------------------------------------------------


def save_schedule(schedule: Schedule) -> Schedule:
    """Save a new or edited schedule (its fields already checked), timed from now."""
    schedule.next_fire_at = (
        next_fire_after(schedule.cron, schedule.timezone, db_now()) if schedule.enabled else None
    )
    schedule.last_error = ""
    if schedule._state.adding:
        schedule.save(force_insert=True)
    else:
        schedule.save(
            update_fields=["cron", "timezone", "input", "enabled", "next_fire_at", "last_error"]
        )
    return schedule


def set_enabled(schedule: Schedule, enabled: bool) -> None:
    """Turn a schedule on (from its next time after now: nothing missed is made up) or off.
    Raises BadSchedule, and changes nothing, to turn on one the form would refuse now."""
    if enabled:
        check_cron(schedule.cron)
    next_at = next_fire_after(schedule.cron, schedule.timezone, db_now()) if enabled else None
    Schedule.objects.filter(pk=schedule.pk).update(
        enabled=enabled, next_fire_at=next_at, last_error=""
    )


# --- firing -------------------------------------------------------------------------------


def fire_due_schedules(limit: int = 100) -> int:
    """Fire up to `limit` due schedules, one transaction each. Returns how many were handled
    (fired, or recorded why they could not). Never raises for a run that cannot start."""
    handled = 0
    while handled < limit:
        with transaction.atomic():
            schedule = (
                Schedule.objects.select_for_update(skip_locked=True, of=("self",))
                .select_related("workflow", "created_by")
                .filter(enabled=True, next_fire_at__lte=Now())
                .order_by("next_fire_at")
                .first()
            )
            if schedule is None:
                break
            _fire(schedule, db_now())
        handled += 1
    return handled


def _fire(schedule: Schedule, now: datetime) -> None:
    try:
        check_cron(schedule.cron)  # e.g. saved while the minimum was lower: turned off
        fire_at = max(
            schedule.next_fire_at, latest_fire_at_or_before(schedule.cron, schedule.timezone, now)
        )
        next_at = next_fire_after(schedule.cron, schedule.timezone, now)
    except (CroniterError, BadSchedule, ValueError) as exc:  # one the form would refuse
        Schedule.objects.filter(pk=schedule.pk).update(
            enabled=False, next_fire_at=None, last_error=f"Turned off: {exc}"[:1000]
        )
        return
    run, error = _start(schedule, fire_at)
    Schedule.objects.filter(pk=schedule.pk).update(
        next_fire_at=next_at,
        last_fired_at=fire_at,
        last_error=error[:1000],
        **({"last_run": run} if run is not None else {}),
    )


def _start(schedule: Schedule, fire_at: datetime) -> tuple[Any, str]:
    """(the run, "") or (None, why it did not start)."""
    when = fire_at.isoformat()
    workflow = schedule.workflow
    try:
        with transaction.atomic():  # a savepoint: a failed start leaves the schedule writable
            run = start_run(
                workflow,
                schedule.input,
                started_by=Initiator(schedule.created_by, via=f"schedule:{schedule.id}"),
                idempotency_key=f"schedule:{schedule.id}:{when}",
            )
    except InvalidRunInput as exc:
        return None, f"Not started at {when}: the input does not match the workflow's: {exc}"
    except CannotStart as exc:
        return None, f"Not started at {when}: {exc}"
    except Exception:
        log.exception("Schedule %s could not start a run at %s", schedule.id, when)
        return None, f"Not started at {when}: an unexpected error (see the scheduler's log)."
    log.info("Schedule %s started run %s for %s", schedule.id, run.id, when)
    return run, ""
