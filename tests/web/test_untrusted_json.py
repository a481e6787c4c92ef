"""Fuzz: every entry point that reads JSON from outside, fed hostile JSON (NUL and unpaired
surrogates in strings and keys, nesting to 100,000 levels, numbers past a float or with
thousands of digits, NaN, bytes that are not UTF-8, junk), answers with a plain refusal or
takes the value; never a 500, never a traceback, never "recursion" in a message, and a
refusal writes nothing.

The entry points: the API's bodies, webhook deliveries (body and headers), workflow import
(pasted and uploaded), draft saves (JSON and form), the config panel, the run form, the
schedule form, the forms that resolve a step needing attention, the start_run command and
the websocket consumers. Each test draws a few dozen cases and finishes in seconds."""

import io
import json
import time

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.api.support import ApiClient, token_for
from tests.approvals.support import publish_gated
from tests.support.hostile_json import (
    hostile_bodies,
    hostile_objects,
    hostile_texts,
    hostile_values,
    nasty_text,
)
from tests.support.workflows import chain, publish
from vectorbea.accounts.models import Role
from vectorbea.engine.limits import text_problem
from vectorbea.eventlog.models import Run
from vectorbea.runs.commands import start_run
from vectorbea.runs.consumers import RunTimelineConsumer, WorkspaceConsumer
from vectorbea.runs.forms import RetryStepForm, SupplyOutputForm
from vectorbea.triggers import webhooks
from vectorbea.triggers.models import Schedule, WebhookDelivery
from vectorbea.workflows.models import Workflow

pytestmark = pytest.mark.django_db

FUZZ = settings(
    max_examples=30,
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)

SCHEMA = {
    "type": "object",
    "properties": {"ticket": {"type": "string"}, "meta": {"type": "object"}},
}


def as_a_browser_sends(text: str) -> str:
    """Form fields travel as UTF-8: a browser replaces an unpaired surrogate with U+FFFD."""
    return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")


def assert_plain(response) -> None:
    """A 4xx or a success, and nothing a person should not see."""
    assert response.status_code < 500, response.content[:300]
    content = response.content.decode("utf-8", "replace")
    assert "Traceback" not in content
    assert "recursion" not in content


def assert_plain_json(response) -> dict:
    """Also JSON, and a refusal says why: "detail" (the API, webhooks) or "message" (the
    builder's saves)."""
    assert_plain(response)
    body = response.json()
    if response.status_code >= 400:
        reason = body.get("detail") or body.get("message")
        assert isinstance(reason, str) and reason
        assert text_problem(body) is None  # the refusal itself is storable text
    return body


@pytest.fixture
def workflow(acme):
    return publish(acme, {**chain(1), "input_schema": SCHEMA}, name="Triage")


@pytest.fixture
def api(acme) -> ApiClient:
    return ApiClient(token_for(acme, Role.ADMIN))


@pytest.fixture
def as_alice(alice) -> Client:
    client = Client()
    client.force_login(alice)
    return client


# --- the API -----------------------------------------------------------------------------------


@pytest.fixture
def gated_run(acme) -> Run:
    return start_run(publish_gated(acme), {"amount": 40, "customer": "Ada"})


@FUZZ
@given(body=hostile_bodies())
def test_the_api_refuses_hostile_bodies_plainly(api, workflow, body):
    runs = Run.objects.count()

    response = api.post_raw(f"/workflows/{workflow.id}/runs", body)

    assert_plain_json(response)
    if response.status_code >= 400:
        assert Run.objects.count() == runs


@FUZZ
@given(text=hostile_texts())
def test_the_api_refuses_hostile_run_input_plainly(api, workflow, text):
    runs = Run.objects.count()

    body = ('{"input": ' + text + "}").encode("utf-8", "surrogatepass")

    response = api.post_raw(f"/workflows/{workflow.id}/runs", body)

    assert_plain_json(response)
    if response.status_code >= 400:
        assert Run.objects.count() == runs


