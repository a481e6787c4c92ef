"""RerunProjection: a run's re-runs, derived from the event log (each re-run's
RunStarted names its origin), written in the same transaction as that event."""

from collections.abc import Sequence
from uuid import UUID

from vectorbea.engine import Definition, Recorded, RunStarted, RunState
from vectorbea.eventlog.hooks import Change


def origin_of(events: Sequence[Recorded]) -> str | None:
    """The run the log's RunStarted re-runs, if any."""
    for recorded in events:
        if isinstance(recorded.event, RunStarted):
            return recorded.event.rerun_of
    return None


class RerunProjection:
    name = "reruns"

    def touches(self, events: Sequence[Recorded], state: RunState) -> bool:
        return origin_of(events) is not None

    def write(self, change: Change) -> None:
        self._write(change.run_id, origin_of(change.events))

    def rebuild(self, run_id: UUID, events: Sequence[Recorded], definition: Definition) -> int:
        return self._write(run_id, origin_of(events))

    @staticmethod
    def _write(run_id: UUID, origin: str | None) -> int:
        from vectorbea.runs.models import Rerun

        try:
            origin_id = UUID(origin) if origin else None
        except ValueError:  # not a run id (a hand-made log): nothing to link
            origin_id = None
        if origin_id is None:
            return 0
        Rerun.objects.update_or_create(run_id=run_id, defaults={"origin_id": origin_id})
        return 1


RERUNS = RerunProjection()
