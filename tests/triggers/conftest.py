"""Fixtures for webhooks and schedules: a published workflow in Acme whose input needs a
ticket, and a way to send signed deliveries to it."""

import json
import time
from typing import Any

import pytest
from django.test import Client

from tests.conftest import make_member
from tests.support.workflows import chain, publish
from vectorbea.accounts.models import Role
from vectorbea.triggers import webhooks

TICKET_SCHEMA = {
    "type": "object",
    "properties": {"ticket": {"type": "string"}, "priority": {"type": "integer"}},
    "required": ["ticket"],
}


@pytest.fixture
def workflow(acme):
    return publish(acme, {**chain(1), "input_schema": TICKET_SCHEMA}, name="Triage a ticket")


@pytest.fixture
def hook(workflow, alice):
    """(endpoint, secret) for the workflow."""
    return webhooks.create_endpoint(workflow, alice)


@pytest.fixture
def carol(acme):
    """A viewer in Acme."""
    return make_member("carol", acme, Role.VIEWER)


@pytest.fixture
def dave(acme):
    """An editor in Acme."""
    return make_member("dave", acme, Role.EDITOR)


def deliver(
    client: Client,
    endpoint,
    secret: str,
    body: Any,
    *,
    event_id: str = "evt-1",
    timestamp: int | None = None,
    sign_as: str | None = None,
    omit: tuple[str, ...] = (),
):
    """POST a delivery signed like a sender would (or not, as the arguments say)."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    ts = str(int(time.time()) if timestamp is None else timestamp)
    headers = {
        "Vectorbea-Timestamp": ts,
        "Vectorbea-Event-Id": event_id,
        "Vectorbea-Signature": webhooks.signature(sign_as or secret, ts, event_id, raw),
    }
    for name in omit:
        headers.pop(name)
    return client.post(
        f"/hooks/{endpoint.public_id}/", raw, content_type="application/json", headers=headers
    )
