"""What a run is likely to cost, before it starts and while it goes on.

Only LLM steps cost money. For one call of an LLM step:

- input tokens: the system prompt and the prompt as written, estimated from their
  characters as `vectorbea.llm.tokens` does (4 ASCII characters a token, any other
  character a token of its own), plus 25 % and 256 tokens for the message framing and
  for the template values (`{{ input.text }}`, an earlier step's output) that are only
  filled in when the run starts;
- output tokens: the step's `max_tokens` at worst, a quarter of it typically;
- price: `vectorbea.llm.pricing.cost_of` (a model not on the price list is priced at the
  dearest listed rates, and the estimate says so).

Worst case: every LLM step of the version (on every branch, taken or not) makes every
attempt its retry policy allows (`maximum_attempts`), each with the longest answer. Failed
attempts are paid for (an answer that does not match the output schema, a timeout after the
provider started answering), so each attempt counts in full. The workspace's runaway guard
(max attempts per step) may stop a step sooner; the estimate does not count on it.

Typical: the median cost of the workflow's last 50 completed runs when it has 3 or more;
otherwise each LLM step once, with a quarter of `max_tokens` as its answer. A past run that
cost more than the worst case computed from the definition (its template values were
longer than the margin allows) raises the worst case to what it cost.
"""

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_HALF_EVEN, Decimal
from statistics import median
from typing import Any
from uuid import UUID

from vectorbea.engine.graph import Definition, StepDef
from vectorbea.engine.state import TERMINAL_RUN_STATUSES
from vectorbea.eventlog import store
from vectorbea.eventlog.models import Run, RunSummary
from vectorbea.llm.pricing import cost_of
from vectorbea.llm.tokens import token_estimate
from vectorbea.workflows.models import WorkflowVersion

LLM_KIND = "llm"
INPUT_MARGIN = Decimal("1.25")
INPUT_MARGIN_TOKENS = 256
DEFAULT_MAX_TOKENS = 1024  # the llm step's own default
TYPICAL_OUTPUT_SHARE = 4  # a typical answer: a quarter of max_tokens
PAST_RUNS = 50
MIN_PAST_RUNS = 3
CENT_MILLIONTH = Decimal("0.000001")
# How much of a step's attempts are still to come, by the step's status in the summary.
DONE_STEP_STATUSES = frozenset({"completed", "skipped", "gave_up", "failed"})


@dataclass(frozen=True)
class Estimate:
    typical_usd: Decimal
    worst_usd: Decimal
    basis: str
    # Some model is not on the price list: its calls are priced at the dearest listed rates.
    unlisted_model: bool = False
    # How many completed runs the typical figure comes from (0: from the definition).
    past_runs: int = 0


@dataclass(frozen=True)
class CallCost:
    typical_usd: Decimal
    worst_usd: Decimal  # one attempt with the longest answer
    unlisted_model: bool


def input_tokens(config: Mapping[str, Any]) -> int:
    tokens = token_estimate(str(config.get("system") or "")) + token_estimate(
        str(config.get("prompt") or "")
    )
    return math.ceil(tokens * INPUT_MARGIN) + INPUT_MARGIN_TOKENS


def max_tokens(config: Mapping[str, Any]) -> int:
    """The step's max_tokens; the default when it is missing or a template."""
    try:
        value = int(config.get("max_tokens", DEFAULT_MAX_TOKENS))
    except (TypeError, ValueError):
        return DEFAULT_MAX_TOKENS
    return value if value > 0 else DEFAULT_MAX_TOKENS


def call_cost(step: StepDef) -> CallCost:
    """One attempt of an LLM step: typically and at worst."""
    model = str(step.config.get("model") or "")
    tokens_in = input_tokens(step.config)
    longest = max_tokens(step.config)
    worst = cost_of(model, tokens_in, longest)
    typical = cost_of(model, tokens_in, math.ceil(longest / TYPICAL_OUTPUT_SHARE))
    return CallCost(_usd(typical.usd), _usd(worst.usd), worst.estimated)


def llm_steps(definition: Definition) -> list[StepDef]:
    return [step for step in definition.steps.values() if step.kind == LLM_KIND]


