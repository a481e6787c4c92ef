"""Calling the API as a program would: JSON in, JSON out, a bearer token."""

import json
from typing import Any

from django.test import Client

from vectorbea.accounts.models import Workspace
from vectorbea.api.tokens import create_token


def token_for(workspace: Workspace, role: str, name: str | None = None) -> str:
    _, value = create_token(workspace, name or f"{role} bot", role, None)
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
