from django.core.management.base import BaseCommand

from vectorbea.approvals import projection


class Command(BaseCommand):
    help = "Recompute the inbox's Gate rows from the event log (all runs, or the ones named)."

    def add_arguments(self, parser):
        parser.add_argument("run_ids", nargs="*", help="Only these runs")

    def handle(self, *args, run_ids, **options):
        written = projection.rebuild(run_ids or None)
        self.stdout.write(f"Rebuilt {written} gate row(s).")
