"""Requests and tokens per minute in the real Redis, across processes."""

import time
import uuid

import pytest
import redis
from django.conf import settings

from tests.budgets import in_processes
from vectorbea.budgets.ratelimit import acquire


@pytest.fixture
def workspace_id():
    """A workspace of this test's own; its keys are deleted afterwards."""
    workspace_id = uuid.uuid4()
    yield workspace_id
    client = redis.Redis.from_url(settings.REDIS_URL)
    keys = list(client.scan_iter(f"{settings.REDIS_PREFIX}:rl:{workspace_id}:*"))
    if keys:
        client.delete(*keys)


def burst(workspace_id: str, count: str) -> list[float]:
    """In another process: `count` acquisitions as fast as they go."""
    return [
        acquire(workspace_id, "openai", requests_per_minute=10, tokens_per_minute=None, tokens=1)
        for _ in range(int(count))
    ]


def test_a_burst_from_two_processes_admits_exactly_the_limit(workspace_id):
    argv = [str(workspace_id), "50"]
    first, second = in_processes("tests.budgets.test_ratelimit:burst", argv, argv)
    waits = first + second

    assert len(waits) == 100
    assert waits.count(0.0) == 10
    assert all(0 < wait <= 60 for wait in waits if wait)


def test_tokens_per_minute_admit_what_fits_in_the_window(workspace_id):
    def take(tokens: int) -> float:
        return acquire(
            workspace_id,
            "anthropic",
            requests_per_minute=None,
            tokens_per_minute=1000,
            tokens=tokens,
        )

    assert take(600) == 0.0
    assert 59 < take(600) <= 60  # only once the first request leaves the window
    assert take(400) == 0.0  # exactly the limit
    assert 59 < take(1) <= 60
    # Another provider, another window.
    assert (
        acquire(
            workspace_id, "openai", requests_per_minute=None, tokens_per_minute=1000, tokens=1000
        )
        == 0.0
    )


def test_a_request_larger_than_the_token_limit_gets_the_empty_window(workspace_id):
    def take(tokens: int) -> float:
        return acquire(
            workspace_id,
            "openai",
            requests_per_minute=None,
            tokens_per_minute=100,
            tokens=tokens,
            window_seconds=1,
        )

    assert take(10) == 0.0
    too_big = take(500)
    assert 0 < too_big <= 1  # waits for the window to empty, not forever
    time.sleep(too_big)
    assert take(500) == 0.0
    assert 0.9 < take(1) <= 1  # and the window is full until it leaves


def test_a_refused_caller_that_waits_the_time_it_was_told_gets_in(workspace_id):
    def take() -> float:
        return acquire(
            workspace_id,
            "openai",
            requests_per_minute=2,
            tokens_per_minute=None,
            tokens=100,
            window_seconds=2,
        )

    assert take() == 0.0
    time.sleep(0.5)
    assert take() == 0.0
    time.sleep(0.3)
    wait = take()
    assert 1.0 < wait <= 1.2  # the first request leaves the window 2 s after it came
    assert take() > 0  # refusals record nothing
    time.sleep(wait)
    assert take() == 0.0
    assert take() > 0  # the second request is still in the window


def test_without_limits_it_admits_without_asking_redis(workspace_id, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there

    for _ in range(3):
        assert (
            acquire(
                workspace_id,
                "openai",
                requests_per_minute=None,
                tokens_per_minute=None,
                tokens=10**9,
            )
            == 0.0
        )

    with pytest.raises(redis.ConnectionError):
        acquire(workspace_id, "openai", requests_per_minute=1, tokens_per_minute=None, tokens=1)
