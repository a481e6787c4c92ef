"""The named actions on API tokens: create one (its value is returned once, never
stored), find the token a request presents, note its use, revoke it."""

import hashlib
import hmac
import re
import secrets
from datetime import timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from vectorbea.accounts.models import Workspace
from vectorbea.api.models import ApiToken

TOKEN_SHAPE = re.compile(r"vb_([0-9a-f]{8})_([A-Za-z0-9_-]{43})")
LAST_USED_EVERY = timedelta(minutes=1)


class NameTaken(Exception):
    """Another active token of the workspace has this name."""


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(
    workspace: Workspace, name: str, role: str, created_by: Any
) -> tuple[ApiToken, str]:
    """A new token and its value: `vb_<prefix>_<secret>`, 8 hex digits and 256 random bits.
    The value is not kept anywhere: show it to the person once."""
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
                )
        except IntegrityError:
            if ApiToken.objects.filter(prefix=prefix).exists():
                continue  # two tokens drew the same 32-bit prefix: draw again
            raise NameTaken(name) from None
        return token, value
    raise RuntimeError("Could not draw an unused token prefix")


def find_token(value: str) -> ApiToken | None:
    """The active token `value` is, or None. The digest is compared in constant time."""
    match = TOKEN_SHAPE.fullmatch(value)
    if match is None:
        return None
    token = (
        ApiToken.objects.select_related("workspace")
        .filter(prefix=match[1], revoked_at__isnull=True)
        .first()
    )
    if token is None or not hmac.compare_digest(token.secret_hash, digest(value)):
        return None
    return token


def note_use(token: ApiToken) -> None:
    """Set "last used", at most once a minute per token: one conditional UPDATE, and none
    at all while the value read with the token is recent."""
    now = timezone.now()
    if token.last_used_at is not None and now - token.last_used_at < LAST_USED_EVERY:
        return
    ApiToken.objects.filter(pk=token.pk).filter(
        Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - LAST_USED_EVERY)
    ).update(last_used_at=now)


def revoke_token(token: ApiToken) -> bool:
    """Revoke a token at once. False if it already was."""
    now = timezone.now()
    revoked = ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=now)
    token.revoked_at = token.revoked_at or now
    return bool(revoked)
