"""What the platform is doing, for a workspace's owners and admins: the workers that are up,
the queues (waiting, delayed, dead-lettered, the oldest waiting message), the workspace's
runs by status, timers due, and recent step failures by error class; for installation
staff, the dead letters and the state of the tables the engine rewrites at every step.

The workers that are up are the ones that announce themselves (workers.announce). Queue
figures come from Dramatiq's own Redis keys; everything about runs
comes from Postgres.
"""

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import redis
from django.conf import settings
from django.db import connection
from dramatiq.errors import DecodeError
from dramatiq.message import Message

from vectorbea.queues import ALL as ALL_QUEUES

QUEUES = ALL_QUEUES
# A run's lease and summary rows are rewritten at every step: without vacuum their dead
# row versions pile up and every step reads past more of them.
CHURNED_TABLES = ("eventlog_steplease", "eventlog_runsummary")


def _client() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)


@dataclass(frozen=True)
class QueueFigures:
    name: str
    waiting: int
    delayed: int
    dead: int
    oldest_seconds: float | None


def queues() -> list[QueueFigures]:
    from workers.broker import broker

    client = broker.client
    now_ms = time.time() * 1000
    figures = []
    for name in QUEUES:
        key = f"{broker.namespace}:{name}"
        oldest = None
        head = client.lindex(key, 0)
        if head is not None:
            sent_ms = _sent_ms(_decoded(client.hget(f"{key}.msgs", head)))
            if sent_ms is not None:
                oldest = max(0.0, (now_ms - sent_ms) / 1000)
        figures.append(
            QueueFigures(
                name=name,
                waiting=client.llen(key),
                delayed=client.llen(f"{key}.DQ"),
                dead=client.zcard(f"{key}.XQ"),
                oldest_seconds=oldest,
            )
        )
    return figures


def _decoded(raw: bytes | None) -> Message | None:
    """The stored Dramatiq message, or None if it is not one (anything can be put on a
    queue; a worker dead-letters what does not decode)."""
    if raw is None:
        return None
    try:
        return Message.decode(raw)
    except DecodeError:
        return None


def _sent_ms(message: Message | None) -> float | None:
    sent_ms = message.message_timestamp if message else None
    return sent_ms if isinstance(sent_ms, int | float) else None


def dead_letters(limit: int = 50) -> list[dict[str, Any]]:
    """Messages Dramatiq gave up on (an actor raised past its retries, or a worker could
    not decode them), newest first. A message that does not decode is listed without its
    content, as `undecodable`, at the time it was dead-lettered."""
    from workers.broker import broker

    client = broker.client
    letters = []
    for name in QUEUES:
        key = f"{broker.namespace}:{name}.XQ"
        for message_id, dead_ms in client.zrevrange(key, 0, limit - 1, withscores=True):
            raw = client.hget(f"{key}.msgs", message_id)
            if raw is None:
                continue
            message = _decoded(raw)
            letters.append(
                {
                    "queue": name,
                    "id": message_id.decode(),
                    "undecodable": message is None,
                    "actor": message.actor_name if message else "",
                    "args": message.args if message else (),
                    "at": (_sent_ms(message) or dead_ms) / 1000,
                }
            )
    return sorted(letters, key=lambda letter: -letter["at"])[:limit]


def redrive(queue: str, message_id: str) -> bool:
    """Put a dead-lettered message back on its queue (the engine makes a repeat harmless:
    a step's lease is its fencing token, a wake-up only makes the run look again). A
    message that does not decode is not re-driven: it would only be dead-lettered again."""
    from workers.broker import broker

    if queue not in QUEUES:
        return False
    key = f"{broker.namespace}:{queue}.XQ"
    message = _decoded(broker.client.hget(f"{key}.msgs", message_id))
    if message is None:
        return False
    broker.enqueue(
        message.copy(
            options={
                k: v
                for k, v in message.options.items()
                if k not in ("redis_message_id", "traceback")
            }
        )
    )
    with broker.client.pipeline() as pipe:
        pipe.zrem(key, message_id)
        pipe.hdel(f"{key}.msgs", message_id)
        pipe.execute()
    return True


def workspace_figures(workspace_id: UUID) -> dict[str, Any]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT status, count(*) FROM eventlog_runsummary WHERE workspace_id = %s "
            "GROUP BY status ORDER BY count(*) DESC",
            [workspace_id],
        )
        by_status = cursor.fetchall()
        cursor.execute(
            "SELECT count(*) FILTER (WHERE wake_at <= now()), min(wake_at) "
            "FILTER (WHERE wake_at > now()) FROM eventlog_runsummary "
            "WHERE workspace_id = %s AND wake_at IS NOT NULL",
            [workspace_id],
        )
        due, next_timer = cursor.fetchone()
        cursor.execute(
            "SELECT e.payload->>'error_class', count(*) FROM eventlog_runsummary s "
            "JOIN eventlog_event e ON e.run_id = s.run_id "
            "WHERE s.workspace_id = %s AND s.updated_at > now() - interval '24 hours' "
            "AND e.type = 'StepFailed' AND e.created_at > now() - interval '24 hours' "
            "GROUP BY 1 ORDER BY 2 DESC",
            [workspace_id],
        )
        errors = cursor.fetchall()
    return {"by_status": by_status, "timers_due": due, "next_timer": next_timer, "errors": errors}


@dataclass(frozen=True)
class TableFigures:
    name: str
    live_rows: int
    dead_rows: int
    last_vacuum: datetime | None  # by autovacuum or by hand, whichever was later
    autovacuum: bool  # autovacuum is on in Postgres and not turned off for this table


def churned_tables() -> list[TableFigures]:
    """Postgres' statistics of CHURNED_TABLES (in this installation, every workspace)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT s.relname, s.n_live_tup, s.n_dead_tup, "
            "greatest(s.last_vacuum, s.last_autovacuum), "
            "current_setting('autovacuum')::bool AND coalesce(("
            "  SELECT o.option_value::bool FROM pg_options_to_table(c.reloptions) o "
            "  WHERE o.option_name = 'autovacuum_enabled'), true) "
            "FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid "
            "WHERE s.relname = ANY(%s) AND s.schemaname = current_schema() ORDER BY s.relname",
            [list(CHURNED_TABLES)],
        )
        return [TableFigures(*row) for row in cursor.fetchall()]
