"""Calling the API as a program would: JSON in, JSON out, a bearer token."""

import json
from typing import Any

from django.test import Client

from tests.conftest import make_member
from vectorbea.accounts.models import Role, Workspace
from vectorbea.api.tokens import create_token


def token_creator(workspace: Workspace):
    """Who creates the tests' tokens: an owner of the workspace kept for that, so a token is
    backed whatever its role, and runs the tests start as alice are not its creator's."""
    return make_member(f"{workspace.slug}-keeper", workspace, Role.OWNER)


def token_for(workspace: Workspace, role: str, name: str | None = None, by=None) -> str:
    _, value = create_token(workspace, name or f"{role} bot", role, by or token_creator(workspace))
    return value


class ApiClient:
    def __init__(self, token: str | None) -> None:
        self.client = Client()
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}

    def get(self, path: str, **params: Any):
        return self.client.get(f"/api{path}", params, headers=self.headers)

    def post(self, path: str, body: Any = None, headers: dict[str, str] | None = None):
        return self.client.post(
            f"/api{path}",
            "" if body is None else json.dumps(body),
            content_type="application/json",
            headers={**self.headers, **(headers or {})},
        )

    def post_raw(self, path: str, data: bytes | str):
        return self.client.post(
            f"/api{path}", data, content_type="application/json", headers=self.headers
        )
