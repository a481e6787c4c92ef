"""vectorbea_websocket_connections: up when a socket is accepted, down when it ends, summed
over the processes that are alive."""

import os
import subprocess
import sys

import pytest
from asgiref.sync import sync_to_async
from django.test import Client

from tests.metrics.support import by, scrape
from tests.support.live import ROOT
from tests.support.workflows import chain, publish
from tests.ws.support import run_async
from tests.ws.test_run_timeline import communicator
from vectorbea.runs.commands import start_run

pytestmark = pytest.mark.django_db(transaction=True)


def open_sockets() -> dict[str, float]:
    return {
        consumer: value
        for (consumer,), value in by(
            scrape(Client()), "vectorbea_websocket_connections", "consumer"
        ).items()
    }


def test_it_counts_accepted_sockets_until_they_close(alice, bob, acme):
    run = start_run(publish(acme, chain(1)), {})
    counts = sync_to_async(open_sockets)

    async def scenario() -> list[dict[str, float]]:
        seen = [await counts()]
        timeline = communicator(alice, f"/ws/w/acme/runs/{run.id}/")
        assert (await timeline.connect())[0]
        workspace = communicator(alice, "/ws/w/acme/")
        assert (await workspace.connect())[0]
        seen.append(await counts())
        stranger = communicator(bob, "/ws/w/acme/")
        assert not (await stranger.connect())[0]  # refused: never counted
        seen.append(await counts())
        await timeline.disconnect()
        seen.append(await counts())
        await workspace.disconnect()
        seen.append(await counts())
        return seen

    assert run_async(scenario) == [
        {},
        {"RunTimelineConsumer": 1, "WorkspaceConsumer": 1},
        {"RunTimelineConsumer": 1, "WorkspaceConsumer": 1},
        {"WorkspaceConsumer": 1},
        {},
    ]


def socket_process(code: str) -> subprocess.Popen:
    """Another process of this host with sockets open (same settings, same metrics dir)."""
    setup = "import django; django.setup(); from vectorbea.metrics.sockets import WEBSOCKETS; "
    return subprocess.Popen(
        [sys.executable, "-c", setup + code],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "vectorbea.settings_test"},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )


def test_a_dead_process_s_sockets_no_longer_count():
    # One process keeps 2 sockets open, another had 3 and died without closing them.
    alive = socket_process(
        "WEBSOCKETS.labels('Elsewhere').inc(2); print('up', flush=True); input()"
    )
    died = socket_process("WEBSOCKETS.labels('Elsewhere').inc(3); import os; os._exit(0)")
    try:
        assert died.wait(timeout=30) == 0
        assert alive.stdout.readline() == b"up\n"
        died_file = os.path.join(
            os.environ["VECTORBEA_METRICS_DIR"], f"gauge_livesum_{died.pid}.db"
        )
        assert os.path.exists(died_file)

        assert open_sockets() == {"Elsewhere": 2}
        assert not os.path.exists(died_file)
    finally:
        alive.communicate(b"\n", timeout=30)
