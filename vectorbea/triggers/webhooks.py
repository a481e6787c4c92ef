"""Inbound webhooks: endpoints, their signing secrets, and the one way a delivery starts a run.

A sender signs each delivery with the endpoint's secret:

    Vectorbea-Timestamp: <unix seconds>
    Vectorbea-Event-Id:  <the sender's id for this event, 1-100 printable ASCII characters>
    Vectorbea-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>.<event id>.<raw body>")>

The event id is signed too, so a captured delivery replayed inside the five-minute window
cannot pose as a new event. The run's idempotency key is `webhook:<endpoint id>:<event id>`:
an event id starts at most one run, however often (or however concurrently) it is delivered.
The run counts as started by the endpoint's creator (see runs.initiators).
"""

import hashlib
import hmac
import json
import secrets
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from uuid import UUID, uuid4

from django.db import connection, transaction
from django.db.models import F
from django.db.models.functions import Now

from vectorbea.engine import VectorbeaError
from vectorbea.engine.limits import BadJson, parse_json
from vectorbea.eventlog.models import Run
from vectorbea.keys import crypto, vault
from vectorbea.keys.models import Keyring
from vectorbea.runs.commands import CannotStart, InvalidRunInput, start_run
from vectorbea.runs.initiators import Initiator
from vectorbea.triggers.models import WebhookDelivery, WebhookEndpoint
from vectorbea.workflows.models import Workflow

SIGNATURE_VERSION = "v1"
TOLERANCE_SECONDS = 5 * 60
MAX_BODY_BYTES = 1_000_000
MAX_EVENT_ID_CHARS = 100
MAX_TIMESTAMP_DIGITS = 12
KEEP_DELIVERIES = "24 hours"


def _aad(workspace_id: UUID, endpoint_id: UUID) -> bytes:
    return f"vectorbea:webhook:v1:{workspace_id}:{endpoint_id}".encode()


def create_endpoint(workflow: Workflow, by: Any) -> tuple[WebhookEndpoint, str]:
    """A new endpoint for `workflow` and its signing secret (the only time it is returned)."""
    secret = "whsec_" + secrets.token_urlsafe(32)
    endpoint = WebhookEndpoint(
        id=uuid4(),
        workflow=workflow,
        public_id=secrets.token_urlsafe(24),  # 32 characters, 192 random bits
        created_by=by if getattr(by, "pk", None) else None,
    )
    data_key = vault.data_key_of(vault.keyring_for(workflow.workspace))
    endpoint.secret_ciphertext = crypto.seal(
        data_key, secret.encode(), _aad(workflow.workspace_id, endpoint.id)
    )
    endpoint.save(force_insert=True)
    return endpoint, secret


def secret_of(endpoint: WebhookEndpoint) -> str:
    workspace_id = endpoint.workflow.workspace_id
    keyring = Keyring.objects.get(workspace_id=workspace_id)
    return crypto.open_sealed(
        vault.data_key_of(keyring),
        endpoint.secret_ciphertext,
        _aad(workspace_id, endpoint.id),
        f"the signing secret of webhook {endpoint.id}",
    ).decode()


def signature(secret: str, timestamp: str, event_id: str, body: bytes) -> str:
    """The Vectorbea-Signature header value for a delivery."""
    signed = timestamp.encode() + b"." + event_id.encode() + b"." + body
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"{SIGNATURE_VERSION}={digest}"


def curl_example(url: str, secret: str, schema: dict[str, Any]) -> str:
    """A shell snippet that signs and sends one delivery with openssl and curl."""
    body = json.dumps(example_input(schema))
    return "\n".join(
        [
            f"SECRET={shlex.quote(secret)}",
            f"BODY={shlex.quote(body)}",
            "TS=$(date +%s)",
            "EVENT=evt-$(date +%s%N)",
            'SIG=$(printf \'%s.%s.%s\' "$TS" "$EVENT" "$BODY" \\',
            "  | openssl dgst -sha256 -hmac \"$SECRET\" | sed 's/^.* //')",
            f"curl -sS -X POST {shlex.quote(url)} \\",
            "  -H 'Content-Type: application/json' \\",
            '  -H "Vectorbea-Timestamp: $TS" \\',
            '  -H "Vectorbea-Event-Id: $EVENT" \\',
            '  -H "Vectorbea-Signature: v1=$SIG" \\',
            '  --data-binary "$BODY"',
        ]
    )


