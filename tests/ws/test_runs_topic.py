"""The run list's live rows: the "runs" topic of the workspace socket."""

import json

import pytest
from asgiref.sync import sync_to_async

from tests.support.workflows import chain, publish
from tests.ws.support import run_async
from tests.ws.test_run_timeline import communicator
from vectorbea.runs.commands import cancel_run, pause_run, start_run

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_changed_run_pushes_its_list_row_by_id(alice, acme):
    run = start_run(publish(acme, chain(2), name="<script>alert(1)</script>"), {})

    async def scenario() -> str:
        comm = communicator(alice, "/ws/w/acme/")
        connected, _ = await comm.connect()
        assert connected
        await comm.send_to(text_data=json.dumps({"topics": ["runs"]}))
        await comm.receive_nothing(timeout=0.2)
        await sync_to_async(pause_run)(run.id, actor="alice")
        html = await comm.receive_from(timeout=5)
        await comm.disconnect()
        return html

    html = run_async(scenario)
    assert html.startswith(f'<tr id="run-{run.id}" class="run-row" data-status="paused"')
    assert 'hx-swap-oob="true"' in html and 'name="run"' in html  # alice may act
    assert "<script>alert(1)" not in html and "&lt;script&gt;" in html


def test_a_member_of_another_workspace_gets_none_of_its_rows(alice, bob, acme, globex):
    ours = start_run(publish(acme, chain(1)), {})

    async def scenario() -> tuple[bool, bool, bool]:
        stranger = communicator(bob, "/ws/w/acme/")
        refused = not (await stranger.connect())[0]
        await stranger.disconnect()
        own = communicator(bob, "/ws/w/globex/")  # bob's own workspace socket
        connected, _ = await own.connect()
        await own.send_to(text_data=json.dumps({"topics": ["runs"]}))
        await own.receive_nothing(timeout=0.2)
        await sync_to_async(cancel_run)(ours.id, actor="alice")
        quiet = await own.receive_nothing(timeout=0.5)
        await own.disconnect()
        return refused, connected, quiet

    assert run_async(scenario) == (True, True, True)