def worst_case_usd(steps: Iterable[tuple[StepDef, int]]) -> Decimal:
    """The sum over (step, attempts left) of attempts × the step's dearest call."""
    return sum((call_cost(step).worst_usd * attempts for step, attempts in steps), Decimal(0))


def estimate_definition(definition: Definition) -> Estimate:
    """From the definition alone: each LLM step once (typical), or every attempt (worst)."""
    steps = llm_steps(definition)
    costs = [call_cost(step) for step in steps]
    worst = worst_case_usd((step, step.retry.maximum_attempts) for step in steps)
    typical = sum((cost.typical_usd for cost in costs), Decimal(0))
    if not steps:
        basis = "this workflow has no LLM steps"
    else:
        basis = f"from the prompts and answer limits of {_count(len(steps), 'LLM step')}"
    return Estimate(
        typical_usd=_round(typical),
        worst_usd=_round_up(worst),
        basis=basis,
        unlisted_model=any(cost.unlisted_model for cost in costs),
    )


def past_costs(workflow_id: UUID) -> list[Decimal]:
    """What the workflow's last PAST_RUNS completed runs cost, newest first."""
    return list(
        RunSummary.objects.filter(workflow_id=workflow_id, status="completed")
        .order_by("-finished_at")
        .values_list("cost_usd", flat=True)[:PAST_RUNS]
    )


def estimate_run(version: WorkflowVersion) -> Estimate:
    """What a new run of `version` is likely to cost (typical) and may cost at most (worst)."""
    estimate = estimate_definition(store.definition_for(version.id))
    costs = past_costs(version.workflow_id)
    if len(costs) < MIN_PAST_RUNS:
        return estimate
    return Estimate(
        typical_usd=_round(Decimal(median(costs))),
        worst_usd=max(estimate.worst_usd, _round_up(max(costs))),
        basis=f"based on {_count(len(costs), 'past run')}",
        unlisted_model=estimate.unlisted_model,
        past_runs=len(costs),
    )


def attempts_left(step: StepDef, progress: Mapping[str, Any] | None) -> int:
    """How many more attempts `step` may make, from its entry in the run's summary."""
    progress = progress or {}
    status = progress.get("status", "pending")
    made = int(progress.get("attempt") or 0)
    allowed = step.retry.maximum_attempts
    if status in DONE_STEP_STATUSES:
        return 0
    if status == "running":  # the attempt under way is not paid for yet
        return max(1, allowed - made + 1)
    if status == "retry_scheduled":
        return max(1, allowed - made)
    return allowed  # not started yet (or started again by a person's retry)


def estimate_to_finish(run: Run, summary: RunSummary | None = None) -> Estimate:
    """Spent so far plus what the LLM steps still to run may cost. A finished run: what it
    cost. Reads no table: the summary is the run's, the definition is cached."""
    summary = summary or run.summary
    spent = Decimal(summary.cost_usd or 0)
    if summary.status in TERMINAL_RUN_STATUSES:
        return Estimate(spent, spent, "the run has finished")
    definition = store.definition_for(run.version_id)
    left = [
        (step, attempts)
        for step in llm_steps(definition)
        if (attempts := attempts_left(step, summary.steps.get(step.id))) > 0
    ]
    costs = [call_cost(step) for step, _ in left]
    typical = spent + sum((cost.typical_usd for cost in costs), Decimal(0))
    worst = spent + worst_case_usd(left)
    if left:
        basis = f"spent so far and {_count(len(left), 'LLM step')} still to run"
    else:
        basis = "spent so far; no LLM step is left to run"
    return Estimate(
        typical_usd=_round(typical),
        worst_usd=_round_up(worst),
        basis=basis,
        unlisted_model=any(cost.unlisted_model for cost in costs),
    )


def _usd(value: float) -> Decimal:
    return Decimal(str(value))


def _round(value: Decimal) -> Decimal:
    return value.quantize(CENT_MILLIONTH, rounding=ROUND_HALF_EVEN)


def _round_up(value: Decimal) -> Decimal:
    return value.quantize(CENT_MILLIONTH, rounding=ROUND_CEILING)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"
