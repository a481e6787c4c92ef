"""The workspace socket: members subscribe to topics and get their fragments as runs change."""

import json

import pytest
from asgiref.sync import sync_to_async

from tests.support.workflows import chain, publish
from tests.ws.support import run_async
from tests.ws.test_run_timeline import communicator, note
from vectorbea.runs.commands import start_run
from vectorbea.runs.topics import TOPICS

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def echo_topic():
    TOPICS["echo"] = lambda user, access, run_id: (
        f'<span id="echo">{user.username} {access.workspace.slug} {run_id}</span>'
    )
    yield
    del TOPICS["echo"]


def test_a_subscribed_topic_renders_when_a_run_changes(alice, acme, echo_topic):
    run = start_run(publish(acme, chain(1)), {})

    async def scenario() -> str:
        comm = communicator(alice, "/ws/w/acme/")
        connected, _ = await comm.connect()
        assert connected
        await comm.send_to(text_data=json.dumps({"topics": ["echo", "no-such-topic"]}))
        await comm.receive_nothing(timeout=0.2)
        await sync_to_async(note)(run.id, "moved on")
        html = await comm.receive_from(timeout=5)
        await comm.disconnect()
        return html

    assert run_async(scenario) == f'<span id="echo">alice acme {run.id}</span>'


def test_a_stranger_cannot_open_the_workspace_socket(bob, acme):
    async def scenario() -> bool:
        comm = communicator(bob, "/ws/w/acme/")
        connected, _ = await comm.connect()
        await comm.disconnect()
        return connected

    assert run_async(scenario) is False
