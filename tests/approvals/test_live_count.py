"""The navigation's count, live: the "inbox" topic of the workspace socket pushes the
count of gates waiting for this person whenever a run of the workspace changes."""

import json

import pytest
from asgiref.sync import sync_to_async

from tests.approvals.support import publish_gated
from tests.conftest import make_member
from tests.ws.support import run_async
from tests.ws.test_run_timeline import communicator
from vectorbea.accounts.models import Role
from vectorbea.runs.commands import decide_gate, start_run

pytestmark = pytest.mark.django_db(transaction=True)

INPUT = {"amount": 40, "customer": "Ada"}


async def count_pushed(comm, expected: str, timeout: float = 5) -> str:
    """Read fragments until the count says `expected` (a push per run change)."""
    while True:
        html = await comm.receive_from(timeout=timeout)
        if f">{expected}</span>" in html:
            return html


def test_the_count_rises_and_falls_live_for_an_approver(acme, alice):
    omar = make_member("omar", acme, Role.APPROVER)
    workflow = publish_gated(acme)

    async def scenario() -> list[str]:
        comm = communicator(omar, "/ws/w/acme/")
        connected, _ = await comm.connect()
        assert connected
        # Another script's message on this socket (the run page's) unsubscribes nothing.
        await comm.send_to(text_data=json.dumps({"topics": ["inbox"]}))
        await comm.send_to(text_data=json.dumps({"after": 3}))
        await comm.receive_nothing(timeout=0.2)
        run = await sync_to_async(start_run)(workflow, INPUT, started_by=alice)
        rose = await count_pushed(comm, "1")
        await sync_to_async(decide_gate)(run.id, "gate", approve=True, actor="omar")
        fell = await count_pushed(comm, "0")
        await comm.disconnect()
        return [rose, fell]

    rose, fell = run_async(scenario)
    assert 'id="inbox-count"' in rose and 'data-count="1"' in rose
    assert "hidden" in fell


def test_a_viewer_is_pushed_a_count_of_zero(acme, alice):
    vera = make_member("vera", acme, Role.VIEWER)
    workflow = publish_gated(acme)

    async def scenario() -> str:
        comm = communicator(vera, "/ws/w/acme/")
        await comm.connect()
        await comm.send_to(text_data=json.dumps({"topics": ["inbox"]}))
        await comm.receive_nothing(timeout=0.2)
        await sync_to_async(start_run)(workflow, INPUT, started_by=alice)
        html = await comm.receive_from(timeout=5)
        await comm.disconnect()
        return html

    assert 'data-count="0"' in run_async(scenario)
