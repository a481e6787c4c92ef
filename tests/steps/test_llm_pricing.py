"""Costs from the price table; an unknown model is charged the dearest rate, flagged."""

import pytest

from vectorbea.llm import cost_of
from vectorbea.llm.pricing import FALLBACK, PRICES, rate_for


def test_a_listed_model_is_priced_per_million_tokens():
    cost = cost_of("gpt-4o-mini", 1_000_000, 1_000_000)
    assert cost.usd == pytest.approx(0.15 + 0.60)
    assert cost.estimated is False


def test_a_dated_model_id_takes_its_longest_listed_prefix():
    assert rate_for("gpt-4o-mini-2024-07-18") == PRICES["gpt-4o-mini"]
    assert rate_for("gpt-4o-2024-08-06") == PRICES["gpt-4o"]
    assert rate_for("claude-sonnet-4-5-20250929") == PRICES["claude-sonnet-4-5"]
    assert rate_for("claude-3-5-haiku-latest") == PRICES["claude-3-5-haiku"]
    # A prefix only counts at a "-" boundary: gpt-4o is not gpt-4.
    assert rate_for("gpt-4o") != PRICES["gpt-4"]


def test_an_unknown_model_is_estimated_at_the_dearest_listed_rates():
    cost = cost_of("llama3.2:3b", 2_000, 1_000)
    assert cost.estimated is True
    assert FALLBACK.input_per_million == max(r.input_per_million for r in PRICES.values())
    assert FALLBACK.output_per_million == max(r.output_per_million for r in PRICES.values())
    expected = (2_000 * FALLBACK.input_per_million + 1_000 * FALLBACK.output_per_million) / 1e6
    assert cost.usd == pytest.approx(expected)
    # Never cheaper than any listed model for the same tokens.
    assert all(cost.usd >= cost_of(name, 2_000, 1_000).usd for name in PRICES)
