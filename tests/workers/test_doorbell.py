"""An idle Dramatiq consumer is woken by the doorbell a message rings when it is enqueued,
not by its idle poll (which can be as long as the worker's idle timeout)."""

import threading
import time
import uuid

import dramatiq
import pytest
from django.conf import settings
from dramatiq.message import Message

from tests.support.live import flush_own_redis
from workers.broker import DoorbellBroker

IDLE_POLL_MS = 30_000  # far longer than the test waits: only the doorbell can wake it


@pytest.fixture
def broker():
    flush_own_redis()
    broker = DoorbellBroker(url=settings.REDIS_URL, namespace=f"doorbell-{uuid.uuid4().hex[:8]}")
    broker.declare_queue("q")
    yield broker
    broker.client.close()


def message() -> Message:
    return Message(queue_name="q", actor_name="noop", args=(), kwargs={}, options={})


def test_an_idle_consumer_wakes_when_a_message_is_enqueued(broker):
    consumer = broker.consume("q", prefetch=1, timeout=IDLE_POLL_MS)
    consumer.misses = 20  # long idle: its next poll would wait the whole IDLE_POLL_MS
    got = []

    def consume() -> None:
        started = time.monotonic()
        while not got and time.monotonic() - started < 10:
            proxy = next(consumer)
            if proxy is not None:
                got.append((proxy, time.monotonic()))

    thread = threading.Thread(target=consume, daemon=True)
    thread.start()
    time.sleep(0.5)  # the consumer is blocked on the doorbell now
    sent_at = time.monotonic()
    broker.enqueue(message())
    thread.join(timeout=10)

    assert got, "the consumer was not woken"
    assert got[0][1] - sent_at < IDLE_POLL_MS / 1000 / 10  # woken by the ring, not the poll
    consumer.ack(got[0][0])


def test_rings_nobody_waited_for_are_capped(broker):
    for _ in range(200):
        broker.enqueue(message())

    assert broker.client.llen(broker.doorbell_key("q")) == DoorbellBroker.RING_CAP


def test_the_app_broker_rings_the_doorbell():
    from workers.broker import broker as app_broker

    assert isinstance(app_broker, DoorbellBroker)
    assert dramatiq.get_broker() is app_broker


def test_an_enqueue_loads_the_dispatch_script_when_redis_lost_it(broker):
    """The enqueue and its ring go in one pipeline by script hash; a Redis that does not
    know the script (restarted) gets it loaded, and the message is enqueued once."""
    known = broker.scripts["dispatch"]
    # The same script under a hash this Redis has never seen.
    source = known.script.decode() if isinstance(known.script, bytes) else known.script
    broker.scripts["dispatch"] = broker.client.register_script(f"{source}\n-- {uuid.uuid4()}")

    broker.enqueue(message())
    consumer = broker.consume("q", prefetch=10, timeout=100)
    received = [proxy for proxy in (next(consumer) for _ in range(5)) if proxy is not None]

    assert len(received) == 1
    assert broker.client.llen(f"{broker.namespace}:q") == 0


def counting_fetches(broker) -> list[int]:
    """Record the fetches the consumer makes apart from a wait (one round trip each)."""
    calls: list[int] = []
    fetch = broker.do_fetch

    def do_fetch(queue_name, count):
        calls.append(count)
        return fetch(queue_name, count)

    broker.do_fetch = do_fetch
    return calls


def test_a_consumer_woken_by_a_ring_gets_the_message_with_its_wait(broker):
    """The fetch that follows a wait rides in the same pipeline as the wait: a ring
    delivers the message in one Redis round trip, not two."""
    fetches = counting_fetches(broker)
    consumer = broker.consume("q", prefetch=1, timeout=IDLE_POLL_MS)
    got = []
    thread = threading.Thread(target=lambda: got.append(next(consumer)), daemon=True)
    thread.start()
    time.sleep(0.5)  # blocked on the doorbell, after one empty fetch
    broker.enqueue(message())
    thread.join(timeout=10)

    assert got and got[0] is not None, "the first call did not return the message"
    assert fetches == [1]  # only the fetch before the wait went on its own
    consumer.ack(got[0])


def test_an_idle_consumer_finds_a_message_that_rang_nobody(broker):
    """A message put back on the queue without a ring (Dramatiq requeues a dead worker's
    messages so) is found by the fetch that ends every wait."""
    consumer = broker.consume("q", prefetch=1, timeout=200)
    assert next(consumer) is None  # idle now: its next call waits first
    broker.enqueue(message())
    broker.client.delete(broker.doorbell_key("q"))  # the ring is lost

    proxy = next(consumer)  # waits its poll for a ring that never comes, then fetches

    assert proxy is not None
    consumer.ack(proxy)


def test_a_wait_loads_the_dispatch_script_when_redis_lost_it(broker):
    broker.enqueue(message())  # rings: the wait below ends at once
    known = broker.scripts["dispatch"]
    source = known.script.decode() if isinstance(known.script, bytes) else known.script
    broker.scripts["dispatch"] = broker.client.register_script(f"{source}\n-- {uuid.uuid4()}")

    fetched = broker.wait_and_fetch("q", 5, 1)

    assert len(fetched) == 1
    assert broker.client.llen(f"{broker.namespace}:q") == 0
