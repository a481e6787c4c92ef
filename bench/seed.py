"""Runs written in bulk for the benchmarks, row for row as the engine's append writes them.

A benchmark that needs 100,000 runs cannot start them one by one, so `write_runs` writes
each run's rows at once: its Run row, its events, the RunSummary row that
RunSummaryProjection builds from the fold of those events (its SQL and its values), the
checkpoints and the leases of attempts still running. `check_against_append` proves that
these are the rows the engine writes: it writes the same logs through store.append too
(one event per append, at the same times) and compares every row of every table that
holds a run's rows, so a change to what the engine writes stops the bench with the
difference instead of leaving it to measure tables the engine would not have written.
"""

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from uuid import UUID, uuid4

from django.conf import settings
from django.db import connection, transaction

from vectorbea.engine import (
    Definition,
    Event,
    Recorded,
    RunState,
    apply,
    event_to_payload,
    state_to_json,
)
from vectorbea.eventlog import store
from vectorbea.eventlog.projections import RunSummaryProjection

# Columns that hold the wall clock when the row was written (the engine's now(), the
# seed's recorded time): the only ones allowed to differ between the two writers.
WRITE_TIME = {"eventlog_run": ("created_at",), "eventlog_steplease": ("expires_at",)}


@dataclass(frozen=True)
class SeedRun:
    """One run to write: who started it where, and its log (RunStarted first)."""

    id: UUID
    workspace_id: UUID
    workflow_id: UUID
    version_id: UUID
    started_by_id: int | None
    definition: Definition
    log: Sequence[Recorded]


def write_runs(runs: Iterable[SeedRun]) -> int:
    """Write the runs' rows in this transaction (COPY, and the projection's own INSERT for
    the summaries); returns how many events were written."""
    every = settings.VECTORBEA_CHECKPOINT_EVERY
    lease = timedelta(seconds=settings.VECTORBEA_LEASE_SECONDS)
    run_rows, event_rows, checkpoint_rows, lease_rows, summaries = [], [], [], [], []
    for run in runs:
        last = run.log[-1]
        # created_at: when the run's first append ran, which recorded its first event.
        run_rows.append(
            (
                run.id,
                run.workspace_id,
                run.workflow_id,
                run.version_id,
                None,
                run.started_by_id,
                run.log[0].at,
            )
        )
        state = RunState.initial()
        for recorded in run.log:
            state = apply(state, recorded)
            event_rows.append(
                (
                    run.id,
                    recorded.seq,
                    type(recorded.event).__name__,
                    recorded.event.schema_version,
                    json.dumps(event_to_payload(recorded.event)),
                    recorded.at,
                )
            )
            # An append checkpoints when the log passes a multiple of `every`, and when the
            # run ends: here, as appends of one event each would.
            if recorded.seq % every == 0 or (recorded is last and state.is_terminal):
                checkpoint_rows.append((run.id, recorded.seq, json.dumps(state_to_json(state))))
        if not state.is_terminal:
            lease_rows += [
                (run.id, step_id, state.step(step_id).attempt, "", last.at + lease)
                for step_id in state.running_steps()
            ]
        values = RunSummaryProjection.values(run.id, state, run.definition, last.at)
        summaries.append([run.id, run.workspace_id, run.workflow_id, *values[:-1]])
    raw = connection.connection
    with raw.cursor() as cursor:
        copies = (
            (
                "eventlog_run (id, workspace_id, workflow_id, version_id, idempotency_key, "
                "started_by_id, created_at)",
                run_rows,
            ),
            (
                "eventlog_event (run_id, seq, type, schema_version, payload, created_at)",
                event_rows,
            ),
            ("eventlog_checkpoint (run_id, seq, state)", checkpoint_rows),
            ("eventlog_steplease (run_id, step_id, attempt, worker, expires_at)", lease_rows),
        )
        for table, rows in copies:
            with cursor.copy(f"COPY {table} FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        # What a run's first append runs for its summary (for a run whose row it inserts).
        cursor.executemany(
            f"{RunSummaryProjection.INSERT} {RunSummaryProjection.ON_CONFLICT}", summaries
        )
    return len(event_rows)


def run_log(start, events: Sequence[Event], seconds_apart: float) -> list[Recorded]:
    """`events` recorded from `start` on, `seconds_apart` apart."""
    return [
        Recorded(seq, start + timedelta(seconds=seconds_apart * (seq - 1)), event)
        for seq, event in enumerate(events, 1)
    ]


def append_as_engine(run: SeedRun, sizes: Sequence[int]) -> RunState:
    """Write a run through the engine's own write path: store.append, once for each of
    `sizes` events of `run.log` in turn (grouped as a worker or the scheduler would append
    them), at the time of the group's first event; the first append inserts the Run row."""
    if sum(sizes) != len(run.log):
        raise ValueError(f"{sum(sizes)} events in the appends, {len(run.log)} in the log")
    state, first = RunState.initial(), 0
    for size in sizes:
        group = [recorded.event for recorded in run.log[first : first + size]]
        new_run = None
        if first == 0:
            new_run = store.NewRun(
                workspace_id=run.workspace_id,
                workflow_id=run.workflow_id,
                version_id=run.version_id,
                idempotency_key=None,
                started_by_id=run.started_by_id,
                guard="SELECT 1",
                guard_params=(),
            )
        state = store.append(
            run.id,
            state,
            lambda _state, _now, group=group: group,
            run.definition,
            now=run.log[first].at,
            savepoint=False,
            new_run=new_run,
            workspace_id=run.workspace_id,
        ).state
        first += size
    return state


def tables_of_runs() -> list[tuple[str, str]]:
    """Every table that holds rows of a run, with the column naming the run."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.table_name, c.column_name FROM information_schema.columns c "
            "JOIN information_schema.tables t USING (table_schema, table_name) "
            "WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE' "
            "AND (c.column_name = 'run_id' OR (c.table_name = 'eventlog_run' "
            "AND c.column_name = 'id')) ORDER BY 1"
        )
        return cursor.fetchall()


def rows_of(run_id: UUID) -> dict[str, list[str]]:
    """Each table's rows of the run, as JSON without the run's id and the write times."""
    found = {}
    with connection.cursor() as cursor:
        for table, column in tables_of_runs():
            skip = " ".join(f"- '{name}'" for name in (column, *WRITE_TIME.get(table, ())))
            # Table and column names come from the catalogue, never from input.
            sql = f'SELECT (to_jsonb(t) {skip})::text FROM "{table}" t WHERE "{column}" = %s'  # noqa: S608
            cursor.execute(sql, [run_id])
            found[table] = sorted(row[0] for row in cursor.fetchall())
    return found


class SeedDiffers(Exception):
    """The bulk writer no longer writes what the engine's append writes."""


def check_against_append(runs: Sequence[SeedRun]) -> None:
    """Write each run twice, through store.append (one event per append) and through
    write_runs, and compare all their rows; raise SeedDiffers naming the first difference.
    Writes nothing: everything is rolled back."""
    with transaction.atomic():
        for run in runs:
            twin = replace(run, id=uuid4())
            append_as_engine(run, [1] * len(run.log))
            write_runs([twin])
            engine, seeded = rows_of(run.id), rows_of(twin.id)
            for table in engine:
                if engine[table] != seeded[table]:
                    raise SeedDiffers(
                        f"{table}: the engine's append wrote {engine[table]}, "
                        f"the bench's seed wrote {seeded[table]}"
                    )
        transaction.set_rollback(True)
