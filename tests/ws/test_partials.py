"""A running step's text so far (runs.partials) over the real channels_redis layer and the
real run socket: pushed while somebody watches, at most every PUSH_SECONDS, kept in Redis
for a page opened or reconnected mid-call, never in the event log, and replaced by the
recorded outcome."""

import asyncio
import html as html_module
import itertools
import json
import re
import time

import pytest
import redis
from asgiref.sync import sync_to_async
from django.conf import settings
from django.test import Client

from tests.support.live import event_rows
from tests.support.workflows import chain, publish, record
from tests.ws.support import run_async
from tests.ws.test_access import ACCESS_GONE_CLOSE, remove
from tests.ws.test_run_timeline import communicator, seqs
from vectorbea.engine import StepCompleted
from vectorbea.runs.commands import start_run
from vectorbea.runs.partials import (
    PUSH_SECONDS,
    WATCH_CHECK_SECONDS,
    TextStream,
    partial_key,
    texts_so_far,
)

pytestmark = pytest.mark.django_db(transaction=True)


def redis_client() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL)


def partial_texts(html: str) -> list[str]:
    """The text of each step-partial element in a frame, unescaped the way a browser does."""
    found = re.findall(r'<p class="step-partial" id="step-partial-s0-1"[^>]*>(.*?)</p>', html, re.S)
    return [html_module.unescape(text) for text in found]


def a_running_run(acme):
    run = start_run(publish(acme, chain(1)), {})
    assert [type_ for _, type_, _ in event_rows(run.id)] == ["RunStarted", "StepStarted"]
    return run


def test_the_text_so_far_reaches_the_open_page_and_the_recorded_outcome_replaces_it(alice, acme):
    run = a_running_run(acme)
    key = partial_key(run.id, "s0")

    async def scenario():
        comm = communicator(alice, f"/ws/w/acme/runs/{run.id}/")
        assert (await comm.connect())[0]
        await comm.send_to(text_data=json.dumps({"after": 2}))
        assert await comm.receive_nothing(timeout=0.3)  # nothing new, no text yet
        async with TextStream(run.id, "s0", 1) as on_text:
            on_text("Hello ")
            first = await comm.receive_from(timeout=5)
            on_text("<b>world</b>")
            second = await comm.receive_from(timeout=5)
            kept = json.loads(redis_client().get(key))
        left_in_redis = redis_client().get(key)
        await sync_to_async(record)(run.id, StepCompleted("s0", 1, {"text": "Hello world"}))
        outcome = await comm.receive_from(timeout=5)
        await comm.disconnect()
        return first, second, kept, left_in_redis, outcome

    first, second, kept, left_in_redis, outcome = run_async(scenario)
    assert partial_texts(first) == ["Hello "]
    assert partial_texts(second) == ["Hello <b>world</b>"]
    assert "&lt;b&gt;" in second  # escaped, shown as typed
    assert kept == {"attempt": 1, "text": "Hello <b>world</b>"}
    assert left_in_redis is None  # forgotten when the call is over
    # The words were never events; the outcome is, and its step row has no partial text.
    types = [type_ for _, type_, _ in event_rows(run.id)]
    assert types[:3] == ["RunStarted", "StepStarted", "StepCompleted"]
    assert seqs(outcome)[0] == 3
    assert 'id="step-s0"' in outcome
    assert "step-partial" not in outcome


def test_an_answer_that_comes_whole_is_left_to_its_outcome(alice, acme):
    """Words that all came before the first push began (a short answer read in one piece
    off the socket) had no text so far to show: nothing is pushed or kept for them, and
    the outcome recorded next shows them."""
    run = a_running_run(acme)

    async def scenario():
        comm = communicator(alice, f"/ws/w/acme/runs/{run.id}/")
        assert (await comm.connect())[0]
        await comm.send_to(text_data=json.dumps({"after": 2}))
        assert await comm.receive_nothing(timeout=0.3)
        async with TextStream(run.id, "s0", 1) as on_text:
            for word in ("All ", "at ", "once"):  # no await between them
                on_text(word)
        quiet = await comm.receive_nothing(timeout=0.5)
        await comm.disconnect()
        return quiet

    assert run_async(scenario)
    assert redis_client().get(partial_key(run.id, "s0")) is None


def test_pushes_are_at_most_one_per_interval_and_the_last_has_every_word(alice, acme):
    run = a_running_run(acme)
    words = [f"w{i} " for i in range(40)]

    async def scenario():
        comm = communicator(alice, f"/ws/w/acme/runs/{run.id}/")
        await comm.connect()
        await comm.send_to(text_data=json.dumps({"after": 2}))
        assert await comm.receive_nothing(timeout=0.3)  # it has looked for a text so far
        started = time.monotonic()
        async with TextStream(run.id, "s0", 1) as on_text:
            for word in words:
                on_text(word)
                await asyncio.sleep(0.01)
        took = time.monotonic() - started
        frames = []
        while not await comm.receive_nothing(timeout=0.3):
            frames.append(await comm.receive_from())
        await comm.disconnect()
        return frames, took

    frames, took = run_async(scenario)
    texts = [text for frame in frames for text in partial_texts(frame)]
    assert len(texts) >= 3
    assert len(texts) <= took / PUSH_SECONDS + 2
    assert texts[-1] == "".join(words), texts
    assert all(later.startswith(earlier) for earlier, later in itertools.pairwise(texts)), texts


