"""Reading /metrics as Prometheus would, and the same figures counted from the event log."""

import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from django.db import connection
from prometheus_client.parser import text_string_to_metric_families

Labels = frozenset[tuple[str, str]]
STARTS = ("StepStarted", "StepWaiting", "ApprovalRequested")  # an attempt began


def scrape(client: Any, **headers: str) -> dict[str, dict[Labels, float]]:
    """GET /metrics and parse it: {sample name: {labels: value}}."""
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.content
    return parse(response.content.decode())


def parse(text: str) -> dict[str, dict[Labels, float]]:
    """Prometheus's text format, as {sample name: {labels: value}}."""
    samples: dict[str, dict[Labels, float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[frozenset(sample.labels.items())] = sample.value
    return samples


def by(samples: dict[str, dict[Labels, float]], name: str, *labels: str) -> Counter:
    """One metric's samples keyed by the values of `labels`, zeros left out."""
    found: Counter = Counter()
    for key, value in samples.get(name, {}).items():
        values = dict(key)
        found[tuple(values[label] for label in labels)] += value
    return +found


def delta(after: Counter, before: Counter) -> Counter:
    return +Counter({key: after[key] - before.get(key, 0) for key in after})


COUNTERS = (
    ("vectorbea_events_appended_total", ("type",)),
    ("vectorbea_steps_started_total", ("kind",)),
    ("vectorbea_steps_completed_total", ("kind",)),
    ("vectorbea_steps_failed_total", ("kind", "error_class")),
    ("vectorbea_budget_rejections_total", ("reason",)),
)


def counted(after: dict, before: dict | None = None) -> dict[str, Counter]:
    """The counters of a scrape (less those of an earlier one), as log_counts() has them."""
    return {
        name: delta(by(after, name, *labels), by(before or {}, name, *labels))
        for name, labels in COUNTERS
    }


def settled(read: Callable[[], dict], before: dict, expected: dict, timeout: float = 10) -> dict:
    """Scrape until the counters reach `expected` (a process counts an append right after
    its commit: the last hooks may still be running) or `timeout` passes; the last scrape."""
    deadline = time.monotonic() + timeout
    while True:
        after = read()
        if counted(after, before) == expected or time.monotonic() > deadline:
            return after
        time.sleep(0.1)


def log_counts(runs: list | None = None) -> dict[str, Counter]:
    """What the counters should say, counted from eventlog_event (of `runs`, or of all):
    events by type, steps by kind (from each run's pinned definition), failures by kind
    and class, limit rejections by reason."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT type, count(*) FROM eventlog_event e "
            "WHERE (%(runs)s::uuid[] IS NULL OR e.run_id = ANY(%(runs)s::uuid[])) GROUP BY type",
            {"runs": runs},
        )
        events = Counter({(t,): n for t, n in cursor.fetchall()})
        cursor.execute(
            "SELECT e.type, step->>'kind', coalesce(e.payload->>'error_class', ''), count(*) "
            "FROM eventlog_event e JOIN eventlog_run r ON r.id = e.run_id "
            "JOIN workflows_workflowversion v ON v.id = r.version_id "
            "CROSS JOIN LATERAL jsonb_array_elements(v.definition->'steps') step "
            "WHERE step->>'id' = e.payload->>'step_id' AND e.type = ANY(%(types)s) "
            "AND (%(runs)s::uuid[] IS NULL OR e.run_id = ANY(%(runs)s::uuid[])) "
            # An attempt a limit deferred is made again under its number: counted once.
            "AND NOT (e.type = 'StepStarted' AND EXISTS (SELECT 1 FROM eventlog_event d "
            "  WHERE d.run_id = e.run_id AND d.seq < e.seq AND d.type = 'StepDeferred' "
            "  AND d.payload->>'step_id' = e.payload->>'step_id' "
            "  AND d.payload->'attempt' = e.payload->'attempt')) "
            "GROUP BY 1, 2, 3",
            {"runs": runs, "types": [*STARTS, "StepCompleted", "StepFailed"]},
        )
        steps = cursor.fetchall()
        cursor.execute(
            "SELECT CASE WHEN type = 'RunQueued' THEN 'concurrency' "
            "  ELSE coalesce(payload->>'reason', payload->>'error_class') END, count(*) "
            "FROM eventlog_event e WHERE (type IN ('StepDeferred', 'RunQueued') "
            "OR (type = 'StepFailed' AND payload->>'error_class' = 'budget_exceeded')) "
            "AND (%(runs)s::uuid[] IS NULL OR e.run_id = ANY(%(runs)s::uuid[])) GROUP BY 1",
            {"runs": runs},
        )
        rejections = Counter({(reason,): n for reason, n in cursor.fetchall()})
    started, completed, failed = Counter(), Counter(), Counter()
    for type_, kind, error_class, n in steps:
        if type_ == "StepCompleted":
            completed[(kind,)] += n
        elif type_ == "StepFailed":
            failed[(kind, error_class)] += n
        else:
            started[(kind,)] += n
    return {
        "vectorbea_events_appended_total": events,
        "vectorbea_steps_started_total": started,
        "vectorbea_steps_completed_total": completed,
        "vectorbea_steps_failed_total": failed,
        "vectorbea_budget_rejections_total": rejections,
    }


def log_step_seconds(runs: list | None = None) -> float:
    """The summed latency of every step attempt's outcome (of `runs`, or of all), from the
    latest start of that attempt before it."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT coalesce(sum(extract(epoch FROM o.created_at - s.created_at)), 0) "
            "FROM eventlog_event o CROSS JOIN LATERAL ("
            "  SELECT created_at FROM eventlog_event WHERE run_id = o.run_id AND seq < o.seq "
            "  AND type = ANY(%(starts)s) AND payload->>'step_id' = o.payload->>'step_id' "
            "  AND payload->'attempt' = o.payload->'attempt' ORDER BY seq DESC LIMIT 1) s "
            "WHERE o.type IN ('StepCompleted', 'StepFailed') "
            "AND (%(runs)s::uuid[] IS NULL OR o.run_id = ANY(%(runs)s::uuid[]))",
            {"runs": runs, "starts": list(STARTS)},
        )
        return float(cursor.fetchone()[0])
