"""Budget reservations that hold under concurrency, across threads and processes.

Before a paid call a worker reserves the call's worst-case cost against three `SpendLedger`
rows: the run's, the workspace's UTC day's and its month's. After the call the reservation
becomes spend, one of three ways:

- `settle`: the provider's answer was read, and what it says the call cost replaces the
  reservation;
- `charge`: the call was sent but its answer never read (the attempt was cancelled, it
  timed out, the connection dropped): the provider may have billed it, so it costs what
  was reserved for it, its worst case;
- `release`: the call provably never left (it could not connect): it costs nothing.

A reservation whose worker died is charged like `charge` by `sweep_expired` once its
`expires_at` passes. A call is never $0 unless it was never sent.

The run's cost is folded from its event log (the usage its attempts' outcomes report),
so a charge the attempt's outcome cannot carry (the outcome was never recorded, or is
refused because the attempt's lease is gone) is appended to the log as a CallCharged
event in the same transaction as the ledger's charge: the run's cost, the usage page and
the ledger hold the same amount.

Admission, per scope with a cap: there is headroom left (`spent + reserved < cap`). For
the run's row the check and the hold are one conditional UPDATE, so they cannot race: in
READ COMMITTED, Postgres re-evaluates the WHERE clause on the newest version of a row after
waiting for its lock. A day and a month are spread over stripes (SpendLedger.stripe): a
call admitted against their cap holds on stripe 0, and once that row's lock is granted,
checks the sum over every stripe. Every admitted call saw every earlier admission, so
concurrent callers overspend a cap by at most one call's worst case, never more. A call
with no cap on the day or the month holds on a stripe drawn at random instead: it is not
checked, so it seldom waits on other calls (their holds still count towards a cap set
meanwhile, as the sum over the stripes).

Rows are always locked in one order (run, then day, then month; one stripe of each) and one
reservation per
transaction, so reservers, settlers and sweepers never deadlock; a CallCharged is
appended before the ledger rows are touched, so no transaction waits for a run's log
while it holds them. Call these functions outside a transaction of your own: inside one,
the ledger rows stay locked (and every other call of the run and the workspace waits)
until it commits.

Times come from the database's clock (`now()`), one clock for every worker.
"""

import logging
import random
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from django.db import connection, transaction

from vectorbea.budgets.models import LedgerScope, WorkflowLimits, WorkspaceLimits
from vectorbea.engine import CallCharged, Event
from vectorbea.eventlog import leases
from vectorbea.eventlog.record import record

log = logging.getLogger(__name__)

RUN, DAY, MONTH = LedgerScope.RUN.value, LedgerScope.DAY.value, LedgerScope.MONTH.value


@dataclass(frozen=True)
class Caps:
    """The caps (USD, None: no cap) a call is admitted against, and the percent of a cap
    at which a warning is given."""

    run: Decimal | None
    day: Decimal | None
    month: Decimal | None
    soft_percent: int

    def cap(self, scope: str) -> Decimal | None:
        return {RUN: self.run, DAY: self.day, MONTH: self.month}[scope]


@dataclass(frozen=True)
class Held:
    """An admitted call: settle, charge or release `reservation_id` when the call is over."""

    reservation_id: UUID
    amount: Decimal
    expires_at: datetime


@dataclass(frozen=True)
class Refused:
    """A call not admitted because `scope`'s cap has no headroom left.

    `pending`: settled spend alone is still under the cap; other calls in flight hold the
    rest, so waiting for them and trying again may succeed. Otherwise the cap is spent."""

    scope: str
    cap: Decimal
    spent: Decimal
    reserved: Decimal
    pending: bool
    message: str


@dataclass(frozen=True)
class Threshold:
    """A ledger row's spend reached `percent` (the soft threshold, or 100) of its cap."""

    scope: str
    percent: int
    spent: Decimal
    cap: Decimal
    message: str


class _Refusal(Exception):
    """Raised inside reserve's transaction to roll its holds back."""

    def __init__(self, refused: Refused) -> None:
        self.refused = refused


def limits_for(workspace_id: UUID) -> WorkspaceLimits:
    """The workspace's limits row, created with the model's defaults on first use."""
    limits, _ = WorkspaceLimits.objects.get_or_create(workspace_id=workspace_id)
    return limits