def test_a_page_reconnecting_mid_call_gets_the_text_so_far_and_no_row_twice(alice, acme):
    run = a_running_run(acme)
    path = f"/ws/w/acme/runs/{run.id}/"

    async def scenario():
        async with TextStream(run.id, "s0", 1) as on_text:
            comm = communicator(alice, path)
            await comm.connect()
            await comm.send_to(text_data=json.dumps({"after": 0}))
            rows = seqs(await comm.receive_from(timeout=5))
            on_text("one two ")
            await comm.receive_from(timeout=5)
            await comm.disconnect()  # the network drops...
            on_text("three")  # ...while the model goes on
            await asyncio.sleep(PUSH_SECONDS * 4)
            again = communicator(alice, path)
            await again.connect()
            await again.send_to(text_data=json.dumps({"after": rows[-1]}))
            back = await again.receive_from(timeout=5)
            quiet = await again.receive_nothing(timeout=0.3)
            await again.disconnect()
        return rows, back, quiet

    rows, back, quiet = run_async(scenario)
    assert rows == [1, 2]
    assert partial_texts(back) == ["one two three"]
    assert seqs(back) == []  # no recorded row again
    assert quiet


def test_a_page_opened_mid_call_shows_the_text_so_far_of_that_attempt_only(alice, acme):
    run = a_running_run(acme)
    client = Client()
    client.force_login(alice)
    url = f"/w/acme/runs/{run.id}/"
    key = partial_key(run.id, "s0")
    try:
        redis_client().set(key, json.dumps({"attempt": 1, "text": "So far <so> good"}), ex=60)
        page = client.get(url).content.decode()
        assert partial_texts(page) == ["So far <so> good"]
        assert texts_so_far(run.id, {"s0": 1}) == {"s0": "So far <so> good"}
        # An earlier attempt's words are not this attempt's.
        redis_client().set(key, json.dumps({"attempt": 2, "text": "stale"}), ex=60)
        page = client.get(url).content.decode()
        assert partial_texts(page) == [""]
        assert "stale" not in page
    finally:
        redis_client().delete(key)


def test_while_nobody_watches_the_text_is_kept_once_a_second_for_a_page_opened_later(alice, acme):
    run = a_running_run(acme)
    key = partial_key(run.id, "s0")

    def kept() -> str | None:
        value = redis_client().get(key)
        return None if value is None else json.loads(value)["text"]

    async def scenario():
        async with TextStream(run.id, "s0", 1) as on_text:
            on_text("first words ")
            await asyncio.sleep(PUSH_SECONDS * 3)
            at_first = kept()
            on_text("then more ")
            await asyncio.sleep(PUSH_SECONDS * 3)
            within_the_second = kept()
            await asyncio.sleep(WATCH_CHECK_SECONDS)
            on_text("and the rest")
            await asyncio.sleep(PUSH_SECONDS * 3)
            later = kept()
            page = await sync_to_async(opened_page)(alice, run.id)
        return at_first, within_the_second, later, page, kept()

    at_first, within_the_second, later, page, at_the_end = run_async(scenario)
    assert at_first == within_the_second == "first words "
    assert later == "first words then more and the rest"
    assert partial_texts(page) == ["first words then more and the rest"]
    assert at_the_end is None


def opened_page(user, run_id) -> str:
    client = Client()
    client.force_login(user)
    return client.get(f"/w/acme/runs/{run_id}/").content.decode()


def test_a_member_removed_mid_call_gets_no_more_words(alice, acme):
    run = a_running_run(acme)

    async def scenario():
        comm = communicator(alice, f"/ws/w/acme/runs/{run.id}/")
        await comm.connect()
        await comm.send_to(text_data=json.dumps({"after": 2}))
        assert await comm.receive_nothing(timeout=0.3)
        async with TextStream(run.id, "s0", 1) as on_text:
            on_text("before ")
            before = await comm.receive_from(timeout=5)
            await sync_to_async(remove)(alice, acme)
            on_text("after the removal")
            after = await comm.receive_output(timeout=5)
            quiet = await comm.receive_nothing(timeout=0.3)
        await comm.disconnect()
        return before, after, quiet

    before, after, quiet = run_async(scenario)
    assert partial_texts(before) == ["before "]
    assert after == ACCESS_GONE_CLOSE
    assert quiet
