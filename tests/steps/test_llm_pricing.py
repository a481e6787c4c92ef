"""Costs from the price table; an unknown model is charged the dearest rate, flagged."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

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


def test_a_pro_model_is_priced_as_itself_not_as_the_model_its_name_starts_with():
    assert cost_of("o1-pro", 1_000_000, 1_000_000).usd == pytest.approx(150 + 600)
    assert cost_of("o3-pro", 1_000_000, 1_000_000).usd == pytest.approx(20 + 80)
    assert cost_of("gpt-5-pro", 1_000_000, 1_000_000).usd == pytest.approx(15 + 120)
    assert rate_for("o1-pro-2025-03-19") == PRICES["o1-pro"]
    assert rate_for("o3-pro-2025-06-10") == PRICES["o3-pro"]
    assert rate_for("gpt-5-pro-2025-10-06") == PRICES["gpt-5-pro"]
    assert not cost_of("gpt-5-pro", 10, 10).estimated


def test_only_a_dated_snapshot_or_latest_alias_shares_its_base_models_price():
    assert rate_for("gpt-4-0613") == PRICES["gpt-4"]
    assert rate_for("gpt-5-mini-2025-08-07") == PRICES["gpt-5-mini"]
    assert rate_for("claude-opus-4-1-20250805") == PRICES["claude-opus-4-1"]
    # Another suffix names another model: unknown, so priced at the dearest rates.
    for model in ("o3-deep-research", "gpt-4o-mini-tts", "gpt-4-1106-preview", "o1-preview"):
        assert rate_for(model) is None, model
        assert cost_of(model, 1000, 1000).estimated


@given(
    name=st.sampled_from(sorted(PRICES)),
    suffix=st.from_regex(r"-[a-z][a-z0-9]{0,11}", fullmatch=True).filter(
        lambda suffix: suffix != "-latest"
    ),
)
def test_a_longer_unlisted_model_name_never_costs_less_than_the_name_it_starts_with(name, suffix):
    longer = name + suffix
    if longer in PRICES:  # a listed model of its own ("gpt-5-mini"): its own price
        assert rate_for(longer) == PRICES[longer]
        return
    assert cost_of(longer, 5_000, 1_000).usd >= cost_of(name, 5_000, 1_000).usd
    assert cost_of(longer, 5_000, 1_000).estimated