def caps_for(workspace_id: UUID, workflow_id: UUID) -> Caps:
    """The caps for a call in a run of `workflow_id`: the workspace's, with the workflow's
    run cap instead of the workspace's when it has one. Creates nothing: a workspace
    without a limits row has the model's defaults (no caps, warning at 80%)."""
    limits = WorkspaceLimits.objects.filter(pk=workspace_id).first() or WorkspaceLimits(
        workspace_id=workspace_id
    )
    workflow_run_cap = (
        WorkflowLimits.objects.filter(pk=workflow_id).values_list("run_cap_usd", flat=True).first()
    )
    return Caps(
        run=workflow_run_cap if workflow_run_cap is not None else limits.run_cap_usd,
        day=limits.daily_cap_usd,
        month=limits.monthly_cap_usd,
        soft_percent=limits.soft_threshold_percent,
    )


def reserve(
    workspace_id: UUID,
    run_id: UUID,
    step_id: str,
    attempt: int,
    amount: Decimal,
    caps: Caps,
    *,
    ttl_seconds: float = 900,
) -> Held | Refused:
    """Hold `amount` (the call's worst-case cost) against the run's, the day's and the
    month's ledger rows, all three or none. Refused names the first scope without headroom.

    `ttl_seconds` should outlast the call: once it passes, the sweeper may charge the
    reservation (at `amount`), and a settle that comes later records nothing."""
    if amount < 0:
        raise ValueError(f"A reservation cannot be negative ({amount})")
    # One round trip for the whole hold (psycopg's pipeline), then the commit. The day and
    # month are the database's. A scope with a cap holds on its stripe 0, whose lock orders
    # every admission against that cap, then reads the scope's sum over all stripes (a
    # statement of its own: in READ COMMITTED it sees every hold committed before the lock
    # was granted). A scope without one adds to a stripe drawn at random: no check, and
    # seldom a wait on the other calls.
    keys = {DAY: DAY_KEY, MONTH: MONTH_KEY}
    capped = [scope for scope in (DAY, MONTH) if caps.cap(scope) is not None]
    stripe = random.randint(1, STRIPES)
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            raw = connection.connection
            with connection.wrap_database_errors, raw.pipeline():
                raw.execute(
                    "INSERT INTO budgets_spendledger (workspace_id, scope, key, stripe, "
                    "spent_usd, reserved_usd, warned_percent) VALUES "
                    + ", ".join(
                        ["(%s, %s, %s, 0, 0, 0, 0)"]
                        + [f"(%s, %s, {keys[scope]}, 0, 0, 0, 0)" for scope in capped]
                    )
                    + " ON CONFLICT (workspace_id, scope, key, stripe) DO NOTHING",
                    [workspace_id, RUN, str(run_id)]
                    + [value for scope in capped for value in (workspace_id, scope)],
                )
                run_hold = raw.cursor()
                run_hold.execute(
                    "UPDATE budgets_spendledger SET reserved_usd = reserved_usd + %s "
                    "WHERE workspace_id = %s AND scope = %s AND key = %s AND stripe = 0 "
                    "AND (%s::numeric IS NULL OR spent_usd + reserved_usd < %s::numeric) "
                    "RETURNING key",
                    [amount, workspace_id, RUN, str(run_id), caps.run, caps.run],
                )
                sums = {}
                for scope in (DAY, MONTH):
                    if scope in capped:
                        raw.execute(
                            "UPDATE budgets_spendledger SET reserved_usd = reserved_usd + %s "
                            f"WHERE workspace_id = %s AND scope = %s AND key = {keys[scope]} "
                            "AND stripe = 0",
                            [amount, workspace_id, scope],
                        )
                        sums[scope] = raw.cursor()
                        sums[scope].execute(
                            "SELECT coalesce(sum(spent_usd), 0), coalesce(sum(reserved_usd), 0) "
                            f"FROM budgets_spendledger WHERE workspace_id = %s AND scope = %s "
                            f"AND key = {keys[scope]}",
                            [workspace_id, scope],
                        )
                    else:
                        raw.execute(
                            "INSERT INTO budgets_spendledger (workspace_id, scope, key, stripe, "
                            "spent_usd, reserved_usd, warned_percent) "
                            f"VALUES (%s, %s, {keys[scope]}, %s, 0, %s, 0) "
                            "ON CONFLICT (workspace_id, scope, key, stripe) DO UPDATE "
                            "SET reserved_usd = budgets_spendledger.reserved_usd + %s",
                            [workspace_id, scope, stripe, amount, amount],
                        )
                stripes = {scope: 0 if scope in capped else stripe for scope in (DAY, MONTH)}
                reservation = raw.cursor()
                reservation.execute(
                    "INSERT INTO budgets_reservation "
                    "(id, workspace_id, run_id, step_id, attempt, amount_usd, day, month, "
                    "day_stripe, month_stripe, created_at, expires_at) "
                    f"VALUES (gen_random_uuid(), %s, %s, %s, %s, %s, {DAY_KEY}, {MONTH_KEY}, "
                    "%s, %s, now(), now() + make_interval(secs => %s)) RETURNING id, expires_at",
                    [
                        *(workspace_id, run_id, step_id, attempt, amount),
                        *(stripes[DAY], stripes[MONTH], ttl_seconds),
                    ],
                )
            if run_hold.fetchone() is None:
                assert caps.run is not None
                raise _Refusal(_refused(cursor, workspace_id, RUN, str(run_id), caps.run))
            for scope in capped:  # day, then month: the first without headroom is named
                spent_sum, reserved_sum = sums[scope].fetchone()
                others = reserved_sum - amount  # what the calls in flight before this one hold
                cap = caps.cap(scope)
                assert cap is not None
                if spent_sum + others >= cap:
                    raise _Refusal(_refusal(scope, cap, spent_sum, others))
            reservation_id, expires_at = reservation.fetchone()
    except _Refusal as refusal:
        return refusal.refused
    return Held(reservation_id, amount, expires_at)


