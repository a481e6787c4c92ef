import uuid

from django.core.management.base import BaseCommand, CommandError

from vectorbea.runs.commands import GateNotWaiting, decide_gate


class Command(BaseCommand):
    help = "Approve or deny a run's waiting approval step."

    def add_arguments(self, parser):
        parser.add_argument("run", help="Run id")
        parser.add_argument("step", help="Id of the approval step")
        verdict = parser.add_mutually_exclusive_group(required=True)
        verdict.add_argument("--approve", action="store_true", help="Let the run go on")
        verdict.add_argument("--deny", action="store_true", help="Refuse")
        parser.add_argument("--actor", required=True, help="Who decides (recorded in the log)")
        parser.add_argument("--reason", default="", help="Why (recorded in the log)")

    def handle(self, *args, **options):
        try:
            run_id = uuid.UUID(options["run"])
        except ValueError:
            raise CommandError(f"{options['run']!r} is not a run id") from None
        try:
            seq = decide_gate(
                run_id,
                options["step"],
                approve=options["approve"],
                actor=options["actor"],
                reason=options["reason"],
            )
        except LookupError:
            raise CommandError(f"No run {run_id}") from None
        except (GateNotWaiting, ValueError) as exc:
            raise CommandError(str(exc)) from None
        verdict = "Approved" if options["approve"] else "Denied"
        self.stdout.write(f"{verdict} step {options['step']} of run {run_id} (event {seq}).")
