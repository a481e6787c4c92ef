"""Figures read at scrape time: the queues in Redis, the workers, the runs due."""

import socket
from pathlib import Path

import pytest
import redis
from django.db import connection

from tests.metrics.support import by, scrape
from tests.support.live import flush_own_redis
from tests.support.workflows import chain, publish
from tests.web.test_operations import dead_letter
from vectorbea.runs.commands import start_run
from workers.actors import advance_run
from workers.broker import broker

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def own_redis():
    flush_own_redis()
    yield
    flush_own_redis()


def queue_figures(client, name: str) -> dict[str, float]:
    return {queue: value for (queue,), value in by(scrape(client), name, "queue").items()}


def test_queue_depths_follow_the_messages_in_redis(client):
    for _ in range(3):
        advance_run.send("00000000-0000-0000-0000-000000000001")
    advance_run.send_with_options(args=("00000000-0000-0000-0000-000000000002",), delay=60_000)
    dead_letter("steps")

    samples = scrape(client)

    assert by(samples, "vectorbea_queue_messages", "queue") == {("runs",): 3}
    assert by(samples, "vectorbea_queue_delayed_messages", "queue") == {("runs",): 1}
    assert by(samples, "vectorbea_queue_dead_letters", "queue") == {("steps",): 1}
    ages = by(samples, "vectorbea_queue_oldest_message_age_seconds", "queue")
    assert ages.keys() == {("runs",)} and 0 < ages[("runs",)] < 60
    # Every queue is listed, empty ones at 0.
    assert {dict(labels)["queue"] for labels in samples["vectorbea_queue_messages"]} == {
        "runs",
        "steps",
        "llm",
    }
    assert samples["vectorbea_workers"] == {frozenset(): 0}

    broker.client.delete(f"{broker.namespace}:runs", f"{broker.namespace}:runs.msgs")
    assert queue_figures(client, "vectorbea_queue_messages") == {}


def test_runs_due_counts_runs_whose_wake_up_time_has_passed(client, acme):
    runs = [start_run(publish(acme, chain(1), f"w{i}"), {}) for i in range(3)]
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE eventlog_runsummary SET wake_at = CASE WHEN run_id = %s "
            "THEN now() + interval '1 hour' ELSE now() - interval '1 second' END",
            [runs[0].id],
        )

    assert scrape(client)["vectorbea_runs_due"] == {frozenset(): 2}


def test_without_redis_it_still_reports_the_rest(client, settings, monkeypatch):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]  # nothing listens once the socket is closed
    settings.REDIS_URL = f"redis://127.0.0.1:{closed}/0"
    monkeypatch.setattr(broker, "client", redis.Redis(port=closed, socket_connect_timeout=1))

    samples = scrape(client)

    assert samples["vectorbea_metrics_source_up"] == {
        frozenset({("source", "redis")}): 0,
        frozenset({("source", "postgres")}): 1,
    }
    assert "vectorbea_queue_messages" not in samples
    assert samples["vectorbea_runs_due"] == {frozenset(): 0}


def test_a_process_creating_its_file_right_now_does_not_break_a_scrape(client, settings):
    """prometheus_client creates a process's file empty, then sizes it: a scrape that
    lands in between skips it instead of answering 500."""
    starting = Path(settings.VECTORBEA_METRICS_DIR) / "counter_4194303.db"
    starting.touch()
    try:
        response = client.get("/metrics")
    finally:
        starting.unlink()

    assert response.status_code == 200
    assert b"vectorbea_metrics_source_up" in response.content
