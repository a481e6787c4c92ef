"""What a call costs: USD per million input and output tokens, per model.

List prices as published by the providers (standard tier, no caching or batch discounts).
A provider reports dated ids ("gpt-4o-2024-08-06", "claude-sonnet-4-5-20250929"): a model
is priced by its longest listed prefix that ends at a "-". A model not listed (a local
Llama, a new release) is priced at the most expensive listed rates and flagged
`estimated`, so budgets err on the side of stopping early.
"""

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
    "o1": Rate(15.00, 60.00),
    "o1-mini": Rate(1.10, 4.40),
    "o3": Rate(2.00, 8.00),
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


def rate_for(model: str) -> Rate | None:
    """The listed rate for `model` or its longest listed prefix; None when not listed."""
    model = model.strip().lower()
    for name in sorted(PRICES, key=len, reverse=True):
        if model == name or model.startswith(name + "-"):
            return PRICES[name]
    return None


def cost_of(model: str, input_tokens: int, output_tokens: int) -> Cost:
    rate = rate_for(model)
    estimated = rate is None
    rate = rate or FALLBACK
    usd = (input_tokens * rate.input_per_million + output_tokens * rate.output_per_million) / 1e6
    return Cost(round(usd, 8), estimated)
