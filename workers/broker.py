"""The Dramatiq broker. Import this before any actor is defined.

Redis carries wake-ups only; the truth is in Postgres. Engine actors use max_retries=0:
the engine's RetryPolicy is the only thing that schedules another attempt.
"""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "vectorbea.settings")
django.setup()

import dramatiq  # noqa: E402
from django.conf import settings  # noqa: E402
from django.db import close_old_connections  # noqa: E402
from dramatiq.brokers.redis import RedisBroker  # noqa: E402
from dramatiq.middleware import (  # noqa: E402
    AgeLimit,
    Callbacks,
    Pipelines,
    Retries,
    ShutdownNotifications,
    TimeLimit,
)


class DbConnections(dramatiq.Middleware):
    """Give each message a healthy database connection, as Django does per request."""

    def before_process_message(self, broker, message):
        close_old_connections()

    def after_process_message(self, broker, message, *, result=None, exception=None):
        close_old_connections()

    after_skip_message = after_process_message


broker = RedisBroker(
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
    ],
    # A killed worker's unacked messages come back sooner; Postgres leases are what
    # actually recover work, this only speeds up the doorbell.
    heartbeat_timeout=15_000,
)
dramatiq.set_broker(broker)
