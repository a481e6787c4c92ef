"""Step leases and wake-ups: every statement that touches `eventlog_steplease` or
`eventlog_runsummary.wake_at` outside the summary projection.

A lease says that an attempt has started and who runs it: created unclaimed by the append
that records StepStarted, claimed by the worker that runs the attempt, extended by that
worker's heartbeat, and ended by the append that records the attempt's outcome (or by a
person's interruption, or the run's end). An expired lease is the sweeper's business: an
unclaimed one is dispatched again, a claimed one means its worker was lost.

`wake_at` is when the sweeper next looks at a run: the summary projection writes it with
every append (`next_wake_at` of the folded state); the sweeper pushes it back by a recheck
interval when it rings a run (so a lost wake-up rings again), and a wake-up that found
nothing to do puts it back where the log says it belongs.
"""

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from django.conf import settings
from django.db import connection

from vectorbea.eventlog.sql import Statement

Key = tuple[UUID, str, int]  # (run_id, step_id, attempt)


def ttl() -> timedelta:
    return timedelta(seconds=settings.VECTORBEA_LEASE_SECONDS)


# --- in the statements of the event store -------------------------------------------------------

# Taking an unclaimed lease for a worker: a CTE for store's claim-and-read statement, whose
# parameters are claim_params(...).
CLAIM = (
    "claimed AS (UPDATE eventlog_steplease SET worker = %s, "
    "expires_at = now() + %s::interval WHERE run_id = %s::uuid AND step_id = %s "
    "AND attempt = %s::integer AND worker = '' RETURNING 1)"
)


def claim_params(worker: str, run_id: UUID, step_id: str, attempt: int) -> list[Any]:
    return [worker, ttl(), run_id, step_id, attempt]


def end_attempt(statement: Statement, run_id: UUID, step_id: str, attempt: int) -> None:
    """The append records the outcome of this attempt: it may only if it ends the attempt's
    lease (`ok`), so a late result of an attempt taken over writes nothing."""
    statement.clause(
        "ended",
        "DELETE FROM eventlog_steplease WHERE run_id = %s AND step_id = %s "
        "AND attempt = %s RETURNING 1",
        [run_id, step_id, attempt],
    )
    statement.clause("ok", "SELECT count(*) = 1 AS ok FROM ended")


def end_the_rest(statement: Statement, run_id: UUID, keep: tuple[str, int] | None) -> None:
    """The run ended: no attempt of it is leased any more (but the one this append ended)."""
    step_id, attempt = keep if keep is not None else ("", 0)
    statement.clause(
        "cleared",
        "DELETE FROM eventlog_steplease WHERE run_id = %s "
        "AND NOT (step_id = %s AND attempt = %s) AND (SELECT wrote FROM wrote)",
        [run_id, step_id, attempt],
    )


def take_away(statement: Statement, index: int, run_id: UUID, step_id: str, attempt: int) -> None:
    """A person interrupted this attempt: its holder's heartbeat finds its lease gone and
    abandons the work; its late result is refused."""
    statement.clause(
        f"interrupted{index}",
        "DELETE FROM eventlog_steplease WHERE run_id = %s AND step_id = %s AND attempt = %s "
        "AND (SELECT wrote FROM wrote)",
        [run_id, step_id, attempt],
    )


def grant(
    statement: Statement, run_id: UUID, started: Sequence[tuple[str, int]], claim_first: str
) -> None:
    """Leases for the attempts this append starts; the first is claimed by `claim_first`
    (a worker going on inline), the others are left for dispatch."""
    rows = ", ".join(["(%s::uuid, %s, %s::integer, %s, now() + %s::interval)"] * len(started))
    params: list[Any] = []
    for index, (step_id, attempt) in enumerate(started):
        params += [run_id, step_id, attempt, claim_first if index == 0 else "", ttl()]
    statement.clause(
        "leases",
        "INSERT INTO eventlog_steplease (run_id, step_id, attempt, worker, expires_at) "
        f"SELECT * FROM (VALUES {rows}) v WHERE (SELECT wrote FROM wrote)",
        params,
    )


# --- the worker runtime -------------------------------------------------------------------------


def hand_back(key: Key, worker: str) -> bool:
    """Release a lease `worker` claimed but will not run; True if it was ours to release."""
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE eventlog_steplease SET worker = '' WHERE run_id = %s AND step_id = %s "
            "AND attempt = %s AND worker = %s",
            [*key, worker],
        )
        return cursor.rowcount == 1


