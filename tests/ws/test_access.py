"""Access on the sockets is checked for every frame, not once at connect: a member removed
with a page open gets nothing more and the socket closes; a member whose role changed gets
the next frame rendered for the new role."""

import json

import pytest
from asgiref.sync import sync_to_async
from django.urls import reverse

from tests.conftest import make_member
from tests.support.workflows import chain, publish
from tests.ws.support import run_async
from tests.ws.test_run_timeline import communicator, note, seqs
from vectorbea.accounts.models import Membership, Role
from vectorbea.runs.commands import pause_run, start_run
from vectorbea.runs.consumers import ACCESS_GONE

pytestmark = pytest.mark.django_db(transaction=True)

ACCESS_GONE_CLOSE = {"type": "websocket.close", "code": ACCESS_GONE}


def remove(user, workspace) -> None:
    Membership.objects.filter(user=user, workspace=workspace).delete()


def change_role(user, workspace, role: str) -> None:
    Membership.objects.filter(user=user, workspace=workspace).update(role=role)


def test_a_member_removed_with_the_run_page_open_gets_no_more_frames(acme, alice):
    erin = make_member("erin", acme, Role.EDITOR)
    run = start_run(publish(acme, chain(2)), {})

    async def scenario():
        comm = communicator(erin, f"/ws/w/acme/runs/{run.id}/")
        connected, _ = await comm.connect()
        assert connected
        await comm.send_to(text_data=json.dumps({"after": 0}))
        before = seqs(await comm.receive_from(timeout=5))
        await sync_to_async(remove)(erin, acme)
        for i in range(3):
            await sync_to_async(note)(run.id, f"after the removal {i}")
        after = await comm.receive_output(timeout=5)
        quiet = await comm.receive_nothing(timeout=0.5)
        await comm.disconnect()
        return before, after, quiet

    before, after, quiet = run_async(scenario)
    assert before == [1, 2]
    assert after == ACCESS_GONE_CLOSE  # not the events appended after the removal
    assert quiet


def test_a_member_downgraded_to_viewer_gets_the_next_frame_without_operator_forms(acme, alice):
    erin = make_member("erin", acme, Role.EDITOR)
    run = start_run(publish(acme, chain(2)), {})
    cancel = reverse("run-cancel", kwargs={"ws": "acme", "run_id": run.id})
    pause = reverse("run-pause", kwargs={"ws": "acme", "run_id": run.id})

    async def scenario() -> tuple[str, str]:
        comm = communicator(erin, f"/ws/w/acme/runs/{run.id}/")
        await comm.connect()
        await comm.send_to(text_data=json.dumps({"after": 0}))
        before = await comm.receive_from(timeout=5)
        await sync_to_async(change_role)(erin, acme, Role.VIEWER)
        await sync_to_async(note)(run.id, "after the downgrade")
        after = await comm.receive_from(timeout=5)
        await comm.disconnect()
        return before, after

    before, after = run_async(scenario)
    assert cancel in before and pause in before  # an editor may stop the run
    assert seqs(after) == [3]
    assert "<form" not in after
    # The page's own actions are swapped for an empty placeholder, forms and all.
    assert '<div id="run-actions" class="run-actions" hidden></div>' in after


def test_a_member_removed_with_a_workspace_page_open_is_cut_off(acme, alice):
    erin = make_member("erin", acme, Role.APPROVER)
    run = start_run(publish(acme, chain(2)), {})

    async def scenario():
        comm = communicator(erin, "/ws/w/acme/")
        connected, _ = await comm.connect()
        assert connected
        await comm.send_to(text_data=json.dumps({"topics": ["runs", "inbox"]}))
        await comm.receive_nothing(timeout=0.2)
        await sync_to_async(note)(run.id, "while a member")
        before = await comm.receive_from(timeout=5)
        await sync_to_async(remove)(erin, acme)
        await sync_to_async(pause_run)(run.id, actor="alice")
        after = await comm.receive_output(timeout=5)
        quiet = await comm.receive_nothing(timeout=0.5)
        await comm.disconnect()
        return before, after, quiet

    before, after, quiet = run_async(scenario)
    assert f'id="run-{run.id}"' in before and 'id="inbox-count"' in before
    assert after == ACCESS_GONE_CLOSE
    assert quiet


def test_a_member_downgraded_on_the_run_list_gets_rows_for_the_new_role(acme, alice):
    erin = make_member("erin", acme, Role.EDITOR)
    run = start_run(publish(acme, chain(2)), {})

    async def scenario() -> tuple[str, str]:
        comm = communicator(erin, "/ws/w/acme/")
        await comm.connect()
        await comm.send_to(text_data=json.dumps({"topics": ["runs"]}))
        await comm.receive_nothing(timeout=0.2)
        await sync_to_async(note)(run.id, "as an editor")
        before = await comm.receive_from(timeout=5)
        await sync_to_async(change_role)(erin, acme, Role.VIEWER)
        await sync_to_async(note)(run.id, "as a viewer")
        after = await comm.receive_from(timeout=5)
        await comm.disconnect()
        return before, after

    before, after = run_async(scenario)
    assert 'name="run"' in before  # the row's checkbox for the bulk operator actions
    assert f'id="run-{run.id}"' in after and 'name="run"' not in after
