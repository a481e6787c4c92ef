"""Workers push "run X changed" only to groups somebody is in: nearly every run a worker
moves has no page open, and an empty group_send still costs Redis round trips."""

import uuid

import pytest
from channels.layers import get_channel_layer

from tests.ws.support import run_async
from vectorbea.runs import live

pytestmark = pytest.mark.django_db(transaction=True)


def test_only_the_groups_with_a_member_are_pushed_to():
    RUN, WORKSPACE = str(uuid.uuid4()), str(uuid.uuid4())

    async def scenario():
        layer = get_channel_layer()
        channel = await layer.new_channel()
        await layer.group_add(live.run_group(RUN), channel)
        pushed = await live._watched(layer, [live.run_group(RUN), live.workspace_group(WORKSPACE)])
        await live._push(layer, live._pushes({RUN: (WORKSPACE, 7)}), None)
        message = await layer.receive(channel)
        await layer.group_discard(live.run_group(RUN), channel)
        after = await live._watched(layer, [live.run_group(RUN)])
        return pushed, message, after

    pushed, message, after = run_async(scenario)
    assert pushed == {live.run_group(RUN)}
    assert message == {"type": "run.changed", "run_id": RUN, "seq": 7}
    assert after == set()


def test_the_pusher_thread_asks_over_a_plain_connection_what_the_async_check_would_say():
    RUN, OTHER = str(uuid.uuid4()), str(uuid.uuid4())
    groups = [live.run_group(RUN), live.run_group(OTHER)]

    async def join():
        layer = get_channel_layer()
        channel = await layer.new_channel()
        await layer.group_add(live.run_group(RUN), channel)
        return channel, await live._watched(layer, groups)

    async def leave(channel):
        await get_channel_layer().group_discard(live.run_group(RUN), channel)

    channel, seen_async = run_async(join)
    seen_now = live._watched_now(get_channel_layer(), groups)
    run_async(lambda: leave(channel))

    assert seen_now == seen_async == {live.run_group(RUN)}
    assert live._watched_now(get_channel_layer(), groups) == set()
