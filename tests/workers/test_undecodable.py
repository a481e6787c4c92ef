"""A message on a queue that is not a Dramatiq message (not JSON, or not a message's fields)
is dead-lettered by the worker that fetched it: logged once at ERROR by id and queue, counted
in /metrics, listed for staff on the operations page, while the rest of its batch runs at
once."""

import os
import uuid

import pytest
from django.urls import reverse

from tests.metrics.support import by, scrape
from tests.support.live import flush_own_redis, run_status, wait_for
from tests.support.workflows import chain, publish
from vectorbea.front import operations
from vectorbea.runs.commands import start_run
from workers.broker import broker

SECRET = "sk-do-not-log-0123456789"  # a body can hold anything: it never reaches a log


def enqueue_garbage(queue: str, body: bytes) -> str:
    """Put `body` on the queue as Dramatiq's enqueue does, but not as a message."""
    message_id = str(uuid.uuid4())
    broker.do_enqueue(queue, message_id, body)
    return message_id


def dead_lettered(queue: str) -> set[str]:
    return {m.decode() for m in broker.client.zrange(f"{broker.namespace}:{queue}.XQ", 0, -1)}


def test_a_message_that_is_not_json_is_dead_lettered_and_its_batch_runs_at_once(
    live, client, alice, acme
):
    counted = by(scrape(client), "vectorbea_queue_undecodable_messages_total", "queue")
    garbage = enqueue_garbage("runs", f"{{not json {SECRET}".encode())
    not_a_message = enqueue_garbage("runs", b'{"secret": "%s"}' % SECRET.encode())
    run = start_run(publish(acme, chain(2)), {})  # its wake-up follows both on "runs"

    live.worker(threads=4)  # prefetches 8: the three messages come in one batch
    log = live.logs / f"worker-{os.getpid()}-0.log"

    # No scheduler runs: nothing but that message can wake the run.
    wait_for(lambda: run_status(run.id) == "completed", timeout=30)
    wait_for(lambda: dead_lettered("runs") == {garbage, not_a_message}, timeout=10)

    samples = scrape(client)
    assert by(samples, "vectorbea_queue_dead_letters", "queue")[("runs",)] == 2
    undecodable = by(samples, "vectorbea_queue_undecodable_messages_total", "queue")
    assert undecodable[("runs",)] - counted[("runs",)] == 2

    lines = log.read_text().splitlines()
    assert SECRET not in log.read_text()
    assert not [line for line in lines if "CRITICAL" in line]
    for message_id in (garbage, not_a_message):
        logged = [line for line in lines if message_id in line]
        assert len(logged) == 1 and " ERROR " in logged[0] and "'runs'" in logged[0]

    alice.is_staff = True
    alice.save()
    client.force_login(alice)
    page = client.get(reverse("operations", kwargs={"ws": "acme"})).content.decode()
    assert page.count("Not a Dramatiq message") == 2
    assert garbage in page and not_a_message in page and SECRET not in page
    assert "Re-drive" not in page  # only a message that decodes can be re-driven

    response = client.post(
        reverse("operations-redrive", kwargs={"ws": "acme"}), {"queue": "runs", "id": garbage}
    )
    assert response.status_code == 302
    assert dead_lettered("runs") == {garbage, not_a_message}


@pytest.mark.django_db
def test_the_operations_page_and_metrics_read_a_queue_whose_oldest_message_is_garbage(
    client, alice, acme
):
    flush_own_redis()
    enqueue_garbage("steps", b"\xff\xfe not even text")
    client.force_login(alice)

    page = client.get(reverse("operations", kwargs={"ws": "acme"}))

    assert page.status_code == 200
    steps = next(queue for queue in operations.queues() if queue.name == "steps")
    assert (steps.waiting, steps.oldest_seconds) == (1, None)
    samples = scrape(client)
    assert by(samples, "vectorbea_queue_messages", "queue") == {("steps",): 1}
    assert by(samples, "vectorbea_metrics_source_up", "source")[("redis",)] == 1
    flush_own_redis()
