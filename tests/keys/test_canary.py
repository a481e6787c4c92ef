"""The canary: a key saved through the settings page never appears (plain, JSON-escaped,
url-encoded, hex, base64) in any page, API answer, table, checkpoint, Redis, log or
websocket frame, even after the provider answers 401 with an error body that echoes it.
Only its last four characters are shown.

The run goes through real worker processes calling the scripted fake provider."""

import base64
import json
import logging
import os
from uuid import uuid4

import pytest
import redis
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.db import connection
from django.test import Client
from django.urls import reverse

from tests.api.support import ApiClient, token_for
from tests.keys.support import assert_no_leak, canary
from tests.support.fake_llm import FakeLLM, ok, status
from tests.support.live import (
    Live,
    event_rows,
    flush_own_redis,
    prepare_side_effects,
    run_status,
    wait_for,
)
from tests.support.workflows import chain, publish
from tests.web.test_workspace_isolation import KWARG, URL_KWARG_REGISTRY, WORKSPACE_ROUTES
from tests.ws.support import run_async
from vectorbea.accounts.models import Role
from vectorbea.asgi import application
from vectorbea.engine import ErrorClass, StepError
from vectorbea.keys.models import ProviderKey
from vectorbea.runs.commands import start_run
from vectorbea.steps import llm
from vectorbea.steps.registry import StepContext, run_now


def run_llm(config, ctx):
    """The step as a worker makes it: its call awaited, then finished."""
    return run_now(llm.run_llm(config, ctx))


def echoing_401(key: str) -> dict:
    """A provider error body that repeats the key every way a careless server might."""
    header = f"Bearer {key}"
    return {
        "error": {
            "message": (
                f"Incorrect API key provided: {key}. Authorization: {header}. "
                f"Basic {base64.b64encode(f'user:{key}'.encode()).decode()}. "
                f"Key bytes: {key.encode().hex()} ({key.encode().hex().upper()}). "
                f"Request: {json.dumps({'headers': {'authorization': header}})}"
            ),
            "type": "invalid_request_error",
            "code": "invalid_api_key",
        }
    }


@pytest.fixture
def fake():
    with FakeLLM() as server:
        yield server


@pytest.fixture
def live(transactional_db, fake):
    """Workers whose only OpenAI key is the workspace's own: no installation key at all."""
    prepare_side_effects()
    flush_own_redis()
    services = Live(
        VECTORBEA_OPENAI_BASE_URL=fake.openai_url,
        VECTORBEA_ANTHROPIC_BASE_URL=fake.anthropic_url,
        VECTORBEA_OPENAI_API_KEY="",
        VECTORBEA_ANTHROPIC_API_KEY="",
        VECTORBEA_HTTP_ALLOWLIST=f"127.0.0.1:{fake.port}",
        LOG_LEVEL="DEBUG",
    )
    services.scheduler()
    services.worker()
    yield services
    services.stop_all()


def save_through_the_page(client: Client, key: str) -> None:
    page = client.get(reverse("provider-keys", args=["acme"]))
    assert page.status_code == 200
    response = client.post(
        reverse("provider-keys", args=["acme"]),
        {"provider": "openai", "label": "Canary", "key": key},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert_no_leak(response.content.decode() + str(response.headers), key, "the POST response")


def llm_run(acme):
    config = {"provider": "openai", "model": "gpt-4o-mini", "prompt": "Hi"}
    run = start_run(publish(acme, chain(1, "llm", config)), {})
    wait_for(lambda: run_status(run.id) in ("completed", "failed", "needs_attention"), timeout=60)
    return run


def every_table_as_text() -> str:
    parts = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f'SELECT t::text FROM "{table}" t')  # noqa: S608
            parts += [row[0] for row in cursor.fetchall()]
    return "\n".join(parts)


def everything_in_redis() -> str:
    client = redis.Redis.from_url(settings.REDIS_URL)
    parts: list[bytes] = []
    for name in client.scan_iter(count=1000):
        parts.append(name)
        kind = client.type(name).decode()
        if kind == "string":
            parts.append(client.get(name) or b"")
        elif kind == "list":
            parts += client.lrange(name, 0, -1)
        elif kind == "hash":
            for field, value in client.hgetall(name).items():
                parts += [field, value]
        elif kind == "set":
            parts += list(client.smembers(name))
        elif kind == "zset":
            parts += client.zrange(name, 0, -1)
        elif kind == "stream":
            parts += [repr(entry).encode() for entry in client.xrange(name)]
    return b"\n".join(parts).decode(errors="replace")


def every_workspace_page(client: Client, acme, alice, run_id) -> str:
    fillers = {**URL_KWARG_REGISTRY, "run_id": lambda acme, alice: run_id}
    pages = []
    for name, route in sorted(WORKSPACE_ROUTES.items()):
        kwargs: dict[str, object] = {"ws": acme.slug}
        for kwarg in KWARG.findall(route):
            if kwarg != "ws":
                kwargs[kwarg] = fillers[kwarg](acme, alice) if kwarg in fillers else None
        if None in kwargs.values() or name.endswith("revoke"):
            continue
        response = client.get(reverse(name, kwargs=kwargs))
        pages.append(f"{name}: {response.status_code}\n{response.content.decode(errors='replace')}")
        hx = client.get(reverse(name, kwargs=kwargs), headers={"HX-Request": "true"})
        pages.append(hx.content.decode(errors="replace"))
    for url in ("/", "/workspaces/new/", "/account/password/"):
        pages.append(client.get(url, follow=True).content.decode(errors="replace"))
    return "\n".join(pages)


