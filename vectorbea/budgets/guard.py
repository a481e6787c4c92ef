"""Where workers meet the workspace's limits: around each paid call (how many runs go on
at once is decided when runs start and end: vectorbea.budgets.admission).

- `metered_call(ctx, ...)`: around one LLM call. The provider's rate limits (requests and
  tokens per minute, across every worker process) defer the step; then the call's
  worst-case cost is reserved against the run's, the day's and the month's budgets
  (ledger.reserve). Afterwards the reservation becomes what the call cost when the
  provider's answer was read, nothing when the request provably never left, and
  otherwise (cancelled, timed out, its answer lost) the reserved worst case: a call the
  provider may have billed is never $0. A spent budget is a BUDGET_EXCEEDED failure (the
  run needs attention, or fails if the workspace says so); crossing a soft threshold
  becomes a BudgetWarning on the run and an email.

The limits are read through a short in-process cache (`CACHE`): a change reaches every
process within LIMITS_TTL_SECONDS. The kill switch is not read here: it acts through the log.
"""

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_CEILING, Decimal
from typing import Any
from uuid import UUID

from django.conf import settings
from django.db import connection

from vectorbea.budgets import ledger, ratelimit
from vectorbea.engine import Deferred, ErrorClass, StepError
from vectorbea.llm.pricing import cost_of
from vectorbea.llm.tokens import token_estimate
from vectorbea.steps.registry import StepContext

log = logging.getLogger(__name__)

LIMITS_TTL_SECONDS = 5.0
# A call refused only because other calls in flight hold the budget waits for them this
# long (they settle within their own call time) before the step is deferred.
PENDING_WAIT_SECONDS = 15.0
PENDING_POLL_SECONDS = 0.2
# Tokens added to a prompt's estimated size: message framing, the JSON instruction.
PROMPT_OVERHEAD_TOKENS = 64
LEDGER_PRECISION = Decimal("0.000001")  # the ledger's amounts: numeric(14, 6)


@dataclass(frozen=True)
class Limits:
    max_concurrent_runs: int | None
    max_concurrent_runs_per_workflow: int | None
    requests_per_minute: int | None
    tokens_per_minute: int | None
    over_budget: str


NO_LIMITS = Limits(None, None, None, None, "pause")


class _Cache:
    """The workspace's limits and a workflow's budget caps, as read within the last
    LIMITS_TTL_SECONDS."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._read: dict[tuple[Any, ...], tuple[float, Any]] = {}

    def limits(self, workspace_id: UUID) -> Limits:
        return self._get(("limits", workspace_id), lambda: _read_limits(workspace_id))

    def caps(self, workspace_id: UUID, workflow_id: UUID | None) -> ledger.Caps:
        if workflow_id is None:
            return ledger.Caps(None, None, None, 80)
        key = ("caps", workspace_id, workflow_id)
        return self._get(key, lambda: ledger.caps_for(workspace_id, workflow_id))

    def _get(self, key: tuple[Any, ...], read: Any) -> Any:
        now = time.monotonic()
        with self._lock:
            cached = self._read.get(key)
        if cached is not None and now - cached[0] < LIMITS_TTL_SECONDS:
            return cached[1]
        value = read()
        with self._lock:
            if len(self._read) > 100_000:
                self._read.clear()
            self._read[key] = (now, value)
        return value

    def clear(self) -> None:
        with self._lock:
            self._read.clear()


CACHE = _Cache()


def _read_limits(workspace_id: UUID) -> Limits:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT max_concurrent_runs, max_concurrent_runs_per_workflow, "
            "requests_per_minute, tokens_per_minute, over_budget "
            "FROM budgets_workspacelimits WHERE workspace_id = %s",
            [workspace_id],
        )
        row = cursor.fetchone()
    return NO_LIMITS if row is None else Limits(*row)


def estimated_tokens(*texts: str) -> int:
    """A prompt's size in tokens, estimated from its characters (see llm.tokens), plus the
    message framing."""
    return sum(token_estimate(text) for text in texts) + PROMPT_OVERHEAD_TOKENS


def worst_case_usd(model: str, input_tokens: int, max_tokens: int) -> Decimal:
    """What is reserved for a call (and what it costs if its answer is never read): the
    longest answer at the model's price, rounded up to the ledger's millionths of a dollar."""
    usd = Decimal(str(cost_of(model, input_tokens, max_tokens).usd))
    return usd.quantize(LEDGER_PRECISION, rounding=ROUND_CEILING)


# Why a call sent but never answered is charged its reserved worst case (CallCharged.reason).
CANCELLED = "cancelled"
NO_ANSWER = "no_answer"


@dataclass
class Meter:
    """What the caller learned about its call, which decides what the call costs:

    - `answered(usage)`: the provider's answer was read; its `usage["cost_usd"]` replaces
      the reservation (an error answer, which providers do not bill: 0);
    - `not_sent()`: the request provably never reached the provider: nothing to pay;
    - neither (the default, whatever was raised): the call may have been billed and costs
      what was reserved for it, for `unanswered_reason` (or "cancelled" when the attempt
      was cancelled while it waited)."""

    usage: dict[str, Any] | None = None
    sent: bool = True
    unanswered_reason: str = NO_ANSWER
    warnings: list[ledger.Threshold] = field(default_factory=list)
    # Set by open_meter: what closing settles (None once closed).
    _open: tuple[StepContext, ledger.Held, ledger.Caps, str, str] | None = None

    def answered(self, usage: dict[str, Any]) -> None:
        self.usage = usage

    def not_sent(self) -> None:
        self.sent = False

    def unanswered(self, reason: str) -> None:
        self.unanswered_reason = reason

    def close(self) -> None:
        """Turn the call's reservation into what the meter says it cost (once; the notices
        of thresholds it crossed go on the attempt, and owners are emailed)."""
        if self._open is None:
            return
        ctx, held, caps, provider, model = self._open
        self._open = None
        try:
            self.warnings = _close(ctx, held, caps, self, provider, model)
        except Exception:  # the sweeper charges it at what was reserved
            log.exception("Could not settle budget reservation %s", held.reservation_id)
            connection.close()
        for warning in self.warnings:
            ctx.notices.append(
                {"scope": warning.scope, "percent": warning.percent, "message": warning.message}
            )
        if self.warnings:
            _email_owners(ctx, self.warnings)


def open_meter(
    ctx: StepContext, provider: str, model: str, input_tokens: int, max_tokens: int
) -> Meter:
    """Admit one paid call (rate limits, then the budgets): its reservation is held until
    the meter is closed, after the call, which turns it into what the call cost (see
    Meter). Raises Deferred (wait) or StepError(BUDGET_EXCEEDED)."""
    limits = CACHE.limits(ctx.workspace_id)
    _rate_limit(ctx, provider, limits, input_tokens + max_tokens)
    workflow_id = UUID(str(ctx.workflow_id)) if ctx.workflow_id else None
    caps = CACHE.caps(ctx.workspace_id, workflow_id)
    held = _reserve(ctx, caps, limits, worst_case_usd(model, input_tokens, max_tokens))
    return Meter(_open=(ctx, held, caps, provider, model))


@contextmanager
def metered_call(
    ctx: StepContext, provider: str, model: str, input_tokens: int, max_tokens: int
) -> Iterator[Meter]:
    """`open_meter` around a call made in the block."""
    meter = open_meter(ctx, provider, model, input_tokens, max_tokens)
    try:
        yield meter
    finally:
        meter.close()


def _close(
    ctx: StepContext,
    held: ledger.Held,
    caps: ledger.Caps,
    meter: Meter,
    provider: str,
    model: str,
) -> list[ledger.Threshold]:
    """Turn the call's reservation into what the meter says it cost."""
    if meter.usage is not None:
        cost = meter.usage.get("cost_usd")
        actual = Decimal(str(cost)) if isinstance(cost, int | float) else Decimal(0)
        return ledger.settle(held.reservation_id, actual, caps, meter.usage)
    if not meter.sent:
        ledger.release(held.reservation_id)
        return []
    reason = CANCELLED if ctx.is_cancelled else meter.unanswered_reason
    usage = {"provider": provider, "model": model}
    return ledger.charge(held.reservation_id, caps, usage, reason)


