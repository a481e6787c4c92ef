"""Who is calling: `Authorization: Bearer vb_…` names a token, the token names its
workspace and its role, and the role is judged by the same table as a member's
(accounts.access): a token may do exactly what a member with its role may do.

Nothing in a request chooses the workspace: it is always the token's."""

from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest
from ninja.errors import AuthenticationError
from ninja.security import HttpBearer

from vectorbea.accounts.access import Access, Capability
from vectorbea.accounts.models import Membership
from vectorbea.api import tokens
from vectorbea.api.errors import Refused
from vectorbea.api.models import ApiToken

MISSING = "Send an API token in the Authorization header: “Authorization: Bearer vb_…”."
INVALID = (
    "This API token is not valid: it may have been revoked, or mistyped. Create a new one in "
    "Settings → API tokens."
)


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
        tokens.note_use(found)
        access = token_access(found)
        if not access.can(self.capability):
            raise Refused(403, f"This token's role ({found.get_role_display()}) cannot do this.")
        return Caller(token=found, access=access)
