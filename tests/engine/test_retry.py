import pytest

from vectorbea.engine import RetryPolicy, backoff_seconds, retry_delay_seconds

NO_JITTER = RetryPolicy(
    initial_interval_seconds=2,
    backoff_coefficient=3,
    maximum_interval_seconds=50,
    maximum_attempts=5,
    jitter=0,
)


@pytest.mark.parametrize(("attempt", "expected"), [(1, 2), (2, 6), (3, 18), (4, 50), (99, 50)])
def test_backoff_grows_exponentially_up_to_the_maximum_interval(
    attempt: int, expected: float
) -> None:
    assert backoff_seconds(NO_JITTER, attempt, "seed") == expected


def test_backoff_survives_an_exponent_too_large_for_a_float() -> None:
    assert backoff_seconds(NO_JITTER, 10_000, "seed") == 50


def test_jitter_is_deterministic_for_a_seed_and_stays_within_its_fraction() -> None:
    policy = RetryPolicy(initial_interval_seconds=10, maximum_interval_seconds=10, jitter=0.1)
    delays = [backoff_seconds(policy, 1, f"run-{n}") for n in range(200)]

    assert backoff_seconds(policy, 1, "run-7") == delays[7]
    assert all(9 <= delay <= 11 for delay in delays)
    assert len(set(delays)) > 150
    assert min(delays) < 9.5 and max(delays) > 10.5


def test_retry_after_from_the_provider_is_honoured_even_beyond_the_maximum_interval() -> None:
    assert retry_delay_seconds(NO_JITTER, 1, "seed", retry_after_seconds=120) == 120


def test_retry_after_is_capped_at_one_hour() -> None:
    assert retry_delay_seconds(NO_JITTER, 1, "seed", retry_after_seconds=86_400) == 3600


def test_without_retry_after_the_delay_is_the_backoff() -> None:
    assert retry_delay_seconds(NO_JITTER, 2, "seed") == 6


def test_a_policy_reads_a_definition_retry_object_with_defaults_for_missing_keys() -> None:
    policy = RetryPolicy.from_json({"maximum_attempts": 5, "initial_interval_seconds": 3})

    assert policy == RetryPolicy(initial_interval_seconds=3, maximum_attempts=5)
    assert RetryPolicy.from_json(None) == RetryPolicy()
    assert RetryPolicy.from_json(policy.to_json()) == policy
