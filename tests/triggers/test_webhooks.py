"""Inbound webhooks: a signed delivery starts one run with its body as the input; anything
unsigned, stale, unknown or malformed starts nothing; an event id starts at most one run,
however it is redelivered."""

import json
import subprocess
import threading
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from tests.triggers.conftest import deliver
from vectorbea.budgets import killswitch
from vectorbea.eventlog import store
from vectorbea.eventlog.models import Run
from vectorbea.keys import crypto
from vectorbea.triggers import webhooks
from vectorbea.triggers.models import WebhookDelivery, WebhookEndpoint

pytestmark = pytest.mark.django_db

TICKET = {"ticket": "The printer is on fire", "priority": 1}


def runs_of(workflow) -> list[Run]:
    return list(Run.objects.filter(workflow=workflow))


def test_a_signed_delivery_starts_a_run_with_the_body_as_its_input(client, hook, workflow):
    endpoint, secret = hook

    response = deliver(client, endpoint, secret, TICKET, event_id="evt-42")

    assert response.status_code == 202, response.content
    [run] = runs_of(workflow)
    assert response.json() == {"run_id": str(run.id)}
    assert store.load(run.id).state.input == TICKET
    assert run.idempotency_key == f"webhook:{endpoint.id}:evt-42"
    delivery = WebhookDelivery.objects.get(endpoint=endpoint)
    assert (delivery.event_id, delivery.run_id, delivery.status) == ("evt-42", run.id, 202)
    endpoint.refresh_from_db()
    assert endpoint.last_delivery_at is not None


def test_the_endpoint_is_csrf_exempt_and_needs_no_login(hook, workflow):
    endpoint, secret = hook
    client = Client(enforce_csrf_checks=True)

    assert deliver(client, endpoint, secret, TICKET).status_code == 202


@pytest.mark.parametrize(
    "tamper",
    ["wrong secret", "altered body", "altered event id", "not hex", "no version"],
)
def test_a_bad_signature_is_refused_and_starts_nothing(client, hook, workflow, tamper):
    endpoint, secret = hook
    raw = json.dumps(TICKET).encode()
    ts = str(int(time.time()))
    good = webhooks.signature(secret, ts, "evt-1", raw)
    headers = {"Vectorbea-Timestamp": ts, "Vectorbea-Event-Id": "evt-1"}
    if tamper == "wrong secret":
        headers["Vectorbea-Signature"] = webhooks.signature("whsec_guess", ts, "evt-1", raw)
    elif tamper == "altered body":
        headers["Vectorbea-Signature"] = good
        raw = json.dumps({**TICKET, "priority": 9}).encode()
    elif tamper == "altered event id":  # a captured delivery replayed as a "new" event
        headers["Vectorbea-Signature"] = good
        headers["Vectorbea-Event-Id"] = "evt-2"
    elif tamper == "not hex":
        headers["Vectorbea-Signature"] = "v1=zzzz"
    else:
        headers["Vectorbea-Signature"] = good.removeprefix("v1=")

    response = client.post(
        f"/hooks/{endpoint.public_id}/", raw, content_type="application/json", headers=headers
    )

    assert response.status_code == 401
    assert "signature does not match" in response.json()["detail"]
    assert runs_of(workflow) == []
    assert not WebhookDelivery.objects.exists()


@pytest.mark.parametrize("skew_seconds", [-6 * 60, 6 * 60])
def test_a_timestamp_six_minutes_away_is_refused(client, hook, workflow, skew_seconds):
    endpoint, secret = hook

    response = deliver(client, endpoint, secret, TICKET, timestamp=int(time.time()) + skew_seconds)

    assert response.status_code == 401
    assert "more than 5 minutes" in response.json()["detail"]
    assert runs_of(workflow) == []


def test_a_timestamp_four_minutes_old_is_accepted(client, hook, workflow):
    endpoint, secret = hook

    response = deliver(client, endpoint, secret, TICKET, timestamp=int(time.time()) - 4 * 60)

    assert response.status_code == 202


@pytest.mark.parametrize(
    "missing", ["Vectorbea-Timestamp", "Vectorbea-Event-Id", "Vectorbea-Signature"]
)
def test_a_delivery_missing_a_header_is_refused(client, hook, workflow, missing):
    endpoint, secret = hook

    response = deliver(client, endpoint, secret, TICKET, omit=(missing,))

    assert response.status_code == 401
    assert response.json() == {"detail": f"Missing header: {missing}."}
    assert runs_of(workflow) == []


