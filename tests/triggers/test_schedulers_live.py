"""Two real `manage.py scheduler` processes and a schedule that fires every second: one run
per second, and no fire time started by both schedulers."""

import os
import re
from collections import Counter
from datetime import datetime

from tests.support.live import wait_for
from vectorbea.eventlog.models import Run
from vectorbea.triggers import schedules
from vectorbea.triggers.models import Schedule

STARTED = re.compile(r"Schedule (?P<schedule>\S+) started run (?P<run>\S+) for (?P<at>\S+)")


def test_two_scheduler_processes_fire_a_per_second_schedule_once_per_tick(live, workflow):
    schedule = schedules.save_schedule(
        Schedule(workflow=workflow, cron="* * * * * *", input={"ticket": "heartbeat"})
    )
    prefix = f"schedule:{schedule.id}:"
    live.env["VECTORBEA_SCHEDULE_MIN_INTERVAL_SECONDS"] = "1"  # once a second is allowed here
    first, second = live.scheduler(), live.scheduler()

    wait_for(lambda: Run.objects.filter(idempotency_key__startswith=prefix).count() >= 5, 60)
    live.kill(first)
    live.kill(second)

    keys = list(
        Run.objects.filter(idempotency_key__startswith=prefix).values_list(
            "idempotency_key", flat=True
        )
    )
    times = sorted(datetime.fromisoformat(key.removeprefix(prefix)) for key in keys)
    assert len(times) == len(set(times)) >= 5
    assert all(t.microsecond == 0 for t in times)
    # Each fire time was started by exactly one of the two schedulers (a second start of
    # the same time would log the same run again).
    logs = [live.logs / f"scheduler-{os.getpid()}-{n}.log" for n in range(len(live.procs))]
    started = Counter(
        match["at"]
        for log in logs
        for match in STARTED.finditer(log.read_text())
        if match["schedule"] == str(schedule.id)
    )
    assert set(started) == {t.isoformat() for t in times}
    assert set(started.values()) == {1}, started
