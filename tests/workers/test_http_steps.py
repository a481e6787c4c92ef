"""HTTP steps on real worker processes, against a local counting server (allow-listed).

The promise tested: a request that reached the server before its worker died is sent
again after recovery with the SAME Idempotency-Key, so the API can tell it is a repeat."""

import pytest

from tests.support.counting_server import CountingServer
from tests.support.live import (
    Live,
    event_rows,
    flush_own_redis,
    prepare_side_effects,
    run_status,
    wait_for,
)
from tests.support.workflows import FAST_RETRY, chain, publish
from vectorbea.runs.commands import start_run


@pytest.fixture
def server():
    with CountingServer() as running:
        yield running


@pytest.fixture
def live(transactional_db, server):
    prepare_side_effects()
    flush_own_redis()
    services = Live(VECTORBEA_HTTP_ALLOWLIST=server.allow)
    yield services
    services.stop_all()


def finished(run_id):
    return lambda: run_status(run_id) in ("completed", "failed", "cancelled", "needs_attention")


def http_workflow(acme, url, **config):
    definition = chain(2, "http", {"url": url, **config}, retry=FAST_RETRY)
    definition["steps"][1] = {"id": "s1", "kind": "noop", "config": {"output": "after"}}
    return publish(acme, definition)


def test_an_http_step_completes_with_the_answer(live, acme, server):
    live.scheduler()
    live.worker()
    run = start_run(http_workflow(acme, server.url("/echo"), method="POST", body={"n": 1}), {})
    wait_for(finished(run.id), timeout=30)
    assert run_status(run.id) == "completed"
    output = next(p for _, t, p in event_rows(run.id) if t == "StepCompleted")["output"]
    assert output["status"] == 200
    assert output["body"]["body"] == '{"n": 1}'
    assert output["body"]["idempotency_key"] == f"vb-{run.id}-s0"


def test_a_request_repeated_after_a_sigkill_carries_the_same_idempotency_key(live, acme, server):
    live.scheduler()
    worker = live.worker()
    run = start_run(http_workflow(acme, server.url("/hold")), {})
    # The request reached the server, which holds it: the worker is mid-step. Kill it.
    wait_for(lambda: server.seen("/hold"), timeout=30)
    live.kill(worker)
    server.release.set()
    live.worker()
    wait_for(finished(run.id), timeout=60)

    assert run_status(run.id) == "completed"
    held = server.seen("/hold")
    assert len(held) >= 2
    assert {r.idempotency_key for r in held} == {f"vb-{run.id}-s0"}
    rows = event_rows(run.id)
    failed = [p for _, t, p in rows if t == "StepFailed"]
    assert failed and all(p["error_class"] == "worker_lost" for p in failed)
    completed = [p for _, t, p in rows if t == "StepCompleted" and p["step_id"] == "s0"]
    assert len(completed) == 1 and completed[0]["attempt"] > 1


def test_a_refused_address_fails_the_run_with_a_clear_message(live, acme, server):
    live.scheduler()
    live.worker()
    run = start_run(http_workflow(acme, "http://169.254.169.254/latest/meta-data/"), {})
    wait_for(finished(run.id), timeout=30)
    assert run_status(run.id) == "needs_attention"
    [failed] = [p for _, t, p in event_rows(run.id) if t == "StepFailed"]
    assert failed["error_class"] == "permanent"
    assert failed["message"] == (
        "Refused to call 169.254.169.254: link-local addresses are blocked. To allow it, "
        "the operator adds 169.254.169.254:80 to VECTORBEA_HTTP_ALLOWLIST."
    )


def test_a_server_error_is_retried_and_a_429_waits_for_retry_after(live, acme, server):
    live.scheduler()
    live.worker()
    url = server.url("/status/429?retry_after=1")
    definition = chain(1, "http", {"url": url}, retry={**FAST_RETRY, "maximum_attempts": 2})
    run = start_run(publish(acme, definition), {})
    wait_for(finished(run.id), timeout=30)
    assert run_status(run.id) == "needs_attention"
    rows = event_rows(run.id)
    [retry] = [p for _, t, p in rows if t == "RetryScheduled"]
    assert retry["reason"] == "rate_limited"
    assert retry["backoff_seconds"] == pytest.approx(1.0)
    assert [p["error_class"] for _, t, p in rows if t == "StepFailed"] == [
        "rate_limited",
        "rate_limited",
    ]
    assert len(server.requests) == 2