def api_answers(workspace, *run_ids) -> str:
    """What the API says about runs: their summaries and every event, as a program sees."""
    api = ApiClient(token_for(workspace, Role.VIEWER))
    answers = []
    for run_id in run_ids:
        for path in (f"/runs/{run_id}", f"/runs/{run_id}/events"):
            response = api.get(path)
            assert response.status_code == 200, path
            answers.append(response.content.decode())
    return "\n".join(answers)


def websocket_frames(alice, *run_ids) -> str:
    session = Client()
    session.force_login(alice)
    cookie = session.cookies["sessionid"].value
    headers = [
        (b"origin", b"http://localhost"),
        (b"host", b"localhost"),
        (b"cookie", f"sessionid={cookie}".encode()),
    ]

    async def scenario() -> str:
        frames = []
        for run_id in run_ids:
            comm = WebsocketCommunicator(application, f"/ws/w/acme/runs/{run_id}/", headers=headers)
            connected, _ = await comm.connect()
            assert connected
            await comm.send_to(text_data=json.dumps({"after": 0}))
            frames.append(await comm.receive_from(timeout=5))
            while not await comm.receive_nothing(timeout=0.5):
                frames.append(await comm.receive_from())
            await comm.disconnect()
        return "\n".join(frames)

    return run_async(scenario)


def test_a_canary_key_never_leaks_even_when_the_provider_echoes_it(live, fake, acme, alice):
    key = canary()
    client = Client()
    client.force_login(alice)
    save_through_the_page(client, key)
    stored = ProviderKey.objects.get(workspace=acme)

    fake.script(status(401, body=echoing_401(key)), ok("Hello with your own key"))
    failed_run = llm_run(acme)
    ok_run = llm_run(acme)

    # The workers really used the workspace's key...
    assert [r.headers["authorization"] for r in fake.requests] == [f"Bearer {key}"] * 2
    assert run_status(failed_run.id) == "needs_attention"
    assert run_status(ok_run.id) == "completed"
    # ...recorded each use by id, never by value...
    [failed] = [p for _, t, p in event_rows(failed_run.id) if t == "StepFailed"]
    assert failed["error_class"] == "permanent" and "HTTP 401" in failed["message"]
    assert failed["usage"] == {"provider": "openai", "key_id": str(stored.id)}
    # The provider's redaction caught the key in every form it was echoed in.
    assert "Incorrect API key provided: [redacted]" in failed["message"]
    assert "Basic dXNlcjp[redacted]" in failed["message"]
    assert "Key bytes: [redacted] ([redacted])" in failed["message"]
    [completed] = [p for _, t, p in event_rows(ok_run.id) if t == "StepCompleted"]
    assert completed["usage"]["key_id"] == str(stored.id)
    stored.refresh_from_db()
    assert stored.last_used_at is not None

    # ...and the key is nowhere: not in the database (events, checkpoints, summaries, ...),
    database = every_table_as_text()
    assert str(stored.id) in database and "Canary" in database  # the dump reads every table
    assert_no_leak(database, key, "the database")
    # nor in Redis (messages, channel layer),
    assert_no_leak(everything_in_redis(), key, "Redis")
    # nor in what the worker and scheduler processes logged at DEBUG,
    logs = list(live.logs.glob(f"*-{os.getpid()}-*.log"))
    assert logs
    for log in logs:
        assert_no_leak(log.read_text(errors="replace"), key, f"the log {log.name}")
    # nor in any page or htmx fragment, where only the last four show,
    pages = every_workspace_page(client, acme, alice, failed_run.id)
    assert_no_leak(pages, key, "the pages")
    keys_page = client.get(reverse("provider-keys", args=["acme"])).content.decode()
    assert f"…{key[-4:]}" in keys_page
    # nor in what the API answers about the runs,
    answers = api_answers(acme, failed_run.id, ok_run.id)
    assert "StepFailed" in answers and "HTTP 401" in answers
    assert_no_leak(answers, key, "the API")
    # nor in the websocket frames of the run page and the workspace.
    frames = websocket_frames(alice, failed_run.id, ok_run.id)
    assert "data-seq" in frames
    assert_no_leak(frames, key, "websocket frames")


@pytest.mark.django_db
def test_no_log_record_holds_the_key_when_the_provider_echoes_it(
    fake, settings, caplog, alice, acme
):
    """In-process, with every logger at DEBUG (the SDK's and httpx's too)."""
    key = canary()
    client = Client()
    client.force_login(alice)
    with caplog.at_level(logging.DEBUG):
        save_through_the_page(client, key)
        settings.VECTORBEA_OPENAI_BASE_URL = fake.openai_url
        settings.VECTORBEA_OPENAI_API_KEY = ""
        fake.script(status(401, body=echoing_401(key)))
        run_id = uuid4()
        ctx = StepContext(run_id, acme.id, "s0", 1, f"vb-{run_id}-s0", {}, {})
        with pytest.raises(StepError) as caught:
            run_llm({"provider": "openai", "model": "gpt-4o-mini", "prompt": "Hi"}, ctx)
        logging.getLogger("vectorbea.tests").exception("after the call", exc_info=caught.value)
    assert fake.requests[0].headers["authorization"] == f"Bearer {key}"
    assert caught.value.error_class == ErrorClass.PERMANENT
    assert_no_leak(caught.value.message, key, "the step error")
    assert any(record.name.startswith(("openai", "httpx", "httpcore")) for record in caplog.records)
    assert_no_leak(caplog.text, key, "captured logs")
    for record in caplog.records:
        assert_no_leak(repr(record.__dict__), key, f"the log record {record.name}")
