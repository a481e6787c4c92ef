"""The secrets canary: a workspace secret saved through the settings page reaches the API an
HTTP step calls, in its Authorization header, and nothing else: not the events, the run
summary, the run and step pages, the API, the builder, the export, Redis, the logs or the
websocket frames, even when the API answers with the header echoed back.

The runs go through real worker processes calling a local counting server."""

import os

import pytest
from django.test import Client
from django.urls import reverse

from tests.keys.support import assert_no_leak, canary
from tests.keys.test_canary import (
    api_answers,
    every_table_as_text,
    every_workspace_page,
    everything_in_redis,
    websocket_frames,
)
from tests.support.counting_server import CountingServer
from tests.support.live import (
    Live,
    event_rows,
    flush_own_redis,
    prepare_side_effects,
    run_status,
    wait_for,
)
from tests.support.workflows import chain, publish
from vectorbea.eventlog.models import RunSummary
from vectorbea.runs.commands import start_run


@pytest.fixture
def server():
    with CountingServer() as running:
        yield running


@pytest.fixture
def live(transactional_db, server):
    prepare_side_effects()
    flush_own_redis()
    services = Live(VECTORBEA_HTTP_ALLOWLIST=server.allow, LOG_LEVEL="DEBUG")
    services.scheduler()
    services.worker()
    yield services
    services.stop_all()


def finished(run) -> str:
    wait_for(lambda: run_status(run.id) in ("completed", "failed", "needs_attention"), timeout=60)
    return run_status(run.id)


def pages_about(client: Client, run, workflow) -> str:
    """The run and step pages (and their htmx fragments), the builder, the versions with
    their diffs, and the exports of the draft and the version."""
    run_urls = [
        reverse("run-detail", args=["acme", run.id]),
        reverse("run-step", args=["acme", run.id]) + "?id=s0",
        reverse("run-events", args=["acme", run.id]),
    ]
    workflow_urls = [
        reverse("workflow-builder", args=["acme", workflow.id]),
        reverse("workflow-versions", args=["acme", workflow.id]),
        reverse("workflow-version", args=["acme", workflow.id, 1]),
        reverse("workflow-export", args=["acme", workflow.id]),
        reverse("workflow-export", args=["acme", workflow.id]) + "?version=1",
    ]
    texts = []
    for url in run_urls + workflow_urls:
        for headers in ({}, {"HX-Request": "true"}):
            response = client.get(url, headers=headers)
            assert response.status_code == 200, url
            texts.append(response.content.decode())
    return "\n".join(texts)


def test_a_secret_reaches_the_api_it_is_for_and_nowhere_else(live, server, acme, alice):
    value = canary("ghp_")
    client = Client()
    client.force_login(alice)
    saved = client.post(
        reverse("workspace-secrets", args=["acme"]), {"name": "TOKEN", "value": value}
    )
    assert saved.status_code == 302

    config = {
        "url": server.url("/status/200?echo=authorization"),
        "headers": {"Authorization": "Bearer {{ secrets.TOKEN }}"},
    }
    workflow = publish(acme, chain(1, "http", config), name="Calls with a secret")
    run = start_run(workflow, {})
    assert finished(run) == "completed"

    # The API got the real value...
    [request] = server.requests
    assert request.headers["authorization"] == f"Bearer {value}"
    # ...and echoed it: the recorded output holds it replaced.
    [output] = [p["output"] for _, t, p in event_rows(run.id) if t == "StepCompleted"]
    assert output["body"]["echo"] == f"Bearer [redacted …{value[-4:]}]"

    # A secret the workspace does not have fails the step for good, naming it.
    missing = publish(
        acme,
        chain(1, "http", {"url": server.url(), "headers": {"X-Api-Key": "{{ secrets.NOPE }}"}}),
        name="Calls with a missing secret",
    )
    failed_run = start_run(missing, {})
    assert finished(failed_run) == "needs_attention"
    [failed] = [p for _, t, p in event_rows(failed_run.id) if t == "StepFailed"]
    assert failed["error_class"] == "permanent"
    assert "This workspace has no secret 'NOPE'." in failed["message"]
    assert len(server.requests) == 1

    # The step page shows the setting as written, never the value.
    step_page = client.get(reverse("run-step", args=["acme", run.id]) + "?id=s0")
    assert "Bearer {{ secrets.TOKEN }}" in step_page.content.decode()

    # Nowhere else: not the database (events, checkpoints, run summaries, definitions ...),
    database = every_table_as_text()
    assert "Calls with a secret" in database  # the dump reads every table
    assert_no_leak(database, value, "the database")
    summary = RunSummary.objects.get(run_id=run.id)
    assert_no_leak(str(vars(summary)), value, "the run summary")
    # nor Redis, nor what the worker and scheduler processes logged at DEBUG,
    assert_no_leak(everything_in_redis(), value, "Redis")
    logs = list(live.logs.glob(f"*-{os.getpid()}-*.log"))
    assert logs
    for log in logs:
        assert_no_leak(log.read_text(errors="replace"), value, f"the log {log.name}")
    # nor any page, fragment or export,
    pages = pages_about(client, run, workflow) + every_workspace_page(client, acme, alice, run.id)
    assert "secrets.TOKEN" in pages
    assert_no_leak(pages, value, "the pages")
    # nor the API,
    answers = api_answers(acme, run.id, failed_run.id)
    assert "StepCompleted" in answers
    assert_no_leak(answers, value, "the API")
    # nor the websocket frames of the run page.
    frames = websocket_frames(alice, run.id, failed_run.id)
    assert "data-seq" in frames
    assert_no_leak(frames, value, "websocket frames")
