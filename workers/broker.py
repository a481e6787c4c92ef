"""The Dramatiq broker. Import this before any actor is defined.

Redis carries wake-ups only; the truth is in Postgres. Engine actors use max_retries=0:
the engine's RetryPolicy is the only thing that schedules another attempt.
"""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "vectorbea.settings")
django.setup()

import ctypes  # noqa: E402
import logging  # noqa: E402
import multiprocessing  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import dramatiq  # noqa: E402
import redis  # noqa: E402
from django.conf import settings  # noqa: E402
from django.db import close_old_connections  # noqa: E402
from django.db.backends.signals import connection_created  # noqa: E402
from dramatiq.broker import MessageProxy  # noqa: E402
from dramatiq.brokers.redis import RedisBroker, _RedisConsumer  # noqa: E402
from dramatiq.common import compute_backoff, current_millis, q_name  # noqa: E402
from dramatiq.errors import ConnectionClosed, DecodeError  # noqa: E402
from dramatiq.message import Message  # noqa: E402
from dramatiq.middleware import (  # noqa: E402
    AgeLimit,
    Callbacks,
    Pipelines,
    Retries,
    ShutdownNotifications,
    TimeLimit,
)
from prometheus_client import Counter  # noqa: E402

log = logging.getLogger(__name__)

UNDECODABLE_MESSAGES = Counter(
    "vectorbea_queue_undecodable_messages",
    "Messages a worker fetched that were not Dramatiq messages (not JSON, or not a "
    "message's fields), moved to their queue's dead-letter set.",
    ["queue"],
)


def _name_connection(sender, connection, **kwargs) -> None:
    """A worker's (or the scheduler's) connections say which process holds them in
    pg_stat_activity: for the operator, and for bench/slow_steps.py, which counts them per
    worker process."""
    with connection.cursor() as cursor:
        cursor.execute("SET application_name TO %s", [f"vectorbea:{os.getpid()}"])


connection_created.connect(_name_connection)


class DbConnections(dramatiq.Middleware):
    """Give each message a healthy database connection, as Django does per request."""

    def before_process_message(self, broker, message):
        close_old_connections()

    def after_process_message(self, broker, message, *, result=None, exception=None):
        close_old_connections()

    after_skip_message = after_process_message


class GracefulShutdown(dramatiq.Middleware):
    """On SIGTERM: start no new step here, hand back what is still running after the
    grace period (workers.shutdown); once the threads have stopped, wait for the calls in
    flight to be recorded or handed back, then write out the metrics tallied since the last
    flush (a worker process exits without atexit)."""

    def before_worker_shutdown(self, broker, worker):
        from workers import shutdown

        shutdown.begin()

    def after_worker_shutdown(self, broker, worker):
        from vectorbea.metrics.events import TALLY
        from workers.calls import CALLS

        # The grace period, then the hand-backs and the outcomes they refuse (bounded).
        if not CALLS.drain(settings.VECTORBEA_SHUTDOWN_GRACE_SECONDS + 30):
            log.warning("Stopping with %d call(s) still in flight", CALLS.in_flight)
        TALLY.flush()


PR_SET_PDEATHSIG = 1  # linux/prctl.h


class StopWithMainProcess(dramatiq.Middleware):
    """A worker process gets SIGTERM (a graceful stop) when Dramatiq's main process dies,
    however it died (SIGKILL, the OOM killer): orphaned, it would go on taking messages
    beside the workers a supervisor starts in the main process's place, and outlive the
    supervisor. Linux only (prctl); elsewhere an orphan runs on as before."""

    def after_process_boot(self, broker):
        parent = multiprocessing.parent_process()
        if parent is None or not sys.platform.startswith("linux"):
            return
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent.pid:  # it died before we asked
            os.kill(os.getpid(), signal.SIGTERM)


class WorkerAnnouncement(dramatiq.Middleware):
    """List this worker process (host:pid, its queues and threads) for the operations
    page while it lives."""

    def after_worker_boot(self, broker, worker):
        from workers.announce import announce

        queues = worker.consumer_whitelist or broker.queues  # --queues, else every queue
        announce(sorted(q for q in queues if not q.endswith(".DQ")), worker.worker_threads)