@FUZZ
@given(value=hostile_values(), ensure_ascii=st.booleans())
def test_the_api_refuses_hostile_approval_decisions_plainly(api, gated_run, value, ensure_ascii):
    body = {"approve": True, "fields": value, "reason": value}
    try:
        raw = json.dumps(body, ensure_ascii=ensure_ascii).encode("utf-8", "surrogatepass")
    except ValueError:  # an int too long for Python to write: send its digits instead
        raw = b'{"approve": true, "reason": ' + b"9" * 5000 + b"}"

    response = api.post_raw(f"/approvals/{gated_run.id}/gate", raw)

    assert_plain_json(response)


# --- webhooks ----------------------------------------------------------------------------------


@FUZZ
@given(body=hostile_bodies(), event=st.integers(0, 10**9))
def test_a_signed_hostile_delivery_is_refused_plainly_and_records_nothing(
    client, workflow, alice, body, event
):
    endpoint, secret = webhooks.create_endpoint(workflow, alice)
    timestamp = str(int(time.time()))
    event_id = f"evt-{event}"
    headers = {
        "Vectorbea-Timestamp": timestamp,
        "Vectorbea-Event-Id": event_id,
        "Vectorbea-Signature": webhooks.signature(secret, timestamp, event_id, body),
    }

    response = client.post(
        f"/hooks/{endpoint.public_id}/", body, content_type="application/json", headers=headers
    )

    assert_plain_json(response)
    if response.status_code in (400, 413):
        assert not WebhookDelivery.objects.filter(endpoint=endpoint).exists()


latin1_header = st.text(alphabet=st.characters(max_codepoint=255), max_size=40)
# Headers that pass the earlier checks, so the later ones are reached too.
timestamps = st.one_of(st.integers(0, 10**30).map(str), latin1_header)
event_ids = st.one_of(st.just("evt-1"), latin1_header)
signatures = st.one_of(latin1_header.map(lambda text: "v1=" + text), latin1_header)


@FUZZ
@given(timestamp=timestamps, event_id=event_ids, signature=signatures)
@example(timestamp=str(int(time.time())), event_id="evt-1", signature="v1=é")
@example(timestamp="²", event_id="evt-1", signature="v1=00")
def test_hostile_signature_headers_are_401_never_a_crash(
    client, workflow, alice, timestamp, event_id, signature
):
    """Header values arrive decoded as Latin-1: any of its 256 characters can be in them."""
    endpoint, _ = webhooks.create_endpoint(workflow, alice)
    headers = {
        "Vectorbea-Timestamp": timestamp,
        "Vectorbea-Event-Id": event_id,
        "Vectorbea-Signature": signature,
    }

    response = client.post(
        f"/hooks/{endpoint.public_id}/", b"{}", content_type="application/json", headers=headers
    )

    assert response.status_code == 401
    assert_plain_json(response)


# --- workflows: import, drafts, the panel, the run form ----------------------------------------


@FUZZ
@given(text=hostile_texts(), upload=st.booleans())
def test_an_import_of_hostile_json_is_refused_plainly_and_saves_nothing(
    as_alice, acme, text, upload
):
    workflows = Workflow.objects.filter(workspace=acme).count()
    if upload:
        raw = text.encode("utf-8", "surrogatepass")
        data = {"file": SimpleUploadedFile("w.json", raw, content_type="application/json")}
    else:
        data = {"text": as_a_browser_sends(text)}

    response = as_alice.post(reverse("workflow-import", args=["acme"]), data)

    assert_plain(response)
    if response.status_code != 302:
        assert Workflow.objects.filter(workspace=acme).count() == workflows


@pytest.fixture
def draft(acme, alice) -> Workflow:
    return Workflow.objects.create(workspace=acme, name="Draft", draft=chain(1))


def draft_url(name: str, workflow: Workflow) -> str:
    return reverse(name, args=["acme", workflow.id])


