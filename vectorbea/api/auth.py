"""Who is calling: `Authorization: Bearer vb_…` names a token, the token names its
workspace and its role, and the role is judged by the same table as a member's
(accounts.access): a token may do exactly what a member with its role may do.

Nothing in a request chooses the workspace: it is always the token's. A token that was
revoked, has expired, or whose creator does not back it (tokens.creator_problem: checked
on every request, and such a token is revoked there and then) is refused with a 401 that
says which."""

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.http import HttpRequest
from django.utils import timezone
from ninja.errors import AuthenticationError
from ninja.security import HttpBearer

from vectorbea.accounts.access import Access, Capability
from vectorbea.accounts.models import Membership
from vectorbea.api import tokens
from vectorbea.api.errors import Refused
from vectorbea.api.models import ApiToken
from vectorbea.runs.initiators import Initiator

MISSING = "Send an API token in the Authorization header: “Authorization: Bearer vb_…”."
INVALID = (
    "This API token is not valid: it may have been revoked, or mistyped. Create a new one in "
    "Settings → API tokens."
)
ANOTHER = "Create a new one in Settings → API tokens."


def _when(moment: datetime) -> str:
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def refusal(token: ApiToken, now: datetime) -> str | None:
    """Why a request with this token is refused (None: it is not). A token whose creator
    does not back it is revoked now, with that reason."""
    if token.revoked_at is None:
        problem = tokens.creator_problem(token, token.creator_role)  # type: ignore[attr-defined]
        if problem is not None:
            tokens.revoke_token(token, problem)
    if token.revoked_at is not None:
        why = f": {token.revoked_reason}" if token.revoked_reason else ""
        return f"This API token was revoked on {_when(token.revoked_at)}{why}. {ANOTHER}"
    if token.expires_at is not None and token.expired(now):
        return f"This API token expired on {_when(token.expires_at)}. {ANOTHER}"
    return None


@dataclass(frozen=True)
class Caller:
    """The token behind a request, standing in for a person wherever one is needed: its
    `username` ("api:<token name>") is the actor recorded in runs, and the name the
    approval rules judge (with the token's role)."""

    token: ApiToken
    access: Access
    is_authenticated = True
    pk = None

    @property
    def username(self) -> str:
        return self.token.actor

    @property
    def person(self) -> str | None:
        """The person behind the token, its creator: who the approval rules hold
        responsible (a token may not approve a run its creator started)."""
        creator = self.token.created_by
        return creator.get_username() if creator is not None else None

    @property
    def initiator(self) -> "Initiator":
        """Who a run this token starts counts as started by: its creator, via the token."""
        return Initiator(self.token.created_by, via=self.token.actor)

    @property
    def workspace(self) -> Any:
        return self.access.workspace


def token_access(token: ApiToken) -> Access:
    """The token's standing in its workspace: that of a member with the token's role."""
    membership = Membership(workspace=token.workspace, role=token.role)
    return Access(workspace=token.workspace, membership=membership)


class TokenAuth(HttpBearer):
    """Bearer token authentication requiring one capability (VIEW to read, ...)."""

    def __init__(self, capability: Capability = Capability.VIEW) -> None:
        super().__init__()
        self.capability = capability

    def __call__(self, request: HttpRequest) -> Caller:
        scheme, _, value = request.headers.get(self.header, "").partition(" ")
        if scheme.lower() != self.openapi_scheme or not value.strip():
            raise AuthenticationError(401, MISSING)
        return self.authenticate(request, value.strip())

    def authenticate(self, request: HttpRequest, token: str) -> Caller:
        found = tokens.find_token(token)
        if found is None:
            raise AuthenticationError(401, INVALID)
        refused = refusal(found, timezone.now())
        if refused is not None:
            raise AuthenticationError(401, refused)
        tokens.note_use(found)
        access = token_access(found)
        if not access.can(self.capability):
            raise Refused(403, f"This token's role ({found.get_role_display()}) cannot do this.")
        return Caller(token=found, access=access)