# The database's UTC day ("2026-11-21") and month ("2026-11"): the keys of their rows.
DAY_KEY = "to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD')"
MONTH_KEY = "to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM')"
# Stripes 1..STRIPES take a day's and a month's calls without a cap, each call's drawn at
# random: its settle (on another session, later) waits only when its stripe is locked by
# another call's reserve or settle still committing, seldom with this many.
STRIPES = 32


def _refused(cursor, workspace_id: UUID, scope: str, key: str, cap: Decimal) -> Refused:
    cursor.execute(
        "SELECT spent_usd, reserved_usd FROM budgets_spendledger "
        "WHERE workspace_id = %s AND scope = %s AND key = %s",
        [workspace_id, scope, key],
    )
    spent, reserved = cursor.fetchone()
    return _refusal(scope, cap, spent, reserved)


def _refusal(scope: str, cap: Decimal, spent: Decimal, reserved: Decimal) -> Refused:
    pending = spent < cap
    message = _spent_of(scope, spent, cap)
    message += "; other calls in flight hold the rest." if pending else "."
    return Refused(scope, cap, spent, reserved, pending, message)


def settle(
    reservation_id: UUID,
    actual: Decimal,
    caps: Caps,
    usage: dict[str, Any] | None = None,
) -> list[Threshold]:
    """Replace a reservation by what the provider says the call cost, in one transaction.

    `usage` is what the attempt's outcome will report: when the attempt's lease is already
    gone that outcome will be refused, so the cost goes into the run's log here instead
    (a CallCharged, reason "outcome_refused").

    Returns the thresholds this settle made its ledger rows reach: the soft threshold
    (`caps.soft_percent`, when between 1 and 99) and then 100%, each given once per
    ledger row however many settlers race; a settle that jumps past both gives only the
    100% one. Settling a reservation that is gone (settled, charged, released or swept)
    does nothing and returns []."""
    if actual < 0:
        raise ValueError(f"A call cannot cost less than nothing ({actual})")
    take = TAKE if connection.in_atomic_block else QUICK_TAKE
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(take, [reservation_id])
        row = cursor.fetchone()
        if row is None:
            return []
        taken = Taken(*row)
        if actual > 0 and not leases.held((taken.run_id, taken.step_id, taken.attempt)):
            _log_charge(taken, {**(usage or {}), "cost_usd": float(actual)}, "outcome_refused")
        return _settle_taken(cursor, taken, actual, caps)


