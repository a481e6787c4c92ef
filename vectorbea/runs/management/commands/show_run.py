from django.core.management.base import BaseCommand, CommandError

from vectorbea.eventlog import store
from vectorbea.eventlog.models import Run
from vectorbea.runs.timeline import format_line


class Command(BaseCommand):
    help = "Print a run's timeline (its event log in plain language)."

    def add_arguments(self, parser):
        parser.add_argument("run_id")
        parser.add_argument("--json", action="store_true", help="Raw events as JSON lines")

    def handle(self, *args, **options):
        import json

        from vectorbea.engine import event_to_payload

        run = (
            Run.objects.filter(pk=options["run_id"]).first()
            if _is_uuid(options["run_id"])
            else None
        )
        if run is None:
            raise CommandError(f"No run {options['run_id']}")
        definition = store.definition_for(run.version_id)
        names = {step_id: step.name or step_id for step_id, step in definition.steps.items()}
        summary = getattr(run, "summary", None)
        self.stdout.write(f"Run {run.id} of {run.workflow} v{run.version.number}")
        if summary:
            self.stdout.write(f"Status: {summary.status}, {summary.last_seq} events\n")
        for recorded in store.read_events(run.id):
            if options["json"]:
                event = recorded.event
                self.stdout.write(
                    json.dumps(
                        {
                            "seq": recorded.seq,
                            "type": type(event).__name__,
                            "payload": event_to_payload(event),
                        }
                    )
                )
            else:
                self.stdout.write(format_line(recorded, names))


def _is_uuid(value: str) -> bool:
    import uuid

    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True
