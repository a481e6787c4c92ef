import json

from django.core.management.base import BaseCommand, CommandError

from vectorbea.engine import state_to_json
from vectorbea.eventlog import store
from vectorbea.eventlog.models import Run


class Command(BaseCommand):
    help = "Print a run's derived state as of event N (by the engine's own fold)."

    def add_arguments(self, parser):
        parser.add_argument("run_id")
        parser.add_argument("--as-of", type=int, default=None, help="Event seq (default: last)")

    def handle(self, *args, **options):
        run = Run.objects.filter(pk=options["run_id"]).first()
        if run is None:
            raise CommandError(f"No run {options['run_id']}")
        last = store.read_events(run.id)[-1].seq
        seq = options["as_of"] or last
        if not 1 <= seq <= last:
            raise CommandError(f"--as-of must be between 1 and {last}")
        state = store.state_as_of(run.id, seq)
        self.stdout.write(json.dumps(state_to_json(state), indent=2, default=str))
