from django.core.management.base import BaseCommand

from vectorbea.eventlog.rebuild import SUMMARY, rebuild_projections


class Command(BaseCommand):
    help = "Recompute every projection of the event log: run summaries and approval gates."

    def add_arguments(self, parser):
        parser.add_argument("run_ids", nargs="*", help="Only these runs")

    def handle(self, *args, **options):
        written = rebuild_projections(options["run_ids"] or None)
        count = written.pop(SUMMARY)
        self.stdout.write(f"Rebuilt {count} run summar{'y' if count == 1 else 'ies'}.")
        for name, rows in written.items():
            label = "gate row(s)" if name == "gates" else f"{name} row(s)"
            self.stdout.write(f"Rebuilt {rows} {label}.")