def _rate_limit(ctx: StepContext, provider: str, limits: Limits, tokens: int) -> None:
    rpm, tpm = limits.requests_per_minute, limits.tokens_per_minute
    wait = ratelimit.acquire(
        ctx.workspace_id,
        provider,
        requests_per_minute=rpm,
        tokens_per_minute=tpm,
        tokens=tokens,
        window_seconds=settings.VECTORBEA_RATE_LIMIT_WINDOW_SECONDS,
    )
    if wait <= 0:
        return
    said = []
    if rpm is not None:
        said.append(f"{rpm} requests a minute")
    if tpm is not None:
        said.append(f"{tpm:,} tokens a minute")
    at = (datetime.now(UTC) + timedelta(seconds=wait)).strftime("%H:%M:%S UTC")
    raise Deferred(
        "rate_limited",
        f"The workspace's rate limit for {provider} ({' and '.join(said)}) is reached; "
        f"the step continues at {at}.",
        wait,
    )


def _reserve(ctx: StepContext, caps: ledger.Caps, limits: Limits, amount: Decimal) -> Any:
    deadline = time.monotonic() + PENDING_WAIT_SECONDS
    while True:
        outcome = ledger.reserve(
            ctx.workspace_id, ctx.run_id, ctx.step_id, ctx.attempt, amount, caps
        )
        if isinstance(outcome, ledger.Held):
            return outcome
        if not outcome.pending:
            then = {"then": "fail"} if limits.over_budget == "fail" else None
            advice = (
                " Raise the budget on the Limits page, then retry the step."
                if limits.over_budget != "fail"
                else ""
            )
            raise StepError(ErrorClass.BUDGET_EXCEEDED, outcome.message + advice, detail=then)
        if time.monotonic() > deadline or ctx.is_cancelled:
            raise Deferred("budget", outcome.message, 2.0)
        time.sleep(PENDING_POLL_SECONDS)


def _email_owners(ctx: StepContext, warnings: list[ledger.Threshold]) -> None:
    from django.core.mail import send_mail

    from vectorbea.accounts.models import workspace_managers

    try:
        emails = [member.user.email for member in workspace_managers(ctx.workspace_id)]
        if emails:
            body = "\n".join(warning.message for warning in warnings)
            send_mail(
                "Vectorbea: a budget is running out",
                f"{body}\n\nRun {ctx.run_id}. Limits can be changed on the Limits page.",
                settings.DEFAULT_FROM_EMAIL,
                emails,
                fail_silently=True,
            )
    except Exception:
        log.exception("Could not email the budget warning")