@FUZZ
@given(text=hostile_texts(), as_form=st.booleans())
def test_a_draft_save_of_hostile_json_is_refused_plainly_and_changes_nothing(
    as_alice, draft, text, as_form
):
    draft.refresh_from_db()
    revision = draft.draft_revision
    if as_form:
        response = as_alice.post(
            draft_url("workflow-draft", draft),
            {"definition": as_a_browser_sends(text), "revision": str(revision)},
        )
    else:
        body = '{"definition": ' + text + ', "revision": ' + str(revision) + "}"
        response = as_alice.post(
            draft_url("workflow-draft", draft),
            body.encode("utf-8", "surrogatepass"),
            content_type="application/json",
        )

    assert_plain_json(response)
    draft.refresh_from_db()
    if response.status_code >= 400:
        assert draft.draft_revision == revision
    assert text_problem(draft.draft) is None


@FUZZ
@given(text=hostile_texts())
def test_the_panel_renders_whatever_definition_it_is_sent(as_alice, draft, text):
    response = as_alice.post(
        draft_url("workflow-panel", draft),
        {"definition": as_a_browser_sends(text), "step": "s0"},
    )

    assert response.status_code == 200
    assert_plain(response)


@FUZZ
@given(meta=hostile_objects(), ticket=nasty_text)
@example(meta='{"a": ' + "[" * 5_000 + "]" * 5_000 + "}", ticket="t")
def test_the_run_form_refuses_hostile_input_plainly(as_alice, workflow, meta, ticket):
    runs = Run.objects.count()

    form = as_alice.get(draft_url("workflow-run", workflow)).context["form"]
    fields = {name: key for key, name in form.input_names.items()}  # in the stored order

    response = as_alice.post(
        draft_url("workflow-run", workflow),
        {
            "idempotency_key": f"k{runs}-{len(meta)}",
            fields["ticket"]: as_a_browser_sends(ticket),
            fields["meta"]: as_a_browser_sends(meta),
        },
    )

    assert_plain(response)
    if response.status_code != 302:
        assert Run.objects.count() == runs


# --- schedules, resolving a step, the command line, websockets ---------------------------------


@FUZZ
@given(text=hostile_texts())
def test_a_schedule_with_hostile_input_is_refused_plainly(as_alice, workflow, text):
    schedules = Schedule.objects.count()

    response = as_alice.post(
        draft_url("schedule-create", workflow),
        {"cron": "0 9 * * *", "timezone": "UTC", "input": as_a_browser_sends(text)},
    )

    assert_plain(response)
    if response.status_code != 302:
        assert Schedule.objects.count() == schedules


@FUZZ
@given(text=hostile_texts())
def test_the_forms_that_resolve_a_step_refuse_hostile_json_plainly(text):
    text = as_a_browser_sends(text)
    retry = RetryStepForm({"step": "s0", "settings": text})
    supply = SupplyOutputForm({"step": "s0", "output": text})

    for form, field in ((retry, "settings"), (supply, "output")):
        if form.is_valid():
            assert text_problem(form.cleaned_data[field]) is None
        else:
            assert "recursion" not in str(form.errors)


@FUZZ
@given(text=hostile_texts())
def test_the_start_run_command_refuses_hostile_input_plainly(workflow, text):
    try:
        call_command("start_run", str(workflow.id), "--input", text, stdout=io.StringIO())
    except CommandError as refused:
        assert "recursion" not in str(refused)


@FUZZ
@given(text=hostile_texts())
def test_the_websocket_consumers_ignore_hostile_messages(text):
    timeline = RunTimelineConsumer()
    timeline.catch_up = lambda: None
    timeline.send_texts_so_far = lambda: None
    workspace = WorkspaceConsumer()
    workspace.topics = []

    timeline.receive(text_data=text)
    workspace.receive(text_data=text)

    assert timeline.sent is None or 0 <= timeline.sent <= 2_147_483_647
    assert all(isinstance(topic, str) for topic in workspace.topics)
