from django.core.management.base import BaseCommand, CommandError

from vectorbea.engine.limits import BadJson, parse_json
from vectorbea.runs.commands import CannotStart, InvalidRunInput, start_run
from vectorbea.workflows.models import Workflow


class Command(BaseCommand):
    help = "Start a run of a workflow (by id, or by workspace slug and name)."

    def add_arguments(self, parser):
        parser.add_argument("workflow", help="Workflow id, or WORKSPACE/NAME")
        parser.add_argument("--input", default="{}", help="Run input as JSON")
        parser.add_argument("--idempotency-key", default=None)

    def handle(self, *args, **options):
        workflow = _find(options["workflow"])
        try:
            data = parse_json(options["input"], "--input")
        except BadJson as exc:
            raise CommandError(exc.message) from None
        if not isinstance(data, dict):
            raise CommandError('--input must be a JSON object, like {"ticket": 1}.')
        try:
            run = start_run(workflow, data, idempotency_key=options["idempotency_key"])
        except (InvalidRunInput, CannotStart) as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(str(run.id))


def _find(ref: str) -> Workflow:
    import uuid

    try:
        return Workflow.objects.get(pk=uuid.UUID(ref))
    except (ValueError, Workflow.DoesNotExist):
        pass
    slug, _, name = ref.partition("/")
    workflow = Workflow.objects.filter(workspace__slug=slug, name=name).first()
    if workflow is None:
        raise CommandError(f"No workflow {ref!r} (give its id or WORKSPACE/NAME)")
    return workflow