def test_a_delivery_without_any_signature_headers_names_them_all(client, hook):
    endpoint, _ = hook

    response = client.post(f"/hooks/{endpoint.public_id}/", TICKET, content_type="application/json")

    assert response.status_code == 401
    assert response.json()["detail"] == (
        "Missing headers: Vectorbea-Timestamp, Vectorbea-Event-Id, Vectorbea-Signature."
    )


def test_an_unknown_or_turned_off_webhook_is_404(client, hook, workflow):
    endpoint, secret = hook
    unknown = WebhookEndpoint(public_id="x" * 32)

    assert deliver(client, unknown, secret, TICKET).status_code == 404
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(enabled=False)
    response = deliver(client, endpoint, secret, TICKET)
    assert response.status_code == 404
    assert "detail" in response.json()
    assert runs_of(workflow) == []


def test_only_post_is_allowed(client, hook):
    endpoint, _ = hook

    assert client.get(f"/hooks/{endpoint.public_id}/").status_code == 405


@pytest.mark.parametrize(
    ("body", "status", "detail"),
    [
        (
            b"{not json",
            400,
            "The body is not valid JSON: expecting property name enclosed in double quotes "
            "at line 1, column 2.",
        ),
        (b'["a list"]', 400, "The body must be a JSON object: it becomes the input."),
        (b'"a string"', 400, "The body must be a JSON object: it becomes the input."),
    ],
)
def test_a_body_that_is_not_a_json_object_is_refused(client, hook, workflow, body, status, detail):
    endpoint, secret = hook

    response = deliver(client, endpoint, secret, body)

    assert (response.status_code, response.json()) == (status, {"detail": detail})
    assert runs_of(workflow) == []


def test_a_body_over_one_megabyte_is_refused_with_413(client, hook, workflow):
    endpoint, secret = hook
    body = json.dumps({"ticket": "x" * webhooks.MAX_BODY_BYTES}).encode()

    response = deliver(client, endpoint, secret, body)

    assert response.status_code == 413
    assert runs_of(workflow) == []


@pytest.mark.parametrize("given", ["v1=é", "v1=\xff\xfe", "v1=ab\x00cd", "v1=\u0663"])
def test_a_signature_header_that_is_not_ascii_is_401_not_a_crash(client, hook, workflow, given):
    endpoint, _ = hook
    headers = {
        "Vectorbea-Timestamp": str(int(time.time())),
        "Vectorbea-Event-Id": "evt-1",
        "Vectorbea-Signature": given,
    }

    response = client.post(
        f"/hooks/{endpoint.public_id}/", TICKET, content_type="application/json", headers=headers
    )

    assert response.status_code == 401
    assert response.json() == {
        "detail": "Vectorbea-Signature must be printable ASCII: v1=<hex HMAC-SHA256 digest>."
    }
    assert runs_of(workflow) == []


@pytest.mark.parametrize("timestamp", ["²", "¹²³", "1" * 5000, "+123", " 123"])
def test_a_timestamp_that_is_not_plain_digits_is_401_even_when_signed(
    client, hook, workflow, timestamp
):
    """ "²".isdigit() is true and int() refuses it; a validly signed delivery with such a
    timestamp (or thousands of digits) must still be a plain 401."""
    endpoint, secret = hook
    raw = json.dumps(TICKET).encode()
    headers = {
        "Vectorbea-Timestamp": timestamp,
        "Vectorbea-Event-Id": "evt-1",
        "Vectorbea-Signature": webhooks.signature(secret, timestamp, "evt-1", raw),
    }

    response = client.post(
        f"/hooks/{endpoint.public_id}/", raw, content_type="application/json", headers=headers
    )

    assert response.status_code == 401
    assert response.json() == {
        "detail": "Vectorbea-Timestamp must be a unix time in whole seconds."
    }


