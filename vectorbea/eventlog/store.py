"""The one append into a run's history, and reading a run back.

`append()` records events with optimistic concurrency on (run_id, seq) and, in the same
transaction, everything derived from them: the RunSummary projection, step leases, a
checkpoint every VECTORBEA_CHECKPOINT_EVERY events, and the projections other apps
registered (vectorbea.eventlog.hooks); after commit it runs the registered hooks.
`load()` reads a run back as latest checkpoint + the events after it. `record()`
(vectorbea.eventlog.record) is what callers use: the conflict loop and decide() around
this append.

Events are built *inside* the transaction by a callback that receives the state and the
database's clock (`statement_timestamp()`), so decisions about time (retry backoff, timers)
use one clock for every worker and the event timestamps that fold reads.
"""

import json
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, cast
from uuid import UUID

import psycopg
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from psycopg.types.datetime import TimestamptzLoader

from vectorbea.engine import (
    ApprovalRequested,
    ConcurrencyConflict,
    Definition,
    Event,
    LeaseLost,
    Recorded,
    RetryScheduled,
    RunCancelled,
    RunCompleted,
    RunFailed,
    RunResumed,
    RunState,
    StepCompleted,
    StepDeferred,
    StepFailed,
    StepInterrupted,
    StepStarted,
    VectorbeaError,
    event_from_payload,
    event_to_payload,
    fold,
    state_from_json,
    state_to_json,
)
from vectorbea.eventlog import hooks, leases
from vectorbea.eventlog.hooks import Change
from vectorbea.eventlog.projections import RunSummaryProjection
from vectorbea.eventlog.sql import Statement

Build = Callable[[RunState, datetime], Sequence[Event]]
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DbClock:
    """The database's clock, as last read, carried forward by this process's monotonic
    clock: decisions about time use one clock for every worker without a round trip.
    A reading is the statement's start (`statement_timestamp()`), never the transaction's
    (`now()`): a transaction held open stops `now()`, and a reading taken from it would
    carry the clock backwards (a later event stamped before an earlier one)."""

    db: datetime
    mono: float

    @classmethod
    def reading(cls, db: datetime) -> "DbClock":
        global _latest_clock
        _latest_clock = clock = cls(db, time.monotonic())
        return clock

    def now(self) -> datetime:
        return self.db + timedelta(seconds=time.monotonic() - self.mono)


_latest_clock: DbClock | None = None  # this process's latest reading of the DB's clock
CLOCK_READING_MAX_AGE = 60.0  # seconds a reading is carried forward before a fresh one


def clock_now() -> datetime:
    """The database's clock: this process's latest reading carried forward (readings come
    with every append and load), or a fresh one when the latest is old."""
    latest = _latest_clock
    if latest is None or time.monotonic() - latest.mono > CLOCK_READING_MAX_AGE:
        latest = DbClock.reading(db_now())
    return latest.now()


def current_clock() -> DbClock:
    """The database's clock as of now (`clock_now`), as a reading to carry forward."""
    return DbClock(clock_now(), time.monotonic())


@dataclass(frozen=True)
class Loaded:
    """A run as read from the log: its state, its pinned definition, the DB clock."""

    run_id: UUID
    workspace_id: UUID
    version_id: UUID
    state: RunState
    definition: Definition
    clock: DbClock


@dataclass(frozen=True)
class Appended:
    state: RunState
    events: tuple[Recorded, ...]
    # Steps whose leases this append created, as (step_id, attempt); the first one is
    # claimed by the caller when it passed claim_first_started.
    started: tuple[tuple[str, int], ...]
    # The database's clock when the append committed: a fresh reading for the caller.
    clock: DbClock