def extend(worker: str, held: Iterable[Key]) -> set[Key]:
    """Extend the leases `worker` holds among `held`, in one statement; returns the ones it
    still holds (skipped because locked counts as held: an append ending that attempt has
    the row)."""
    held = list(held)
    if not held:
        return set()
    rows = ", ".join(["(%s::uuid, %s, %s::integer)"] * len(held))
    keys = [value for key in held for value in key]
    with connection.cursor() as cursor:
        # SKIP LOCKED: never wait on a lease another transaction has locked (an append
        # ending that attempt, which may itself wait on a sibling's event insert): waiting
        # while holding the other leases' locks can close a deadlock cycle.
        cursor.execute(
            "WITH mine AS (SELECT run_id, step_id, attempt FROM eventlog_steplease "
            f"  WHERE worker = %s AND (run_id, step_id, attempt) IN ({rows}) "
            "  FOR UPDATE SKIP LOCKED) "
            "UPDATE eventlog_steplease AS lease SET expires_at = now() + %s FROM mine "
            "WHERE lease.run_id = mine.run_id AND lease.step_id = mine.step_id "
            "AND lease.attempt = mine.attempt "
            "RETURNING lease.run_id, lease.step_id, lease.attempt",
            [worker, *keys, ttl()],
        )
        alive = {(r[0], r[1], r[2]) for r in cursor.fetchall()}
        missing = [key for key in held if key not in alive]
        if missing:  # skipped because locked, or gone: only the gone are lost
            rows = ", ".join(["(%s::uuid, %s, %s::integer)"] * len(missing))
            cursor.execute(
                "SELECT run_id, step_id, attempt FROM eventlog_steplease WHERE worker = %s "
                f"AND (run_id, step_id, attempt) IN ({rows})",
                [worker, *(value for key in missing for value in key)],
            )
            alive |= {(r[0], r[1], r[2]) for r in cursor.fetchall()}
    return alive


def held(key: Key) -> bool:
    """Whether this attempt still holds its lease (so its outcome can still be recorded)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT EXISTS (SELECT 1 FROM eventlog_steplease WHERE run_id = %s "
            "AND step_id = %s AND attempt = %s)",
            list(key),
        )
        return cursor.fetchone()[0]


def forget(key: Key) -> None:
    """Delete a lease the log no longer has running (an orphan)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM eventlog_steplease WHERE run_id = %s AND step_id = %s AND attempt = %s",
            list(key),
        )


# --- the sweeper --------------------------------------------------------------------------------

# An unclaimed attempt is sent again after 2, 4, 8, ... 32 leases (16 min at 30 s).
MAX_RESEND_DOUBLINGS = 5


def next_expired() -> tuple[Key, str] | None:
    """The oldest expired lease and its holder ('' when unclaimed), locked until the
    caller's transaction ends; other sweepers skip it."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT run_id, step_id, attempt, worker FROM eventlog_steplease "
            "WHERE expires_at <= now() ORDER BY expires_at LIMIT 1 FOR UPDATE SKIP LOCKED"
        )
        row = cursor.fetchone()
    return None if row is None else ((row[0], row[1], row[2]), row[3])


def resend_later(key: Key) -> None:
    """An unclaimed lease whose message is being sent again: wait twice as long before the
    next resend, so a long queue is not flooded with copies."""
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE eventlog_steplease SET resends = resends + 1, "
            "expires_at = now() + %s * power(2, LEAST(resends + 1, %s)) "
            "WHERE run_id = %s AND step_id = %s AND attempt = %s",
            [ttl(), MAX_RESEND_DOUBLINGS, *key],
        )


def postpone(key: Key, by: timedelta) -> None:
    """Look at this expired lease again `by` later (the sweeper failed on it)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE eventlog_steplease SET expires_at = now() + %s "
            "WHERE run_id = %s AND step_id = %s AND attempt = %s",
            [by, *key],
        )


def due_runs(limit: int, recheck: timedelta) -> list[UUID]:
    """Runs whose wake-up time has come, their next look pushed back by `recheck` (so a
    wake-up that is lost rings again). Inside the caller's transaction; other sweepers
    skip the rows it holds."""
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE eventlog_runsummary SET wake_at = now() + %s WHERE run_id IN ("
            "  SELECT run_id FROM eventlog_runsummary WHERE wake_at <= now() "
            "  ORDER BY wake_at LIMIT %s FOR UPDATE SKIP LOCKED) RETURNING run_id",
            [recheck, limit],
        )
        return [row[0] for row in cursor.fetchall()]


def wake_at(run_id: UUID, seq: int, when: datetime | None) -> None:
    """Put the run's next look at `when`, unless an append since `seq` has set its own."""
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE eventlog_runsummary SET wake_at = %s WHERE run_id = %s AND last_seq = %s",
            [when, run_id, seq],
        )