@pytest.mark.parametrize("depth", [65, 5_000, 100_000])
def test_a_signed_body_nested_past_the_limit_is_400_in_plain_words(client, hook, workflow, depth):
    endpoint, secret = hook
    body = b'{"ticket": ' + b"[" * depth + b"]" * depth + b"}"

    response = deliver(client, endpoint, secret, body)

    assert response.status_code == 400
    assert response.json() == {
        "detail": "The body is nested more than 64 levels deep; the limit is 64 levels."
    }
    assert runs_of(workflow) == []
    assert not WebhookDelivery.objects.exists()


@pytest.mark.parametrize(
    ("body", "path", "what"),
    [
        (b'{"ticket": "a", "x\\u0000y": 1}', "input", "a NUL character (\\u0000)"),
        (b'{"ticket": "a", "meta": {"k\\u0000": 1}}', "input.meta", "a NUL character"),
        (b'{"ticket": "a", "meta": {"k": ["\\u0000"]}}', "input.meta.k[0]", "a NUL"),
        (b'{"ticket": "a\\ud800"}', "input.ticket", "an unpaired surrogate"),
        (b'{"\\udc00": 1, "ticket": "a"}', "input", "an unpaired surrogate"),
    ],
)
def test_signed_text_postgres_cannot_store_is_422_naming_where_and_stores_nothing(
    client, hook, workflow, body, path, what
):
    endpoint, secret = hook

    response = deliver(client, endpoint, secret, body)

    assert response.status_code == 422
    [problem] = response.json()["problems"]
    assert problem["path"] == path
    assert what in problem["message"]
    assert response.json()["detail"] == problem["message"]
    assert runs_of(workflow) == []
    assert not WebhookDelivery.objects.exists()


@pytest.mark.parametrize(
    "body",
    [
        b'{"ticket": "a", "n": 1e999}',
        b'{"ticket": "a", "n": NaN}',
        b'{"ticket": 1' + b"0" * 5000 + b"}",
    ],
)
def test_a_signed_body_with_an_impossible_number_is_400(client, hook, workflow, body):
    endpoint, secret = hook

    response = deliver(client, endpoint, secret, body)

    assert response.status_code == 400
    assert response.json()["detail"].startswith("The body ")
    assert runs_of(workflow) == []


def test_input_that_does_not_match_the_workflow_is_422_with_paths(client, hook, workflow):
    endpoint, secret = hook

    response = deliver(client, endpoint, secret, {"priority": "high"})

    assert response.status_code == 422
    answer = response.json()
    assert answer["detail"] == "The body does not match the workflow's input."
    assert {p["path"] for p in answer["problems"]} == {"input", "input.priority"}
    assert any("'ticket' is a required property" in p["message"] for p in answer["problems"])
    assert runs_of(workflow) == []
    assert WebhookDelivery.objects.get(endpoint=endpoint).status == 422


def test_a_thrown_kill_switch_is_409_and_the_same_event_starts_once_it_is_off(
    client, hook, workflow, acme
):
    endpoint, secret = hook
    killswitch.stop_everything(acme.id, actor="alice", reason="runaway spend")

    refused = deliver(client, endpoint, secret, TICKET, event_id="evt-7")

    assert refused.status_code == 409
    assert "kill switch" in refused.json()["detail"]
    assert runs_of(workflow) == []

    killswitch.allow_again(acme.id, actor="alice")
    accepted = deliver(client, endpoint, secret, TICKET, event_id="evt-7")
    assert accepted.status_code == 202
    assert len(runs_of(workflow)) == 1
    assert WebhookDelivery.objects.get(endpoint=endpoint).attempts == 2


def test_a_workflow_that_is_not_published_is_409(client, acme, alice):
    from vectorbea.workflows.models import Workflow

    draft_only = Workflow.objects.create(workspace=acme, name="Draft only", draft={})
    endpoint, secret = webhooks.create_endpoint(draft_only, alice)

    response = deliver(client, endpoint, secret, TICKET)

    assert response.status_code == 409
    assert "no published version" in response.json()["detail"]


def test_a_redelivery_of_an_event_starts_no_second_run(client, hook, workflow):
    endpoint, secret = hook

    first = deliver(client, endpoint, secret, TICKET, event_id="evt-9")
    again = deliver(client, endpoint, secret, TICKET, event_id="evt-9")
    other = deliver(client, endpoint, secret, TICKET, event_id="evt-10")

    assert (first.status_code, again.status_code, other.status_code) == (202, 200, 202)
    assert again.json() == first.json()
    assert other.json() != first.json()
    assert len(runs_of(workflow)) == 2
    assert WebhookDelivery.objects.get(event_id="evt-9").attempts == 2