EXAMPLE_VALUES = {
    "string": "example",
    "integer": 1,
    "number": 1,
    "boolean": True,
    "array": [],
    "object": {},
}


def example_input(schema: dict[str, Any]) -> dict[str, Any]:
    """A body for the example: the schema's required properties with plain values."""
    properties = schema.get("properties") or {}
    example: dict[str, Any] = {}
    for name in schema.get("required") or []:
        spec = properties.get(name) or {}
        kind = spec.get("type")
        if spec.get("enum"):
            example[name] = spec["enum"][0]
        elif "default" in spec:
            example[name] = spec["default"]
        else:
            example[name] = EXAMPLE_VALUES.get(kind if isinstance(kind, str) else "string", "")
    return example


class Refused(VectorbeaError):
    """A delivery that starts nothing, with the HTTP status and the reason to answer."""

    def __init__(self, status: int, detail: str, problems: list[dict] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.problems = problems

    def summary(self) -> str:
        paths = "; ".join(f"{p['path']}: {p['message']}" for p in self.problems or [])
        return f"{self.detail} {paths}" if paths else self.detail


def is_whole_number(text: str, max_digits: int) -> bool:
    """Whether a header is a whole number in ASCII digits ("²".isdigit() is true, and
    int() refuses it), short enough to read."""
    return 0 < len(text) <= max_digits and text.isascii() and text.isdigit()


def verify(secret: str, headers: Mapping[str, str], body: bytes, now: float) -> str:
    """The delivery's event id, if its headers carry a valid, fresh signature; else Refused
    (401). `now` is the server's clock in unix seconds."""
    timestamp = headers.get("Vectorbea-Timestamp", "")
    event_id = headers.get("Vectorbea-Event-Id", "")
    given = headers.get("Vectorbea-Signature", "")
    missing = [
        name
        for name, value in (
            ("Vectorbea-Timestamp", timestamp),
            ("Vectorbea-Event-Id", event_id),
            ("Vectorbea-Signature", given),
        )
        if not value
    ]
    if missing:
        raise Refused(
            401, f"Missing header{'s' if len(missing) > 1 else ''}: {', '.join(missing)}."
        )
    if not is_whole_number(timestamp, MAX_TIMESTAMP_DIGITS):
        raise Refused(401, "Vectorbea-Timestamp must be a unix time in whole seconds.")
    if len(event_id) > MAX_EVENT_ID_CHARS or not (event_id.isascii() and event_id.isprintable()):
        raise Refused(
            401, f"Vectorbea-Event-Id must be 1-{MAX_EVENT_ID_CHARS} printable ASCII characters."
        )
    if not (given.isascii() and given.isprintable()):  # compare_digest takes ASCII text only
        raise Refused(
            401, "Vectorbea-Signature must be printable ASCII: v1=<hex HMAC-SHA256 digest>."
        )
    expected = signature(secret, timestamp, event_id, body)
    if not any(hmac.compare_digest(expected, part.strip()) for part in given.split(",")):
        raise Refused(401, "The signature does not match: sign with this endpoint's secret.")
    if abs(now - int(timestamp)) > TOLERANCE_SECONDS:
        raise Refused(
            401,
            "The timestamp is more than 5 minutes away from the server's clock: sign each "
            "delivery when you send it.",
        )
    return event_id


def parse_body(body: bytes) -> dict[str, Any]:
    """A verified delivery's body as the run's input, or Refused: 400 for what is not a JSON
    object within the limits, 422 naming where the text cannot be stored."""
    try:
        payload = parse_json(body, "The body", max_bytes=MAX_BODY_BYTES)
    except BadJson as exc:
        if exc.path is None:
            raise Refused(400, exc.message) from None
        path = "input" + (exc.path if exc.path[:1] in ("", "[") else f".{exc.path}")
        raise Refused(422, exc.message, [{"path": path, "message": exc.message}]) from None
    if not isinstance(payload, dict):
        raise Refused(400, "The body must be a JSON object: it becomes the input.")
    return payload


@dataclass(frozen=True)
class Accepted:
    run: Run
    redelivery: bool  # True: this event id had already started the run


def deliver(endpoint: WebhookEndpoint, event_id: str, payload: dict[str, Any]) -> Accepted:
    """Start the run for a verified delivery, or answer with the run it already started.

    Racing deliveries of one event id queue on its delivery row (FOR UPDATE), so exactly one
    of them starts the run and the others answer with it. The run's idempotency key holds
    even after the delivery row is pruned. Raises Refused (409, 422)."""
    workflow = endpoint.workflow
    key = f"webhook:{endpoint.id}:{event_id}"
    with transaction.atomic():
        delivery = _locked_delivery(endpoint, event_id)
        existing = (
            Run.objects.filter(pk=delivery.run_id).first()
            if delivery.run_id
            else Run.objects.filter(workspace_id=workflow.workspace_id, idempotency_key=key).first()
        )
        if existing is not None:
            _record(delivery, 200, "", existing)
            return Accepted(existing, redelivery=True)
        run, refusal = _start(endpoint, payload, key)
        if refusal is None:
            _record(delivery, 202, "", run)
        else:  # recorded for the triggers page, and committed with it
            _record(delivery, refusal.status, refusal.summary(), None)
    if refusal is not None:
        raise refusal
    return Accepted(run, redelivery=False)


def _start(
    endpoint: WebhookEndpoint, payload: dict[str, Any], key: str
) -> tuple[Any, Refused | None]:
    """Start the run for the endpoint's creator (the person behind it), via the endpoint."""
    started_by = Initiator(endpoint.created_by, via=f"webhook:{endpoint.id}")
    try:
        run = start_run(endpoint.workflow, payload, started_by=started_by, idempotency_key=key)
        return run, None
    except InvalidRunInput as exc:
        problems = [{"path": p.path, "message": p.message} for p in exc.problems]
        detail = "The body does not match the workflow's input."
        return None, Refused(422, detail, problems)
    except CannotStart as exc:  # not published, or the kill switch is on
        return None, Refused(409, str(exc))


def _locked_delivery(endpoint: WebhookEndpoint, event_id: str) -> WebhookDelivery:
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO triggers_webhookdelivery "
            "(endpoint_id, event_id, status, detail, attempts, received_at, last_received_at) "
            "VALUES (%s, %s, 0, '', 0, now(), now()) "
            "ON CONFLICT (endpoint_id, event_id) DO NOTHING",
            [endpoint.id, event_id],
        )
    return WebhookDelivery.objects.select_for_update().get(endpoint=endpoint, event_id=event_id)


def _record(delivery: WebhookDelivery, status: int, detail: str, run: Run | None) -> None:
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        status=status,
        detail=detail[:500],
        run_id=run.id if run is not None else delivery.run_id,
        attempts=F("attempts") + 1,
        last_received_at=Now(),
    )
    WebhookEndpoint.objects.filter(pk=delivery.endpoint_id).update(last_delivery_at=Now())


def prune_deliveries(limit: int = 500) -> int:
    """Forget deliveries received more than 24 hours ago, a batch at a time (the runs they
    started keep their idempotency keys, so a late redelivery still starts nothing)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM triggers_webhookdelivery WHERE id IN ("
            "  SELECT id FROM triggers_webhookdelivery "
            "  WHERE received_at < now() - %s::interval "
            "  ORDER BY received_at LIMIT %s FOR UPDATE SKIP LOCKED)",
            [KEEP_DELIVERIES, limit],
        )
        return cursor.rowcount