@lru_cache(maxsize=1024)
def definition_for(version_id: UUID) -> Definition:
    """Versions are immutable (the database refuses UPDATE), so caching them is safe."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT definition FROM workflows_workflowversion WHERE id = %s", [version_id]
        )
        row = cursor.fetchone()
    if row is None:
        raise LookupError(f"No workflow version {version_id}")
    return Definition.from_json(_json(row[0]))


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def recorded_from_row(
    seq: int, type_name: str, version: int, payload: Any, at: datetime
) -> Recorded:
    """An event row (seq, type, schema_version, payload, created_at), upcast and decoded."""
    if isinstance(payload, str):
        payload = json.loads(payload)
    return Recorded(seq=seq, at=at, event=event_from_payload(type_name, version, payload))


def read_events(
    run_id: UUID,
    after_seq: int = 0,
    upto_seq: int | None = None,
    limit: int | None = None,
    *,
    types: tuple[str, ...] | None = None,
    step_id: str | None = None,
) -> list[Recorded]:
    """A run's events by seq, optionally only some types or one step's."""
    sql = (
        "SELECT seq, type, schema_version, payload, created_at FROM eventlog_event "
        "WHERE run_id = %s AND seq > %s"
    )
    params: list[Any] = [run_id, after_seq]
    if upto_seq is not None:
        sql += " AND seq <= %s"
        params.append(upto_seq)
    if types is not None:
        sql += " AND type = ANY(%s)"
        params.append(list(types))
    if step_id is not None:
        sql += " AND payload->>'step_id' = %s"
        params.append(step_id)
    sql += " ORDER BY seq"
    if limit is not None:
        sql += " LIMIT %s"
        params.append(limit)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [recorded_from_row(*row) for row in cursor.fetchall()]


def load(run_id: UUID) -> Loaded:
    """Latest checkpoint + fold(events after it), in one round trip."""
    return cast(Loaded, _read(run_id, None))  # without a claim, nothing is refused


def claim_and_load(run_id: UUID, step_id: str, attempt: int, worker: str) -> Loaded | None:
    """Take the unclaimed lease of this attempt for `worker` and read the run, in one
    round trip; None when the lease was not there to take (another delivery of the same
    message won it, or the attempt ended)."""
    return _read(run_id, (step_id, attempt, worker))


_READ_SQL = (
    "SELECT {claimed}, r.workspace_id, r.version_id, statement_timestamp(), cp.state, ("
    "  SELECT json_agg(json_build_array(e.seq, e.type, e.schema_version, e.payload, "
    "    e.created_at) ORDER BY e.seq) FROM eventlog_event e "
    "  WHERE e.run_id = r.id AND e.seq > coalesce(cp.seq, 0)) "
    "FROM eventlog_run r "
    "LEFT JOIN LATERAL (SELECT seq, state FROM eventlog_checkpoint "
    "  WHERE run_id = r.id ORDER BY seq DESC LIMIT 1) cp ON true "
    "WHERE r.id = %s::uuid"
)
READ_SQL = _READ_SQL.format(claimed="true")
_CLAIM = f"WITH {leases.CLAIM} "
CLAIM_AND_READ_SQL = _CLAIM + _READ_SQL.format(claimed="EXISTS (SELECT 1 FROM claimed)")
# A claim is not a step boundary: it records nothing that happened, only who runs the
# attempt. Alone in its transaction, it commits without waiting for the WAL flush (the
# step's own boundary, a durable commit, flushes it). A claim lost in a database crash
# is a crash before the claim: the attempt is run again, as it is when the crash comes
# after a durable claim (the holder's result cannot be recorded then either).
QUICK_CLAIM_AND_READ_SQL = _CLAIM + _READ_SQL.format(
    claimed="EXISTS (SELECT 1 FROM claimed) "
    "AND set_config('synchronous_commit', 'off', true) IS NOT NULL"
)


def _read(run_id: UUID, claim: tuple[str, int, str] | None) -> Loaded | None:
    if claim is None:
        sql, params = READ_SQL, [run_id]
    else:
        step_id, attempt, worker = claim
        # Inside a caller's transaction the setting would hold for its commit: durable.
        sql = CLAIM_AND_READ_SQL if connection.in_atomic_block else QUICK_CLAIM_AND_READ_SQL
        params = [*leases.claim_params(worker, run_id, step_id, attempt), run_id]
    with prepared_cursor() as cursor:
        cursor.execute(sql, params, prepare=True)
        row = cursor.fetchone()
    if row is None:
        raise LookupError(f"No run {run_id}")
    claimed, workspace_id, version_id, now, cp_state, events = row
    if not claimed:
        return None
    base = None
    if cp_state is not None:
        base = state_from_json(_json(cp_state))
    recorded = [
        recorded_from_row(seq, type_name, version, payload, datetime.fromisoformat(at))
        for seq, type_name, version, payload, at in events or ()
    ]
    state = fold(recorded, base)
    version_id = current_version(state, version_id)
    return Loaded(
        run_id, workspace_id, version_id, state, definition_for(version_id), DbClock.reading(now)
    )


def current_version(state: RunState, started_on: UUID) -> UUID:
    """The version the run is on: the one it started on, unless a person moved it
    (AttentionResolved with a version)."""
    if not state.version_id or state.version_id == str(started_on):
        return started_on
    try:
        return UUID(state.version_id)
    except ValueError:  # hand-made test logs name versions "v1"
        return started_on


def state_as_of(run_id: UUID, seq: int) -> RunState:
    """The run's derived state as of event `seq`, by the same fold the engine uses."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT seq, state FROM eventlog_checkpoint WHERE run_id = %s AND seq <= %s "
            "ORDER BY seq DESC LIMIT 1",
            [run_id, seq],
        )
        row = cursor.fetchone()
    base, after = None, 0
    if row is not None:
        after = row[0]
        base = state_from_json(_json(row[1]))
    return fold(read_events(run_id, after_seq=after, upto_seq=seq), base)