class _DoorbellConsumer(_RedisConsumer):
    """Dramatiq's Redis consumer (pinned dramatiq 2.2.1), except that an idle consumer waits
    on its queue's doorbell list (BLPOP) instead of sleeping: a message enqueued while it
    waits wakes it within a Redis round trip, not after the idle poll (up to
    dramatiq_worker_timeout). The poll stays as the fallback, so a lost ring only delays;
    as rings wake it, it polls at that interval, not after a short backoff.

    A fetched message that does not decode goes to the dead-letter set and the consumer
    goes on with the rest of its batch (Dramatiq's consumer raises, and its thread drops
    the batch it had fetched: those messages would wait, unacked, until the worker dies)."""

    idle = False  # the last wait for a ring ended with nothing fetched

    def __next__(self):
        try:
            while True:
                try:
                    data = self.message_cache.pop(0)
                    if data is None:
                        continue
                    self.misses = 0
                    try:
                        message = Message.decode(data)
                    except DecodeError as error:
                        self.dead_letter(data, error)
                        continue
                    self.queued_message_ids.add(message.message_id)
                    return MessageProxy(message)
                except IndexError:
                    room = self.prefetch - self.outstanding_message_count
                    if room <= 0:  # full: only an ack frees room, no ring can help
                        self.misses, backoff_ms = compute_backoff(
                            self.misses, max_backoff=self.timeout
                        )
                        time.sleep(backoff_ms / 1000)
                        return None
                    # Idle, the last wait ended with a fetch: no need for another first.
                    messages = [] if self.idle else self.broker.do_fetch(self.queue_name, room)
                    if not messages:
                        # A ring wakes us at once: wait the whole poll, not a backoff (a
                        # fetch is a script call; an empty one is wasted). The fetch that
                        # follows the wait goes with it.
                        messages = self.broker.wait_and_fetch(
                            self.queue_name, room, self.timeout / 1000
                        )
                    self.message_cache = messages
                    self.idle = not messages
                    if not messages:
                        return None
        except redis.ConnectionError as e:
            raise ConnectionClosed(e) from None

    def dead_letter(self, data: bytes, error: BaseException) -> None:
        """Move a fetched message that does not decode to the dead-letter set, where
        Dramatiq's nack puts a failed message. Its log line names the message's id and
        queue and what failed, never its content, which could hold anything."""
        queue = q_name(self.queue_name)
        while isinstance(error, DecodeError):  # the encoder's error, wrapped by Message's
            error = error.error
        # JSONDecodeError, UnicodeDecodeError; else the fields were not a message's
        reason = "not JSON" if isinstance(error, ValueError) else "JSON but not a Dramatiq message"
        message_id = self.broker.unacked_message_id(self.queue_name, data)
        if message_id is None:  # this worker no longer holds it (its heartbeat lapsed)
            log.error(
                "A message on queue %r is %s, and this worker no longer holds it (its "
                "heartbeat lapsed): it was left where it was",
                queue,
                reason,
            )
            return
        self.broker.do_nack(self.queue_name, message_id)
        UNDECODABLE_MESSAGES.labels(queue).inc()
        log.error(
            "Message %s on queue %r is %s: moved to the dead-letter set",
            message_id,
            queue,
            reason,
        )


class DoorbellBroker(RedisBroker):
    """RedisBroker whose enqueue also rings the queue's doorbell (one token per message,
    the list capped so rings nobody waited for cannot pile up)."""

    RING_CAP = 64

    @property
    def consumer_class(self):
        return _DoorbellConsumer

    def doorbell_key(self, queue_name: str) -> str:
        return f"{self.namespace}:doorbell:{queue_name}"

    def do_enqueue(self, queue_name, message_id, data):
        """Dramatiq's enqueue script and the doorbell's ring in one pipeline: one round
        trip, the message in place before the ring (a delayed message rings nobody)."""
        if queue_name in self.delay_queues:
            return self._dispatch("enqueue")(queue_name, message_id, data)
        script = self.scripts["dispatch"]
        args = self._script_args("enqueue", queue_name, message_id, data)
        key = self.doorbell_key(queue_name)
        for _ in range(2):
            with self.client.pipeline(transaction=False) as pipe:
                # By hash: a Script object in a pipeline costs a SCRIPT EXISTS round trip.
                pipe.evalsha(script.sha, 1, self.namespace, *args)
                pipe.lpush(key, 1)
                pipe.ltrim(key, 0, self.RING_CAP - 1)
                try:
                    return pipe.execute()[0]
                except redis.exceptions.NoScriptError:  # Redis restarted: load it, again
                    self.client.script_load(script.script)
        raise redis.exceptions.NoScriptError("Could not load Dramatiq's dispatch script")

    def _script_args(self, command, queue_name, *args):
        """The arguments RedisBroker._dispatch gives the dispatch script (pinned 2.2.1)."""
        return [
            command,
            current_millis(),
            queue_name,
            self.broker_id,
            self.heartbeat_timeout,
            self.dead_message_ttl,
            self._should_do_maintenance(command),
            self._max_unpack_size(),
            *args,
        ]

    def unacked_message_id(self, queue_name: str, data: bytes) -> str | None:
        """The id of a message this broker fetched from the queue and has not acked or
        nacked yet, found by its content (the fetch script returns contents, not ids)."""
        acks = f"{self.namespace}:__acks__.{self.broker_id}.{queue_name}"
        message_ids = self.client.smembers(acks)
        if not message_ids:
            return None
        message_ids = list(message_ids)
        found = self.client.hmget(f"{self.namespace}:{queue_name}.msgs", message_ids)
        for message_id, content in zip(message_ids, found, strict=True):
            if content == data:
                return message_id.decode()
        return None

    def wait_and_fetch(self, queue_name: str, count: int, seconds: float) -> list:
        """Block until the queue's doorbell rings or `seconds` pass, then fetch up to `count`
        messages, in one round trip: Redis runs a client's pipelined commands in order, so
        the fetch waits behind the blocked BLPOP. (Its timestamp, the consumer's
        heartbeat, is then up to `seconds` old: the idle poll is far shorter than the
        heartbeat timeout.)"""
        script = self.scripts["dispatch"]
        with self.client.pipeline(transaction=False) as pipe:
            pipe.blpop([self.doorbell_key(queue_name)], timeout=max(seconds, 0.01))
            pipe.evalsha(
                script.sha, 1, self.namespace, *self._script_args("fetch", queue_name, count)
            )
            try:
                return pipe.execute()[1]
            except redis.exceptions.NoScriptError:  # Redis restarted: load it, fetch again
                self.client.script_load(script.script)
        return self.do_fetch(queue_name, count)


broker = DoorbellBroker(
    url=settings.REDIS_URL,
    namespace=f"{settings.REDIS_PREFIX}:dramatiq",
    middleware=[
        AgeLimit(),
        TimeLimit(),
        ShutdownNotifications(),
        Callbacks(),
        Pipelines(),
        Retries(max_retries=0),
        DbConnections(),
        GracefulShutdown(),
        WorkerAnnouncement(),
        StopWithMainProcess(),
    ],
    # A killed worker's unacked messages come back sooner; Postgres leases are what
    # actually recover work, this only speeds up the doorbell.
    heartbeat_timeout=15_000,
)
dramatiq.set_broker(broker)
