"""API tokens: a workspace's credentials for programs, each with a role of its own.

Only a SHA-256 digest of a token is stored (tokens are 256 random bits, so a fast hash is
enough); the token itself is shown once, when it is created. `prefix` is public: it finds
the row and tells tokens apart in lists.

A token works until it expires or is revoked, and only while the person who created it is
still a member of its workspace with a role that may do everything the token's role may
(see tokens.creator_problem).
"""

import uuid
from datetime import datetime

from django.conf import settings
from django.db import models
from django.utils import timezone

from vectorbea.accounts.models import Role, Workspace

TOKEN_ROLES = [(value, label) for value, label in Role.choices if value != Role.OWNER]


class ApiToken(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=60)
    # What the token may do: exactly what a member with this role may do (never owner).
    role = models.CharField(max_length=16, choices=TOKEN_ROLES)
    prefix = models.CharField(max_length=8, unique=True)
    secret_hash = models.CharField(max_length=64)  # sha256 hex of the whole token
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)  # None: never
    revoked_at = models.DateTimeField(null=True, blank=True)
    # Why, in words for the tokens page and the 401: "revoked by alice", "its creator left".
    revoked_reason = models.CharField(max_length=200, blank=True)

    class Meta:
        constraints = [
            # The name is the actor recorded in a run's events ("api:<name>").
            models.UniqueConstraint(
                fields=["workspace", "name"],
                condition=models.Q(revoked_at__isnull=True),
                name="one_active_token_per_name",
            ),
            models.CheckConstraint(condition=~models.Q(role=Role.OWNER), name="token_not_owner"),
        ]
        indexes = [models.Index(fields=["workspace", "created_at"])]

    def __str__(self) -> str:
        return f"API token {self.name!r} (vb_{self.prefix}_…)"

    def __repr__(self) -> str:
        return f"<ApiToken {self.id} {self.name!r} vb_{self.prefix}_…>"

    @property
    def is_active(self) -> bool:
        """Not revoked (it may have expired: it stays in the list until it is revoked)."""
        return self.revoked_at is None

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now

    @property
    def is_expired(self) -> bool:
        return self.expired(timezone.now())

    @property
    def masked(self) -> str:
        return f"vb_{self.prefix}_…"

    @property
    def actor(self) -> str:
        """The name recorded in runs for what this token does."""
        return f"api:{self.name}"
