"""What a call costs: USD per million input and output tokens, per model.

List prices as published by the providers (standard tier, no caching or batch discounts).
A provider reports dated snapshot ids ("gpt-4o-2024-08-06", "claude-sonnet-4-5-20250929",
"gpt-4-0613") and aliases ("claude-3-5-haiku-latest"): a model is priced as the listed
name it is, or the listed name it is a snapshot or "-latest" alias of. Any other suffix
makes another model, often a dearer one ("o1-pro" is ten times "o1"), so it never
inherits the rate of a listed name it starts with.

A model not listed (a local Llama, a new release, a fine-tune) is priced at the dearest
listed input and output rates and flagged `estimated`. Not an error: a self-hosted
OpenAI-compatible server's models are never on the list, and refusing them would make
them unusable. Not cheaper: an unknown name may be a new top-tier model, and a budget
must stop early rather than late, so an unlisted model can never walk past a cap by being
priced below what it may cost.
"""

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Rate:
    input_per_million: float
    output_per_million: float


PRICES: dict[str, Rate] = {
    # OpenAI
    "gpt-5": Rate(1.25, 10.00),
    "gpt-5-mini": Rate(0.25, 2.00),
    "gpt-5-nano": Rate(0.05, 0.40),
    "gpt-4.1": Rate(2.00, 8.00),
    "gpt-4.1-mini": Rate(0.40, 1.60),
    "gpt-4.1-nano": Rate(0.10, 0.40),
    "gpt-4o": Rate(2.50, 10.00),
    "gpt-4o-mini": Rate(0.15, 0.60),
    "gpt-4-turbo": Rate(10.00, 30.00),
    "gpt-4": Rate(30.00, 60.00),
    "gpt-3.5-turbo": Rate(0.50, 1.50),
    "gpt-5-pro": Rate(15.00, 120.00),
    "o1": Rate(15.00, 60.00),
    "o1-pro": Rate(150.00, 600.00),
    "o1-mini": Rate(1.10, 4.40),
    "o3": Rate(2.00, 8.00),
    "o3-pro": Rate(20.00, 80.00),
    "o3-mini": Rate(1.10, 4.40),
    "o4-mini": Rate(1.10, 4.40),
    # Anthropic
    "claude-opus-4-5": Rate(5.00, 25.00),
    "claude-opus-4-1": Rate(15.00, 75.00),
    "claude-opus-4": Rate(15.00, 75.00),
    "claude-sonnet-4-5": Rate(3.00, 15.00),
    "claude-sonnet-4": Rate(3.00, 15.00),
    "claude-haiku-4-5": Rate(1.00, 5.00),
    "claude-3-7-sonnet": Rate(3.00, 15.00),
    "claude-3-5-sonnet": Rate(3.00, 15.00),
    "claude-3-5-haiku": Rate(0.80, 4.00),
    "claude-3-opus": Rate(15.00, 75.00),
    "claude-3-haiku": Rate(0.25, 1.25),
}

# What an unknown model is charged at: the dearest input and output rates listed.
FALLBACK = Rate(
    max(rate.input_per_million for rate in PRICES.values()),
    max(rate.output_per_million for rate in PRICES.values()),
)


@dataclass(frozen=True)
class Cost:
    usd: float
    estimated: bool


# What may follow a listed name and still be the same model: a dated snapshot
# (-2024-08-06, -20250929, -0613) or the -latest alias.
SNAPSHOT = re.compile(r"-(?:\d{4}-\d{2}-\d{2}|\d{8}|\d{4}|latest)")


def rate_for(model: str) -> Rate | None:
    """The listed rate of `model` (or of the listed model it is a snapshot or alias of);
    None when not listed."""
    model = model.strip().lower()
    rate = PRICES.get(model)
    if rate is not None:
        return rate
    dash = model.rfind("-")
    while dash > 0:
        if model[:dash] in PRICES and SNAPSHOT.fullmatch(model[dash:]):
            return PRICES[model[:dash]]
        dash = model.rfind("-", 0, dash)
    return None


def cost_of(model: str, input_tokens: int, output_tokens: int) -> Cost:
    rate = rate_for(model)
    estimated = rate is None
    rate = rate or FALLBACK
    usd = (input_tokens * rate.input_per_million + output_tokens * rate.output_per_million) / 1e6
    return Cost(round(usd, 8), estimated)
