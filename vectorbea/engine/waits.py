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
# A step a workspace limit deferred (StepDeferred.reason): it makes the same attempt again
# when the wait is over.
LIMIT_WAIT_REASONS = frozenset({"rate_limited", "budget", "concurrency"})

MAX_DELAY_SECONDS = 30 * 24 * 3600
MAX_APPROVAL_TIMEOUT_SECONDS = 365 * 24 * 3600
ON_TIMEOUT_CHOICES = ("deny", "approve", "escalate")
ESCALATED_ON_TIMEOUT_CHOICES = ("deny", "approve")  # one escalation level, then a verdict

# Who may decide a gate: members with one of these workspace roles, or named users.
WORKSPACE_ROLES = ("owner", "admin", "editor", "approver", "viewer")
DEFAULT_APPROVER_ROLES = ("owner", "admin", "approver")
MAX_REQUIRED_APPROVALS = 20
MAX_APPROVER_USERS = 100
# What an approver may fill in; the values become the step's output `fields`.
FIELD_TYPES = ("text", "long_text", "number", "boolean")
MAX_FIELDS = 20
MAX_FIELD_TEXT = 100_000


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
            f"An approval's 'on_timeout' must be 'deny', 'approve' or 'escalate'; got {choice!r}."
        )
    if choice == "escalate" and not isinstance(config.get("escalate"), Mapping):
        raise _bad_config("An approval that escalates on timeout needs 'escalate' settings.")
    return str(choice)


def gate_key(step_id: str, attempt: int) -> str:
    """A gate is one opening of an approval step: its step and attempt."""
    return f"{step_id}:{attempt}"


def default_approvers() -> dict[str, list[str]]:
    return {"roles": list(DEFAULT_APPROVER_ROLES), "users": []}


def approval_approvers(config: Mapping[str, Any], what: str = "An approval's") -> dict[str, Any]:
    """{"roles": [...], "users": [...]}: without 'approvers', owners, admins and approvers.
    Given 'approvers', exactly what it names (roles default to none)."""
    if config.get("approvers") is None:
        return default_approvers()
    approvers = config["approvers"]
    if not isinstance(approvers, Mapping):
        raise _bad_config(f"{what} 'approvers' must be an object with 'roles' and/or 'users'.")
    roles = approvers.get("roles") or []
    users = approvers.get("users") or []
    if isinstance(users, str):  # one templated name, e.g. {{ input.manager }}
        users = [users]
    if not isinstance(roles, list) or any(role not in WORKSPACE_ROLES for role in roles):
        raise _bad_config(
            f"{what} 'approvers.roles' must list workspace roles ({', '.join(WORKSPACE_ROLES)}); "
            f"got {roles!r}."
        )
    if not isinstance(users, list) or not all(isinstance(u, str) and u.strip() for u in users):
        raise _bad_config(f"{what} 'approvers.users' must list usernames; got {users!r}.")
    if len(users) > MAX_APPROVER_USERS:
        raise _bad_config(f"{what} 'approvers.users' names more than {MAX_APPROVER_USERS} people.")
    if not roles and not users:
        raise _bad_config(f"{what} 'approvers' names nobody: give roles or users.")
    return {
        "roles": [role for role in WORKSPACE_ROLES if role in roles],
        "users": list(dict.fromkeys(user.strip() for user in users)),
    }


def approval_required(config: Mapping[str, Any]) -> int:
    required = config.get("required_approvals", 1)
    if (
        not isinstance(required, int)
        or isinstance(required, bool)
        or not 1 <= required <= MAX_REQUIRED_APPROVALS
    ):
        raise _bad_config(
            "An approval's 'required_approvals' must be a whole number from 1 to "
            f"{MAX_REQUIRED_APPROVALS}; got {required!r}."
        )
    return required


def approval_allows_self(config: Mapping[str, Any]) -> bool:
    value = config.get("allow_self_approval", False)
    if not isinstance(value, bool):
        raise _bad_config("An approval's 'allow_self_approval' must be true or false.")
    return value


