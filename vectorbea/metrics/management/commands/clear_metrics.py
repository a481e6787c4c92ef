from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = (
        "Remove the metrics files in VECTORBEA_METRICS_DIR: run it before starting a host's "
        "web, worker and scheduler processes, never while they run (their counts would be "
        "lost). Counters then start again from zero, which Prometheus reads as a restart."
    )

    def handle(self, *args, **options):
        files = sorted(Path(settings.VECTORBEA_METRICS_DIR).glob("*.db"))
        for path in files:
            path.unlink(missing_ok=True)
        if options["verbosity"]:
            self.stdout.write(
                f"Removed {len(files)} metrics files from {settings.VECTORBEA_METRICS_DIR}."
            )
