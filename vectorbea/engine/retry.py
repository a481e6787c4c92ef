"""Retry policy: how long to wait before the next attempt of a step."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

MAX_RETRY_AFTER_SECONDS = 3600.0


@dataclass(frozen=True)
class RetryPolicy:
    initial_interval_seconds: float = 1.0
    backoff_coefficient: float = 2.0
    maximum_interval_seconds: float = 60.0
    maximum_attempts: int = 3
    jitter: float = 0.1  # fraction of the delay added or removed, derived from a seed

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> RetryPolicy:
        """A policy from a definition's ``retry`` object; missing keys take the defaults."""
        data = data or {}
        default = cls()
        return cls(
            initial_interval_seconds=float(
                data.get("initial_interval_seconds", default.initial_interval_seconds)
            ),
            backoff_coefficient=float(data.get("backoff_coefficient", default.backoff_coefficient)),
            maximum_interval_seconds=float(
                data.get("maximum_interval_seconds", default.maximum_interval_seconds)
            ),
            maximum_attempts=int(data.get("maximum_attempts", default.maximum_attempts)),
            jitter=float(data.get("jitter", default.jitter)),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "initial_interval_seconds": self.initial_interval_seconds,
            "backoff_coefficient": self.backoff_coefficient,
            "maximum_interval_seconds": self.maximum_interval_seconds,
            "maximum_attempts": self.maximum_attempts,
            "jitter": self.jitter,
        }


def backoff_seconds(policy: RetryPolicy, attempt: int, seed: str) -> float:
    """Delay after failed ``attempt`` (1-based): exponential, capped, with seeded jitter."""
    try:
        raw = policy.initial_interval_seconds * policy.backoff_coefficient ** (attempt - 1)
    except OverflowError:
        raw = policy.maximum_interval_seconds
    base = min(policy.maximum_interval_seconds, raw)
    return base * (1.0 + policy.jitter * _unit_interval(seed))


def retry_delay_seconds(
    policy: RetryPolicy, attempt: int, seed: str, retry_after_seconds: float | None = None
) -> float:
    """Delay before the next attempt: the provider's Retry-After when given, else backoff."""
    if retry_after_seconds is not None:
        return min(max(0.0, retry_after_seconds), MAX_RETRY_AFTER_SECONDS)
    return backoff_seconds(policy, attempt, seed)


def _unit_interval(seed: str) -> float:
    """A number in [-1, 1) derived from ``seed`` alone."""
    digest = hashlib.sha256(seed.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**63 - 1.0