def db_now() -> datetime:
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement_timestamp()")
        return cursor.fetchone()[0]


@dataclass(frozen=True)
class NewRun:
    """A run's identity row, written by its first append in the same statement, and what
    that statement checks first: `guard` is a SELECT (with `guard_params`) that returns a
    row when the run may start (when it returns none, nothing is written and append()
    raises StartRefused)."""

    workspace_id: UUID
    workflow_id: UUID
    version_id: UUID
    idempotency_key: str | None
    started_by_id: int | None
    guard: str
    guard_params: tuple[Any, ...]


class StartRefused(Exception):
    """The guard of a new run's first append found no row: nothing was written."""


@dataclass(frozen=True)
class Stop:
    """The workspace's kill switch, as thrown: by whom and why."""

    actor: str
    reason: str


class KillSwitchOn(VectorbeaError):
    """The append would start work in a workspace whose kill switch is on: nothing was
    written."""

    def __init__(self, stop: Stop) -> None:
        super().__init__(f"The workspace's kill switch is on ({stop.reason})")
        self.stop = stop


def stop_of(workspace_id: UUID) -> Stop | None:
    """The workspace's kill switch as thrown, or None when it is off (by the rule the
    appends check, the view vectorbea_stopped_workspaces)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT stopped_by, stop_reason FROM vectorbea_stopped_workspaces "
            "WHERE workspace_id = %s",
            [workspace_id],
        )
        row = cursor.fetchone()
    return None if row is None else Stop(row[0] or "", row[1] or "Kill switch")


def starts_work(event: Event) -> bool:
    """Whether recording `event` starts work or lets it go on: the appends the kill switch
    refuses (a step's attempt, a person's resume or retry)."""
    if isinstance(event, StepStarted | RunResumed):
        return True
    return isinstance(event, RetryScheduled) and event.actor is not None


def append(
    run_id: UUID,
    state: RunState,
    build: Build,
    definition: Definition,
    *,
    now: datetime,
    claim_first_started: str = "",
    savepoint: bool = True,
    new_run: NewRun | None = None,
    workspace_id: UUID | None = None,
    by_person: bool = False,
    decided: bool = False,
) -> Appended:
    """Append the events `build(state, now)` returns after `state.last_seq`, in ONE
    statement (so one round trip and one commit per step boundary), with every registered
    projection the events touch in the same transaction; then, after commit, the
    registered hooks.

    `now` is the database's clock as the caller last read it (a previous append's or
    load's `now()`), advanced by the caller's monotonic clock since then.

    Raises, having written nothing: ConcurrencyConflict if another writer appended first
    (re-read and try again); LeaseLost if the events end a step attempt whose lease is no
    longer held; KillSwitchOn if they start work (`starts_work`) in a workspace whose
    kill switch is on.
    `claim_first_started`: a worker id that takes the lease of the first step this append
    starts (to run it inline); other started steps get unclaimed leases for dispatch.
    `savepoint=False`: inside a transaction the caller rolls back whole on any error (a
    brand-new run cannot conflict), skip the savepoint's two round trips.
    `new_run`: this is the run's first append; its row is inserted by the same statement
    (an IntegrityError then is the run's own, e.g. a reused idempotency key, and is raised
    as such). Its guard says whether it may start (the kill switch among the rest).
    `workspace_id`: the run's, when the caller knows it (the statement looks it up if not).
    `by_person`: a person asked for this; their check of the kill switch waits for a
    switch being thrown at the same moment (see vectorbea_workspace_running).
    `decided`: `build` returns decide()'s consequences with its events (record's
    then_decide), so the state after them is decide()'s fixpoint at `now`.
    """
    events = build(state, now)
    for event_filter in hooks.EVENT_FILTERS:  # e.g. known secrets never reach the log
        events = event_filter(events)
    if not events:
        return Appended(state, (), (), DbClock.reading(now))
    recorded = tuple(
        Recorded(seq=state.last_seq + i, at=now, event=event) for i, event in enumerate(events, 1)
    )
    new_state = fold(recorded, state)
    if new_run is not None:
        workspace_id = new_run.workspace_id
    guarded = new_run is None and any(starts_work(r.event) for r in recorded)
    statement, sql, started = _statement(
        run_id,
        state,
        new_state,
        recorded,
        definition,
        claim_first_started,
        new_run,
        workspace_id,
        kill_switch="locked" if guarded and by_person else "read" if guarded else None,
        decided=decided,
    )
    touching = [p for p in hooks.PROJECTIONS if p.touches(recorded, new_state)]
    own_scope = savepoint or new_run is not None
    if touching:  # the projections commit with the events, or neither does
        scope: Any = transaction.atomic(savepoint=own_scope)
    else:
        scope = _statement_scope(own_scope)
    try:
        with scope:
            with prepared_cursor() as cursor:
                cursor.execute(sql, statement.params, prepare=True)
                held, committed_at, running, looked_up = cursor.fetchone()
            workspace_id = workspace_id or looked_up
            if not held:
                if new_run is not None:
                    raise StartRefused(f"Run {run_id} may not start (its guard found no row)")
                if not _ended_attempts(state, recorded):
                    raise LookupError(f"No run {run_id}")
                raise LeaseLost(f"A step attempt of run {run_id} is no longer leased to us")
            if not running:
                assert workspace_id is not None
                raise KillSwitchOn(stop_of(workspace_id) or Stop("", "Kill switch"))
            change = Change(
                run_id,
                cast(UUID, workspace_id),
                definition,
                state,
                new_state,
                recorded,
                tuple(started),
                claim_first_started if started else "",
            )
            for projection in touching:
                projection.write(change)
    except IntegrityError as exc:
        if new_run is not None:  # the run's own, e.g. its idempotency key was taken
            raise
        raise ConcurrencyConflict(run_id, state.last_seq) from exc
    _after_commit(change)
    return Appended(new_state, recorded, tuple(started), DbClock.reading(committed_at))


def _after_commit(change: Change) -> None:
    def after() -> None:
        for hook in hooks.AFTER_COMMIT:
            try:
                hook(change)
            except Exception:  # a hook must not raise; if one does, the others still run
                log.exception("After-commit hook %s failed for run %s", hook, change.run_id)

    if connection.in_atomic_block:
        transaction.on_commit(after, robust=True)
    else:  # the statement committed by itself (the workers' path): now is after commit
        after()


@contextmanager
def prepared_cursor() -> Iterator[psycopg.Cursor]:
    """A cursor that binds parameters on the server, for `execute(..., prepare=True)`: the
    engine's few statement shapes are planned once per connection instead of on every
    step (planning the append costs more than executing it). One cursor per connection,
    reused, reading timestamps with psycopg's own (C) loader: the engine's statements
    run several times per step. Errors are Django's."""
    connection.ensure_connection()
    raw = connection.connection
    cursor = getattr(raw, "_vectorbea_cursor", None)
    if cursor is None or cursor.closed:
        cursor = raw._vectorbea_cursor = psycopg.Cursor(raw)
        cursor.adapters.register_loader("timestamptz", TimestamptzLoader)
    with connection.wrap_database_errors:
        yield cursor