def charge(reservation_id: UUID, caps: Caps, usage: dict[str, Any], reason: str) -> list[Threshold]:
    """Settle a call whose answer was never read at what was reserved for it (its worst
    case: the provider may have billed it), and put the charge in the run's log (a
    CallCharged with `usage`, its cost marked estimated, and `reason`) in the same
    transaction. Thresholds as `settle`; a reservation that is gone: nothing, []."""
    take = TAKE if connection.in_atomic_block else QUICK_TAKE
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(take, [reservation_id])
        row = cursor.fetchone()
        if row is None:
            return []
        taken = Taken(*row)
        _log_charge(taken, _estimated(usage, taken.amount), reason)
        return _settle_taken(cursor, taken, taken.amount, caps)


def release(reservation_id: UUID) -> None:
    """Give a reservation back without spending anything: only for a call that provably
    never reached the provider (it could not connect), which nobody can have billed."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(TAKE, [reservation_id])
        row = cursor.fetchone()
        if row is not None:
            _settle_taken(cursor, Taken(*row), Decimal(0), None)


def sweep_expired() -> int:
    """Charge the reservations past their `expires_at` (their worker died or stalled
    mid-call, so whether the provider billed it is unknown) at what was reserved, each
    with a CallCharged (reason "worker_lost") in its run's log.

    One reservation per transaction, skipping those another sweeper or a settler holds,
    so several sweepers can run at once. Returns how many this call charged."""
    charged = 0
    while True:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(TAKE_EXPIRED)
            row = cursor.fetchone()
            if row is None:
                return charged
            taken = Taken(*row)
            _log_charge(taken, _estimated({}, taken.amount), "worker_lost")
            _settle_taken(cursor, taken, taken.amount, None)
            charged += 1


@dataclass(frozen=True)
class Taken:
    """A reservation deleted by the transaction that turns it into spend."""

    workspace_id: UUID
    run_id: UUID
    step_id: str
    attempt: int
    amount: Decimal
    day: str
    month: str
    day_stripe: int
    month_stripe: int


TAKEN = "workspace_id, run_id, step_id, attempt, amount_usd, day, month, day_stripe, month_stripe"
TAKE = f"DELETE FROM budgets_reservation WHERE id = %s RETURNING {TAKEN}"
# A settle or a charge commits without waiting for the WAL flush, so its rows' locks are
# not held through it. Lost in a database crash, it is a settle that never happened: the
# reservation is back, and the sweeper charges it at what was reserved (a CallCharged
# "worker_lost" in the same transaction). The attempt's outcome, recorded after it by a
# durable commit, flushes the WAL up to it: whenever that outcome survives, so does it.
# (Inside a caller's transaction the setting would hold for its commit: TAKE, durable.)
QUICK_TAKE = (
    "DELETE FROM budgets_reservation WHERE id = %s "
    "AND set_config('synchronous_commit', 'off', true) IS NOT NULL "
    f"RETURNING {TAKEN}"
)
TAKE_EXPIRED = (
    "DELETE FROM budgets_reservation WHERE id = ("
    "  SELECT id FROM budgets_reservation WHERE expires_at < now() "
    "  ORDER BY expires_at LIMIT 1 FOR UPDATE SKIP LOCKED"
    f") RETURNING {TAKEN}"
)


def _estimated(usage: dict[str, Any], amount: Decimal) -> dict[str, Any]:
    return {**usage, "cost_usd": float(amount), "cost_estimated": True}


def _log_charge(taken: Taken, usage: dict[str, Any], reason: str) -> None:
    """Append CallCharged to the run's log, inside the caller's transaction (so it commits
    with the ledger's charge, or neither does). A run that no longer exists (removed by
    retention) has no log to hold it: the ledger charges all the same."""

    def facts(loaded: Any) -> list[Event]:
        return [CallCharged(taken.step_id, taken.attempt, usage, reason)]

    try:
        record(taken.run_id, facts)
    except LookupError:
        log.info("Run %s is gone: its call's charge is in the ledger only", taken.run_id)


def _settle_taken(cursor, taken: Taken, actual: Decimal, caps: Caps | None) -> list[Threshold]:
    """Move a deleted reservation's amount out of `reserved` and `actual` into `spent` on
    the three rows that hold it, in the lock order; with caps, note the thresholds newly
    reached (a day's or a month's on its stripe 0, against its sum over the stripes)."""
    reached = []
    raw = connection.connection
    updates = []
    with connection.wrap_database_errors, raw.pipeline():  # the three rows in one round trip
        for scope, key, stripe in _ledger_rows(taken):
            update = raw.cursor()
            update.execute(
                "UPDATE budgets_spendledger "
                "SET reserved_usd = reserved_usd - %s, spent_usd = spent_usd + %s "
                "WHERE workspace_id = %s AND scope = %s AND key = %s AND stripe = %s "
                "RETURNING id, spent_usd, warned_percent",
                [taken.amount, actual, taken.workspace_id, scope, key, stripe],
            )
            total = None
            cap = caps.cap(scope) if caps else None
            if scope != RUN and stripe == 0 and cap is not None:
                total = raw.cursor()  # after the update, under stripe 0's lock
                total.execute(
                    "SELECT sum(spent_usd) FROM budgets_spendledger "
                    "WHERE workspace_id = %s AND scope = %s AND key = %s",
                    [taken.workspace_id, scope, key],
                )
            updates.append((scope, stripe, update, total))
    for scope, stripe, update, total in updates:
        row = update.fetchone()
        cap = caps.cap(scope) if caps else None
        if row is None or cap is None or stripe != 0:
            continue
        ledger_id, spent, warned = row
        if total is not None:
            spent = total.fetchone()[0]
        level = _level(spent, cap, caps.soft_percent)
        if level > warned:  # this transaction holds the row's lock: no settler races it
            cursor.execute(
                "UPDATE budgets_spendledger SET warned_percent = %s WHERE id = %s",
                [level, ledger_id],
            )
            message = _spent_of(scope, spent, cap)
            message += "." if level == 100 else f" ({_percent(spent, cap)}%)."
            reached.append(Threshold(scope, level, spent, cap, message))
    return reached


def _ledger_rows(taken: Taken) -> tuple[tuple[str, str, int], ...]:
    """A call's three ledger rows as (scope, key, stripe), in the one order they are locked."""
    return (
        (RUN, str(taken.run_id), 0),
        (DAY, taken.day, taken.day_stripe),
        (MONTH, taken.month, taken.month_stripe),
    )


