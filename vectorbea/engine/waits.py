"""Engine-native step kinds: steps the engine moves itself, with no worker and no lease.

A ``delay`` parks its step until a time; an ``approval`` parks it until a person decides
(or its timeout passes). ``decide`` emits their events; their handlers never run.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from vectorbea.engine.errors import ErrorClass, StepError

DELAY_KIND = "delay"
APPROVAL_KIND = "approval"
ENGINE_KINDS = frozenset({DELAY_KIND, APPROVAL_KIND})

APPROVED_PORT = "approved"
DENIED_PORT = "denied"
APPROVAL_PORTS = (APPROVED_PORT, DENIED_PORT)
# The port an edge without a port stands for, for kinds that have several ports.
DEFAULT_PORTS: Mapping[str, str] = {APPROVAL_KIND: APPROVED_PORT}

WAIT_REASON_DELAY = "delay"
WAIT_REASON_APPROVAL = "approval"

MAX_DELAY_SECONDS = 30 * 24 * 3600
MAX_APPROVAL_TIMEOUT_SECONDS = 365 * 24 * 3600
ON_TIMEOUT_CHOICES = ("deny", "approve")


def delay_until(config: Mapping[str, Any], now: datetime) -> datetime:
    """When a delay step with this (rendered) config, reached at ``now``, is over."""
    has_seconds, has_until = "seconds" in config, "until" in config
    if has_seconds == has_until:
        raise _bad_config("A delay needs exactly one of 'seconds' or 'until'.")
    if has_seconds:
        seconds = config["seconds"]
        if not _is_number(seconds) or not 0 < seconds <= MAX_DELAY_SECONDS:
            raise _bad_config(
                f"A delay's 'seconds' must be a number above 0 and at most {MAX_DELAY_SECONDS} "
                f"(30 days); got {seconds!r}."
            )
        return now + timedelta(seconds=seconds)
    return parse_utc(config["until"], "A delay's 'until'")


def approval_timeout_at(config: Mapping[str, Any], now: datetime) -> datetime | None:
    seconds = config.get("timeout_seconds")
    if seconds is None:
        return None
    if not _is_number(seconds) or not 0 < seconds <= MAX_APPROVAL_TIMEOUT_SECONDS:
        raise _bad_config(
            "An approval's 'timeout_seconds' must be a number above 0 and at most "
            f"{MAX_APPROVAL_TIMEOUT_SECONDS} (365 days); got {seconds!r}."
        )
    return now + timedelta(seconds=seconds)


def approval_on_timeout(config: Mapping[str, Any]) -> str:
    choice = config.get("on_timeout", "deny")
    if choice not in ON_TIMEOUT_CHOICES:
        raise _bad_config(
            f"An approval's 'on_timeout' must be 'deny' or 'approve'; got {choice!r}."
        )
    return str(choice)


def approval_text(config: Mapping[str, Any], key: str, default: str = "") -> str:
    value = config.get(key, default)
    if not isinstance(value, str):
        raise _bad_config(f"An approval's '{key}' must be text.")
    return value


def parse_utc(value: Any, what: str) -> datetime:
    """An ISO 8601 date-time with a time zone, as UTC."""
    if not isinstance(value, str):
        raise _bad_config(f"{what} must be an ISO 8601 date-time; got {value!r}.")
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise _bad_config(
            f"{what} must be an ISO 8601 date-time such as 2025-01-31T09:00:00Z; got {value!r}."
        ) from None
    if parsed.tzinfo is None:
        raise _bad_config(f"{what} needs a time zone (end it with Z for UTC); got {value!r}.")
    return parsed.astimezone(UTC)


def _bad_config(message: str) -> StepError:
    return StepError(ErrorClass.PERMANENT, message)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