def _statement_scope(savepoint: bool) -> Any:
    """Outside a transaction one statement is atomic by itself (autocommit); inside one, a
    savepoint keeps a conflict from poisoning the caller's transaction."""
    if connection.in_atomic_block and savepoint:
        return transaction.atomic()
    return nullcontext()


# The kill switch's rule, as the append reads it (the view and the function of eventlog
# migration 0011): "read" on the workers' path, "locked" when a person asks (it waits for
# a switch being thrown, and then reads it thrown).
KILL_SWITCH_CHECKS = {
    "read": "NOT EXISTS (SELECT 1 FROM vectorbea_stopped_workspaces WHERE workspace_id = "
    "{workspace})",
    "locked": "vectorbea_workspace_running({workspace})",
}


def _statement(
    run_id: UUID,
    old: RunState,
    new: RunState,
    recorded: Sequence[Recorded],
    definition: Definition,
    claim_first: str,
    new_run: NewRun | None,
    workspace_id: UUID | None,
    kill_switch: str | None,
    decided: bool = False,
) -> tuple[Statement, str, list[tuple[str, int]]]:
    """One statement: end the lease of the attempt whose outcome this records (or write
    nothing), insert the events, end and start leases, write the summary, checkpoint; for
    a new run, check its guard (or write nothing) and insert its row first; when it
    starts work, check the kill switch (or write nothing)."""
    ended = _ended_attempts(old, recorded)
    if len(ended) > 1:
        raise ValueError("One append may record the outcome of one step attempt at most")
    if new_run is not None and ended:
        raise ValueError("A run's first append ends no step attempt")
    statement = Statement()
    if new_run is not None:
        # A new run: its guard first (nothing is written when it finds no row), then the
        # run's row, which the deferred foreign keys of the other rows find at commit.
        statement.clause("head", new_run.guard, new_run.guard_params)
        statement.clause("ok", "SELECT EXISTS (SELECT 1 FROM head) AS ok")
        statement.clause(
            "run",
            "INSERT INTO eventlog_run (id, workspace_id, workflow_id, version_id, "
            "idempotency_key, started_by_id, created_at) SELECT %s::uuid, %s::uuid, %s::uuid, "
            "%s::uuid, %s::text, %s::integer, statement_timestamp() WHERE (SELECT ok FROM ok)",
            [
                run_id,
                new_run.workspace_id,
                new_run.workflow_id,
                new_run.version_id,
                new_run.idempotency_key,
                new_run.started_by_id,
            ],
        )
    elif ended:
        leases.end_attempt(statement, run_id, *ended[0])
    else:  # no lease to end: the run's row says it exists (nothing else checks it)
        statement.clause(
            "ok", "SELECT EXISTS (SELECT 1 FROM eventlog_run WHERE id = %s::uuid) AS ok", [run_id]
        )
    if workspace_id is None:
        workspace, workspace_params = (
            "(SELECT workspace_id FROM eventlog_run WHERE id = %s)",
            [run_id],
        )
    else:
        workspace, workspace_params = "%s::uuid", [workspace_id]
    may_write = "(SELECT ok FROM ok)"
    if kill_switch is not None:
        check = KILL_SWITCH_CHECKS[kill_switch].format(workspace=workspace)
        statement.clause("running", f"SELECT {check} AS running", workspace_params)
        may_write += " AND (SELECT running FROM running)"
    # The events go in first: a writer that lost the race fails (or waits for the winner)
    # on (run_id, seq) before it takes any other lock, so two appends to one run never
    # hold each other's lease or summary rows (no deadlock). Everything else hangs on
    # `wrote`, which reads the inserted rows and so runs after the insert.
    rows = ", ".join(
        ["(%s::uuid, %s::integer, %s, %s::smallint, %s::jsonb, %s::timestamptz)"] * len(recorded)
    )
    values: list[Any] = []
    for r in recorded:
        payload = json.dumps(event_to_payload(r.event))
        values += [run_id, r.seq, type(r.event).__name__, r.event.schema_version, payload, r.at]
    statement.clause(
        "events",
        "INSERT INTO eventlog_event (run_id, seq, type, schema_version, payload, created_at) "
        f"SELECT * FROM (VALUES {rows}) v WHERE {may_write} RETURNING seq",
        values,
    )
    statement.clause("wrote", "SELECT count(*) > 0 AS wrote FROM events")
    if any(isinstance(r.event, RunCancelled | RunFailed | RunCompleted) for r in recorded):
        leases.end_the_rest(statement, run_id, ended[0] if ended else None)
    # A person interrupting attempts (the kill switch) takes their leases away.
    interrupted = [r.event for r in recorded if isinstance(r.event, StepInterrupted)]
    for index, event in enumerate(interrupted):
        leases.take_away(statement, index, run_id, event.step_id, event.attempt)
    started = [(r.event.step_id, r.event.attempt) for r in recorded if type(r.event) is StepStarted]
    if started:
        leases.grant(statement, run_id, started, claim_first)
    ids = None if new_run is None else (new_run.workspace_id, new_run.workflow_id)
    at = recorded[-1].at
    RunSummaryProjection.clause(statement, run_id, old, new, definition, at, ids, decided=decided)
    every = settings.VECTORBEA_CHECKPOINT_EVERY
    if new.last_seq // every > old.last_seq // every or new.is_terminal:
        statement.clause(
            "checkpoint",
            "INSERT INTO eventlog_checkpoint (run_id, seq, state) "
            "SELECT %s::uuid, %s::integer, %s::jsonb WHERE (SELECT wrote FROM wrote)",
            [run_id, new.last_seq, json.dumps(state_to_json(new))],
        )
    running = "(SELECT running FROM running)" if kill_switch is not None else "true"
    looked_up, looked_up_params = (
        (workspace, workspace_params)
        if workspace_id is None
        else (
            "NULL::uuid",
            [],
        )
    )
    sql = statement.select(
        f"(SELECT ok FROM ok), statement_timestamp(), {running}, {looked_up}", looked_up_params
    )
    return statement, sql, started


def _ended_attempts(old: RunState, recorded: Sequence[Recorded]) -> list[tuple[str, int]]:
    """The attempts whose outcome `recorded` records: only an attempt a worker was running
    holds a lease; a step the engine completes itself (a delay whose time came, a decided
    approval) has none to end. A running attempt that asks a person (an agent's tool call
    needing approval) ends its lease too: it waits with none."""
    return [
        (r.event.step_id, r.event.attempt)
        for r in recorded
        if isinstance(r.event, StepCompleted | StepFailed | StepDeferred | ApprovalRequested)
        and old.step(r.event.step_id).status == "running"
    ]
