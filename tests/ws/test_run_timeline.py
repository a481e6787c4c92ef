"""The run timeline websocket over the real channels_redis layer: backfill by seq, live
pushes after commit, no gaps or duplicates across reconnects, access checks, escaping."""

import json
import re

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client

from tests.support.workflows import chain, publish
from tests.ws.support import run_async
from vectorbea.asgi import application
from vectorbea.engine import OutputCorrected
from vectorbea.eventlog import store
from vectorbea.runs.commands import cancel_run, start_run

pytestmark = pytest.mark.django_db(transaction=True)


def session_cookie(user) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


def communicator(
    user, path: str, origin: str = "http://localhost", host: str = "localhost"
) -> WebsocketCommunicator:
    headers = [(b"origin", origin.encode()), (b"host", host.encode())]
    if user is not None:
        headers.append((b"cookie", f"sessionid={session_cookie(user)}".encode()))
    return WebsocketCommunicator(application, path, headers=headers)


def seqs(html: str) -> list[int]:
    return [int(s) for s in re.findall(r'data-seq="(\d+)"', html)]


def note(run_id, text: str) -> None:
    loaded = store.load(run_id)
    correction = OutputCorrected("s0", {"note": text}, 1, "tester", text)
    store.append(
        run_id, loaded.state, lambda s, now: [correction], loaded.definition, now=loaded.clock.now()
    )


async def receive_until(
    comm: WebsocketCommunicator, last_seq: int, timeout: float = 5
) -> list[int]:
    got: list[int] = []
    while not got or got[-1] < last_seq:
        got += seqs(await comm.receive_from(timeout=timeout))
    return got


def test_it_backfills_then_pushes_new_events_in_order_without_gaps(alice, acme):
    run = start_run(publish(acme, chain(2)), {})
    path = f"/ws/w/acme/runs/{run.id}/"

    async def scenario() -> list[int]:
        comm = communicator(alice, path)
        connected, _ = await comm.connect()
        assert connected
        await comm.send_to(text_data=json.dumps({"after": 0}))
        first = seqs(await comm.receive_from(timeout=5))
        for i in range(5):
            await sync_to_async(note)(run.id, f"note {i}")
        rest = await receive_until(comm, 2 + 5)
        assert await comm.receive_nothing(timeout=0.3)
        await comm.disconnect()
        return first + rest

    assert run_async(scenario) == list(range(1, 8))


def test_a_reconnecting_client_gets_exactly_what_it_missed(alice, acme):
    run = start_run(publish(acme, chain(2)), {})
    path = f"/ws/w/acme/runs/{run.id}/"

    async def scenario() -> list[int]:
        comm = communicator(alice, path)
        await comm.connect()
        await comm.send_to(text_data=json.dumps({"after": 0}))
        seen = seqs(await comm.receive_from(timeout=5))
        await comm.disconnect()  # the network drops...
        for i in range(3):  # ...while the run moves on
            await sync_to_async(note)(run.id, f"while away {i}")
        again = communicator(alice, path)
        await again.connect()
        await again.send_to(text_data=json.dumps({"after": seen[-1]}))
        seen += await receive_until(again, 5)
        await again.disconnect()
        return seen

    assert run_async(scenario) == [1, 2, 3, 4, 5]


@pytest.mark.parametrize("who", ["stranger", "anonymous"])
def test_only_members_can_subscribe(who, alice, bob, acme):
    run = start_run(publish(acme, chain(1)), {})
    user = bob if who == "stranger" else None

    async def scenario() -> bool:
        comm = communicator(user, f"/ws/w/acme/runs/{run.id}/")
        connected, _ = await comm.connect()
        await comm.disconnect()
        return connected

    assert run_async(scenario) is False


def test_a_foreign_origin_is_refused(alice, acme):
    run = start_run(publish(acme, chain(1)), {})

    async def scenario() -> bool:
        comm = communicator(alice, f"/ws/w/acme/runs/{run.id}/", origin="https://evil.example")
        connected, _ = await comm.connect()
        await comm.disconnect()
        return connected

    assert run_async(scenario) is False


def test_event_content_is_escaped_in_pushed_fragments(alice, acme):
    definition = chain(1)
    definition["steps"][0]["name"] = "<script>alert(1)</script>"
    run = start_run(publish(acme, definition), {})
    cancel_run(run.id, actor="<img src=x onerror=alert(2)>", reason="<b>bold</b>")

    async def scenario() -> str:
        comm = communicator(alice, f"/ws/w/acme/runs/{run.id}/")
        await comm.connect()
        await comm.send_to(text_data=json.dumps({"after": 0}))
        html = await comm.receive_from(timeout=5)
        await comm.disconnect()
        return html

    html = run_async(scenario)
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html
    assert "<img src=x" not in html and "<b>bold</b>" not in html


def test_a_quiet_socket_stays_open_and_still_gets_pushes(alice, acme):
    """Nothing happens on the run for longer than the channel layer's 5 s blocking read:
    the consumer must still be there when the next event comes."""
    run = start_run(publish(acme, chain(2)), {})

    async def scenario() -> list[int]:
        comm = communicator(alice, f"/ws/w/acme/runs/{run.id}/")
        await comm.connect()
        await comm.send_to(text_data=json.dumps({"after": 2}))
        assert await comm.receive_nothing(timeout=7)
        await sync_to_async(note)(run.id, "after a quiet while")
        got = seqs(await comm.receive_from(timeout=5))
        await comm.disconnect()
        return got

    assert run_async(scenario) == [3]
