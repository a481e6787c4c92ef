import logging
import signal
import threading
import time

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import DatabaseError, connection

from workers import sweeper

log = logging.getLogger("vectorbea.scheduler")


class Command(BaseCommand):
    help = "Fire due timers and recover expired step leases, forever (Ctrl-C to stop)."

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="Run one pass and exit")

    def handle(self, *args, **options):
        import workers.broker  # noqa: F401  (messages go to the configured broker)

        if options["once"]:
            self.stdout.write(f"{sweeper.tick()} item(s) handled")
            return
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        interval = settings.VECTORBEA_SCHEDULER_INTERVAL_SECONDS
        log.info("Scheduler started (every %.2fs)", interval)
        while not stop.is_set():
            started = time.monotonic()
            try:
                sweeper.tick()
            except DatabaseError as exc:
                log.warning("Database unavailable (%s); retrying", str(exc).splitlines()[0])
                connection.close()
                stop.wait(1)
            stop.wait(max(0.0, interval - (time.monotonic() - started)))
        log.info("Scheduler stopped")