def test_a_redelivery_after_its_delivery_row_was_pruned_still_starts_nothing(
    client, hook, workflow
):
    endpoint, secret = hook
    first = deliver(client, endpoint, secret, TICKET, event_id="evt-old")
    WebhookDelivery.objects.update(received_at=timezone.now() - timedelta(hours=25))
    assert webhooks.prune_deliveries() == 1

    again = deliver(client, endpoint, secret, TICKET, event_id="evt-old")

    assert again.status_code == 200
    assert again.json() == first.json()
    assert len(runs_of(workflow)) == 1


def test_pruning_forgets_only_deliveries_older_than_a_day(client, hook):
    endpoint, secret = hook
    for n in range(3):
        deliver(client, endpoint, secret, TICKET, event_id=f"evt-{n}")
    WebhookDelivery.objects.filter(event_id__in=["evt-0", "evt-1"]).update(
        received_at=timezone.now() - timedelta(hours=24, minutes=1)
    )

    assert webhooks.prune_deliveries(limit=1) == 1  # batched
    assert webhooks.prune_deliveries() == 1
    assert webhooks.prune_deliveries() == 0
    assert list(WebhookDelivery.objects.values_list("event_id", flat=True)) == ["evt-2"]


@pytest.mark.django_db(transaction=True)
def test_racing_deliveries_of_one_event_start_exactly_one_run(hook, workflow):
    endpoint, secret = hook
    raw = json.dumps(TICKET).encode()
    ts = str(int(time.time()))
    headers = {
        "Vectorbea-Timestamp": ts,
        "Vectorbea-Event-Id": "evt-race",
        "Vectorbea-Signature": webhooks.signature(secret, ts, "evt-race", raw),
    }
    senders = 8
    barrier = threading.Barrier(senders)
    answers: list[tuple[int, str]] = []

    def send() -> None:
        try:
            client = Client()
            barrier.wait()
            response = client.post(
                f"/hooks/{endpoint.public_id}/",
                raw,
                content_type="application/json",
                headers=headers,
            )
            answers.append((response.status_code, response.json().get("run_id", "")))
        finally:
            connection.close()

    threads = [threading.Thread(target=send) for _ in range(senders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    [run] = runs_of(workflow)
    assert sorted(status for status, _ in answers) == [200] * (senders - 1) + [202]
    assert {run_id for _, run_id in answers} == {str(run.id)}
    assert WebhookDelivery.objects.get(event_id="evt-race").attempts == senders


def test_the_signing_secret_is_encrypted_at_rest_and_bound_to_its_endpoint(hook, workflow, alice):
    endpoint, secret = hook
    other, _ = webhooks.create_endpoint(workflow, alice)
    stored = bytes(WebhookEndpoint.objects.get(pk=endpoint.pk).secret_ciphertext)

    assert secret.startswith("whsec_") and len(secret) > 40
    assert secret.encode() not in stored
    assert webhooks.secret_of(endpoint) == secret
    other.secret_ciphertext = stored  # copied to another row: it does not decrypt
    with pytest.raises(crypto.DecryptionFailed):
        webhooks.secret_of(other)


def test_public_ids_are_long_and_unguessable(hook, workflow, alice):
    endpoint, _ = hook
    ids = {endpoint.public_id} | {
        webhooks.create_endpoint(workflow, alice)[0].public_id for _ in range(5)
    }

    assert len(ids) == 6
    assert all(len(public_id) >= 22 for public_id in ids)


def test_the_shell_example_signs_like_the_server_checks(tmp_path):
    secret = "whsec_example-secret"
    snippet = webhooks.curl_example("http://vb.test/hooks/x/", secret, {"required": ["ticket"]})
    script = snippet.split("curl ", 1)[0] + 'echo "$TS $EVENT $SIG $BODY"\n'

    out = subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, check=True
    ).stdout.strip()

    ts, event_id, sig, body = out.split(" ", 3)
    assert json.loads(body) == {"ticket": "example"}
    assert f"v1={sig}" == webhooks.signature(secret, ts, event_id, body.encode())
