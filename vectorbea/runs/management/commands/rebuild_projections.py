from django.core.management.base import BaseCommand
from django.db import connection, transaction

from vectorbea.approvals import projection as gate_projection
from vectorbea.engine import fold
from vectorbea.eventlog import store
from vectorbea.eventlog.models import Run
from vectorbea.eventlog.projections import RunSummaryProjection


class Command(BaseCommand):
    help = "Recompute every projection of the event log: run summaries and approval gates."

    def add_arguments(self, parser):
        parser.add_argument("run_ids", nargs="*", help="Only these runs")

    def handle(self, *args, **options):
        runs = Run.objects.order_by("created_at")
        if options["run_ids"]:
            runs = runs.filter(id__in=options["run_ids"])
        count = 0
        for run in runs.iterator():
            events = store.read_events(run.id)
            if not events:
                continue
            state = fold(events)
            with transaction.atomic(), connection.cursor() as cursor:
                RunSummaryProjection.write(
                    cursor, run.id, state, store.definition_for(run.version_id), events[-1].at
                )
            count += 1
        self.stdout.write(f"Rebuilt {count} run summar{'y' if count == 1 else 'ies'}.")
        gates = gate_projection.rebuild(options["run_ids"] or None)
        self.stdout.write(f"Rebuilt {gates} gate row(s).")
