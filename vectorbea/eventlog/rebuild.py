"""Recomputing projections from the log: the same functions the append uses, folded over a
run's whole history, must give the rows the live appends wrote."""

from collections.abc import Iterable, Sequence
from uuid import UUID

from django.db import connection, transaction

from vectorbea.engine import fold
from vectorbea.eventlog import hooks, store
from vectorbea.eventlog.hooks import Projection
from vectorbea.eventlog.models import Run
from vectorbea.eventlog.projections import RunSummaryProjection

SUMMARY = "summary"


def rebuild_projections(
    run_ids: Iterable[UUID] | None = None, projections: Sequence[Projection] | None = None
) -> dict[str, int]:
    """Recompute the rows of these runs (default: every run) from their logs, each run in a
    transaction of its own: the run summary and every registered projection, or only
    `projections` when given. Returns the rows written, by projection name."""
    chosen = list(hooks.PROJECTIONS if projections is None else projections)
    written = {projection.name: 0 for projection in chosen}
    if projections is None:
        written[SUMMARY] = 0
    runs = Run.objects.order_by("created_at")
    if run_ids is not None:
        runs = runs.filter(id__in=list(run_ids))
    for run in runs.iterator():
        events = store.read_events(run.id)
        if not events:
            continue
        state = fold(events)
        # The version the run is on now, as the live appends decide with (a person may
        # have moved it to a newer one).
        definition = store.definition_for(store.current_version(state, run.version_id))
        with transaction.atomic():
            if projections is None:
                with connection.cursor() as cursor:
                    RunSummaryProjection.write(cursor, run.id, state, definition, events[-1].at)
                written[SUMMARY] += 1
            for projection in chosen:
                written[projection.name] += projection.rebuild(run.id, events, definition)
    return written
