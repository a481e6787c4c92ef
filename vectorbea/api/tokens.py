"""The named actions on API tokens: create one (its value is returned once, never
stored), find the token a request presents, note its use, revoke it.

A token stands for the person who created it: it works only while that person is an active
member of its workspace whose role may do everything the token's role may
(`creator_problem`). Every request checks this against the creator's role as it is now, so
no way of removing or demoting a member (the members page, the admin, deleting or
switching off the account) leaves a token working; the members page also revokes such
tokens at once (`revoke_unbacked`), so the tokens page shows them revoked."""

import hashlib
import hmac
import re
import secrets
from datetime import timedelta
from typing import Any
from uuid import UUID

from django.db import IntegrityError, transaction
from django.db.models import OuterRef, Q, QuerySet, Subquery
from django.utils import timezone

from vectorbea.accounts.access import ROLE_CAPABILITIES
from vectorbea.accounts.models import Membership, Role, Workspace
from vectorbea.api.models import ApiToken

TOKEN_SHAPE = re.compile(r"vb_([0-9a-f]{8})_([A-Za-z0-9_-]{43})")
LAST_USED_EVERY = timedelta(minutes=1)
DEFAULT_LIFETIME = timedelta(days=90)


class NameTaken(Exception):
    """Another active token of the workspace has this name."""


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(
    workspace: Workspace,
    name: str,
    role: str,
    created_by: Any,
    lifetime: timedelta | None = DEFAULT_LIFETIME,
) -> tuple[ApiToken, str]:
    """A new token and its value: `vb_<prefix>_<secret>`, 8 hex digits and 256 random bits.
    It expires after `lifetime` (None: never). The value is not kept anywhere: show it to
    the person once."""
    expires_at = timezone.now() + lifetime if lifetime is not None else None
    for _ in range(5):
        prefix = secrets.token_hex(4)
        value = f"vb_{prefix}_{secrets.token_urlsafe(32)}"
        try:
            with transaction.atomic():
                token = ApiToken.objects.create(
                    workspace=workspace,
                    name=name,
                    role=role,
                    prefix=prefix,
                    secret_hash=digest(value),
                    created_by=created_by,
                    expires_at=expires_at,
                )
        except IntegrityError:
            if ApiToken.objects.filter(prefix=prefix).exists():
                continue  # two tokens drew the same 32-bit prefix: draw again
            raise NameTaken(name) from None
        return token, value
    raise RuntimeError("Could not draw an unused token prefix")


def with_creator_role(tokens: QuerySet[ApiToken]) -> QuerySet[ApiToken]:
    """`tokens`, each with its creator and `creator_role`: the creator's role in the
    token's workspace now (None: not a member), read in the same query."""
    role = Membership.objects.filter(
        workspace_id=OuterRef("workspace_id"), user_id=OuterRef("created_by_id")
    ).values("role")[:1]
    return tokens.select_related("created_by").annotate(creator_role=Subquery(role))


def find_token(value: str) -> ApiToken | None:
    """The token `value` is (revoked and expired ones too: the caller says why they are
    refused), with its workspace and its creator's role; or None. The digest is compared in
    constant time."""
    match = TOKEN_SHAPE.fullmatch(value)
    if match is None:
        return None
    token = (
        with_creator_role(ApiToken.objects.select_related("workspace"))
        .filter(prefix=match[1])
        .first()
    )
    if token is None or not hmac.compare_digest(token.secret_hash, digest(value)):
        return None
    return token


def _a(role: str) -> str:
    label = Role(role).label
    return f"{'an' if label[0] in 'AEIOU' else 'a'} {label}"


def creator_problem(token: ApiToken, creator_role: str | None) -> str | None:
    """Why the person behind `token` does not back it (None: they do). `creator_role` is
    their role in the token's workspace now (None: not a member). The token's role must
    not reach beyond theirs: each of its capabilities must be one of theirs."""
    creator = token.created_by
    if creator is None:
        return "the account that created it was deleted"
    name = creator.get_username()
    if not creator.is_active:
        return f"{name}, who created it, can no longer sign in"
    if creator_role is None:
        return f"{name}, who created it, left the workspace"
    if not ROLE_CAPABILITIES[token.role] <= ROLE_CAPABILITIES[creator_role]:
        return (
            f"{name}, who created it, is now {_a(creator_role)}, who may not do all that "
            f"{_a(token.role)} token does"
        )
    return None


def note_use(token: ApiToken) -> None:
    """Set "last used", at most once a minute per token: one conditional UPDATE, and none
    at all while the value read with the token is recent."""
    now = timezone.now()
    if token.last_used_at is not None and now - token.last_used_at < LAST_USED_EVERY:
        return
    ApiToken.objects.filter(pk=token.pk).filter(
        Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - LAST_USED_EVERY)
    ).update(last_used_at=now)


def revoke_token(token: ApiToken, reason: str = "") -> bool:
    """Revoke a token at once. `reason` says why, as a clause ("alice revoked it", "bob,
    who created it, left the workspace"). False if it already was."""
    now = timezone.now()
    revoked = ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(
        revoked_at=now, revoked_reason=reason[:200]
    )
    if revoked:
        token.revoked_at, token.revoked_reason = now, reason[:200]
    return bool(revoked)


def revoke_unbacked(workspace_id: UUID, created_by_id: int | None = None) -> int:
    """Revoke the workspace's tokens (those `created_by_id` made, if given) whose creator
    does not back them (`creator_problem`). Returns how many were revoked."""
    active = ApiToken.objects.filter(workspace_id=workspace_id, revoked_at__isnull=True)
    if created_by_id is not None:
        active = active.filter(created_by_id=created_by_id)
    revoked = 0
    for token in with_creator_role(active):
        problem = creator_problem(token, token.creator_role)
        if problem is not None and revoke_token(token, problem):
            revoked += 1
    return revoked
