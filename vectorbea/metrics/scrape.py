"""Figures read when /metrics is scraped: the queues and workers the operations page shows
(vectorbea.front.operations), and the runs the scheduler should have woken by now.

A source that does not answer leaves its figures out and says so in
vectorbea_metrics_source_up, so one scrape still reports everything else.
"""

import logging
from collections.abc import Iterator

from django.db import connection
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from vectorbea.front import operations
from workers import announce

log = logging.getLogger(__name__)


class ScrapeTimeFigures(Collector):
    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily(
            "vectorbea_metrics_source_up",
            "1 when this scrape could read the source (redis, postgres), 0 when it could not.",
            labels=["source"],
        )
        for source, read in (("redis", _redis_figures), ("postgres", _postgres_figures)):
            try:
                families = list(read())
            except Exception:
                log.exception("/metrics could not read %s", source)
                if source == "postgres":
                    connection.close()
                up.add_metric([source], 0)
                continue
            up.add_metric([source], 1)
            yield from families
        yield up


def _redis_figures() -> Iterator[GaugeMetricFamily]:
    waiting = GaugeMetricFamily(
        "vectorbea_queue_messages", "Messages waiting in a Dramatiq queue.", labels=["queue"]
    )
    delayed = GaugeMetricFamily(
        "vectorbea_queue_delayed_messages",
        "Messages in a queue's delay queue (due later).",
        labels=["queue"],
    )
    dead = GaugeMetricFamily(
        "vectorbea_queue_dead_letters",
        "Messages Dramatiq gave up on, kept in the queue's dead-letter set for 7 days.",
        labels=["queue"],
    )
    oldest = GaugeMetricFamily(
        "vectorbea_queue_oldest_message_age_seconds",
        "How long the oldest waiting message of a queue has waited (0: none waits).",
        labels=["queue"],
    )
    for queue in operations.queues():
        waiting.add_metric([queue.name], queue.waiting)
        delayed.add_metric([queue.name], queue.delayed)
        dead.add_metric([queue.name], queue.dead)
        oldest.add_metric([queue.name], queue.oldest_seconds or 0.0)
    workers = GaugeMetricFamily(
        "vectorbea_workers",
        "Worker processes that announced themselves in the last "
        f"{announce.WORKER_TTL_SECONDS} seconds (every host's).",
        value=len(announce.listed()),
    )
    return iter((waiting, delayed, dead, oldest, workers))


def _postgres_figures() -> Iterator[GaugeMetricFamily]:
    # summary_wake_due is a partial index on wake_at: this reads only runs with a timer.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM eventlog_runsummary "
            "WHERE wake_at IS NOT NULL AND wake_at <= now()"
        )
        due = cursor.fetchone()[0]
    runs_due = GaugeMetricFamily(
        "vectorbea_runs_due",
        "Runs whose wake-up time (a retry, a timer, a ready step) has passed and that the "
        "scheduler has not woken yet: its backlog.",
        value=due,
    )
    return iter((runs_due,))