def _level(spent: Decimal, cap: Decimal, soft_percent: int) -> int:
    """The highest threshold `spent` has reached: 100, the soft one, or 0 for none."""
    if spent >= cap:
        return 100
    if 0 < soft_percent < 100 and spent * 100 >= cap * soft_percent:
        return soft_percent
    return 0


def _percent(spent: Decimal, cap: Decimal) -> int:
    return int(spent * 100 / cap) if cap else 100


def spent(workspace_id: UUID, scope: str, key: str) -> Decimal:
    """Settled spend of one scope: "run" (key: the run id), "day" ("2026-11-21", UTC) or
    "month" ("2026-11"), summed over its stripes. Nothing recorded yet: 0."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT coalesce(sum(spent_usd), 0) FROM budgets_spendledger "
            "WHERE workspace_id = %s AND scope = %s AND key = %s",
            [workspace_id, scope, key],
        )
        return cursor.fetchone()[0]


def run_spent(run_id: UUID) -> Decimal:
    """What a run's settled calls cost."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT spent_usd FROM budgets_spendledger WHERE scope = %s AND key = %s",
            [RUN, str(run_id)],
        )
        row = cursor.fetchone()
    return row[0] if row else Decimal(0)


SUBJECTS = {
    RUN: ("This run", "budget"),
    DAY: ("The workspace", "daily budget"),
    MONTH: ("The workspace", "monthly budget"),
}


def _spent_of(scope: str, spent: Decimal, cap: Decimal) -> str:
    subject, budget = SUBJECTS[scope]
    return f"{subject} has spent {_usd(spent)} of its {_usd(cap)} {budget}"


def _usd(amount: Decimal) -> str:
    """Dollars and cents; four decimals below a dollar, where calls are priced."""
    return f"${amount:.4f}" if abs(amount) < 1 else f"${amount:,.2f}"