def approval_form(config: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The fields the approver fills in: [{name, label, type, required, default}]."""
    specs = config.get("fields") or []
    if not isinstance(specs, list) or len(specs) > MAX_FIELDS:
        raise _bad_config(f"An approval's 'fields' must be a list of at most {MAX_FIELDS} fields.")
    form: list[dict[str, Any]] = []
    for index, spec in enumerate(specs):
        if not isinstance(spec, Mapping) or not isinstance(spec.get("name"), str):
            raise _bad_config(f"An approval's fields[{index}] needs a 'name'.")
        name = spec["name"]
        kind = spec.get("type", "text")
        if kind not in FIELD_TYPES:
            raise _bad_config(
                f"An approval's field '{name}' has type {kind!r}; use one of "
                f"{', '.join(FIELD_TYPES)}."
            )
        if any(existing["name"] == name for existing in form):
            raise _bad_config(f"An approval names the field '{name}' twice.")
        form.append(
            {
                "name": name,
                "label": str(spec.get("label") or name),
                "type": kind,
                "required": bool(spec.get("required", False)),
                "default": spec.get("default"),
            }
        )
    return form


def approval_escalation(config: Mapping[str, Any], on_timeout: str) -> dict[str, Any] | None:
    """Who the gate goes to when nobody decided in time, with its new timeout and verdict."""
    if on_timeout != "escalate":
        return None
    escalate = config["escalate"]
    what = "An approval's 'escalate'"
    if escalate.get("approvers") is None:
        raise _bad_config(f"{what} needs 'approvers' (roles and/or users).")
    approvers = approval_approvers(escalate, what)
    seconds = escalate.get("timeout_seconds")
    if seconds is not None and (
        not _is_number(seconds) or not 0 < seconds <= MAX_APPROVAL_TIMEOUT_SECONDS
    ):
        raise _bad_config(
            f"{what} 'timeout_seconds' must be a number above 0 and at most "
            f"{MAX_APPROVAL_TIMEOUT_SECONDS}; got {seconds!r}."
        )
    then = escalate.get("on_timeout", "deny")
    if then not in ESCALATED_ON_TIMEOUT_CHOICES:
        raise _bad_config(f"{what} 'on_timeout' must be 'deny' or 'approve'; got {then!r}.")
    return {"approvers": approvers, "timeout_seconds": seconds, "on_timeout": then}


def is_listed_approver(approvers: Mapping[str, Any], username: str, role: str) -> bool:
    """The gate names this person: by their workspace role or by their username."""
    return role in approvers.get("roles", ()) or username in approvers.get("users", ())


def decider_problem(
    gate: Mapping[str, Any],
    username: str,
    role: str | None,
    started_by: str | None,
    person: str | None = None,
) -> str | None:
    """Why this person may not decide this gate (None: they may). `gate` is the step's
    gate state; `role` their workspace role (None: not a member). `person` is who stands
    behind `username` when that is a program (an API token's creator); the run's initiator
    `started_by` is compared with them."""
    if role is None:
        return "You are not a member of this workspace."
    if not is_listed_approver(gate.get("approvers") or default_approvers(), username, role):
        return "You are not one of the people who may decide this approval."
    person = person or username
    if person and person == started_by and not gate.get("allow_self_approval"):
        if person == username:
            return "You started this run, and this approval does not let you approve your own run."
        return (
            f"{username} was created by {person}, who started this run; this approval does "
            "not let anyone approve their own run."
        )
    if any(grant.get("by") == username for grant in gate.get("grants", ())):
        return "You have already approved; it needs approvals from other people too."
    return None


def field_values(
    form: list[Mapping[str, Any]], submitted: Mapping[str, Any], *, approving: bool
) -> tuple[dict[str, Any], dict[str, str]]:
    """The approver's field values, typed, and problems by field name. Required fields are
    required to approve, not to deny."""
    values: dict[str, Any] = {}
    problems: dict[str, str] = {}
    for spec in form:
        name, kind = spec["name"], spec["type"]
        raw = submitted.get(name)
        if kind == "boolean":
            values[name] = raw in (True, "on", "true", "1", 1)
            continue
        text = "" if raw is None else str(raw).strip() if kind != "long_text" else str(raw)
        if not text.strip():
            if spec.get("required") and approving:
                problems[name] = f"{spec.get('label') or name} is required to approve."
            continue
        if len(text) > MAX_FIELD_TEXT:
            problems[name] = f"{spec.get('label') or name} is too long."
        elif kind == "number":
            try:
                number = float(text)
            except ValueError:
                problems[name] = f"{spec.get('label') or name} must be a number."
                continue
            if not math.isfinite(number):
                problems[name] = f"{spec.get('label') or name} must be a number."
                continue
            values[name] = int(number) if number.is_integer() and "." not in text else number
        else:
            values[name] = text
    return values, problems


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
