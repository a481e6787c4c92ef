"""A run that needs a person: the run page's panel and its answers (retry, with new settings
or on the newest version; supply the output; skip; fail), who may answer, the run list's
tab and bulk retry, the inbox's section and the email to owners and admins."""

import json
import re
from html import unescape

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse

from tests.conftest import make_member
from tests.runs.test_views_list import needs_attention, record
from tests.support.live import event_rows
from tests.support.workflows import chain, publish
from vectorbea.accounts.models import Role
from vectorbea.engine import StepFailed
from vectorbea.eventlog import store
from vectorbea.eventlog.models import RunSummary
from vectorbea.runs.attention import notify_attention
from vectorbea.runs.commands import resolve_attention, start_run
from vectorbea.workflows.models import WorkflowVersion, content_hash

HTMX = {"HX-Request": "true"}
SETTINGS = {"tool": "lookup_region", "args": {"region": "mars"}}
FIXED = {"tool": "lookup_region", "args": {"region": "eu"}}


def lookup_flow(**step) -> dict:
    definition = chain(2)
    definition["steps"][0] = {
        "id": "s0",
        "kind": "tool",
        "name": "Lookup",
        "config": SETTINGS,
        **step,
    }
    return definition


def stop(run) -> None:
    needs_attention(run.id, "s0", "Unknown region 'mars': use 'eu' or 'us'")


@pytest.fixture
def stuck(acme):
    run = start_run(publish(acme, lookup_flow(), name="Nightly"), {"customer": "Initech"})
    stop(run)
    return run


def run_url(name: str, run, **kwargs) -> str:
    return reverse(name, kwargs={"ws": "acme", "run_id": run.id, **kwargs})


def resolve_url(run, action: str) -> str:
    return run_url(f"run-attention-{action.replace('_', '-')}", run)


def types(run) -> list[str]:
    return [t for _, t, _ in event_rows(run.id)]


def last(run, type_name: str) -> dict:
    return [p for _, t, p in event_rows(run.id) if t == type_name][-1]


def text(html: str) -> str:
    return unescape(re.sub(r"\s+", " ", html))


# --- the panel -----------------------------------------------------------------------------------


def test_the_run_page_says_what_stopped_and_offers_the_answers(client, alice, stuck):
    client.force_login(alice)
    html = client.get(run_url("run-detail", stuck)).content.decode()

    assert RunSummary.objects.get(run=stuck).status == "needs_attention"
    assert (
        'id="attention-panel"' in html and 'id="attention-panel" class="attention-panel" ' in html
    )
    page = text(html)
    assert "Needs attention: step ‘Lookup’" in page
    assert (
        "Step 'Lookup' failed after 1 attempt and will not be retried (permanent error such as "
        "bad configuration or a missing key): Unknown region 'mars': use 'eu' or 'us'" in page
    )
    assert "Edit the step’s settings" in page
    settings_box = re.search(r"<textarea[^>]*name=\"settings\"[^>]*>(.*?)</textarea>", html, re.S)
    assert json.loads(unescape(settings_box.group(1))) == SETTINGS
    assert "Supply the output instead" in page and "Fail the run" in page
    assert "Skip this step" not in page  # the workflow does not allow it
    assert "Run it on the newest version" not in page  # there is no newer one
    assert 'class="badge status-needs_attention" data-status="needs_attention"' in html
    assert ">Needs attention</span>" in html
    assert 'data-status="gave_up"' in html and "status-needs_attention" in html  # the step
    detail = client.get(run_url("run-step", stuck) + "?id=s0", headers=HTMX).content.decode()
    assert '<span class="badge status-needs_attention">' in detail


def test_a_viewer_sees_the_panel_without_the_forms_and_may_not_answer(client, acme, stuck):
    client.force_login(make_member("vic", acme, Role.VIEWER))
    html = client.get(run_url("run-detail", stuck)).content.decode()

    assert "Needs attention: step ‘Lookup’" in text(html)
    assert "/attention/" not in html and "<textarea" not in html
    assert "Someone who operates runs" in html
    response = client.post(resolve_url(stuck, "fail"), {"step": "s0"})
    assert response.status_code == 403
    assert "RunFailed" not in types(stuck)


def test_a_stranger_finds_no_such_run(client, bob, stuck):
    client.force_login(bob)
    assert client.get(run_url("run-detail", stuck)).status_code == 404
    assert client.post(resolve_url(stuck, "fail"), {"step": "s0"}).status_code == 404
    assert "RunFailed" not in types(stuck)


def test_answers_need_the_csrf_token(alice, stuck):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    response = client.post(resolve_url(stuck, "fail"), {"step": "s0"})
    assert response.status_code == 403
    assert "RunFailed" not in types(stuck)

    client.get(run_url("run-detail", stuck))  # sets the CSRF cookie
    token = client.cookies["csrftoken"].value
    response = client.post(resolve_url(stuck, "fail"), {"step": "s0"}, HTTP_X_CSRFTOKEN=token)
    assert response.status_code == 302
    assert types(stuck)[-1] == "RunFailed"


def test_answers_are_posts(client, alice, stuck):
    client.force_login(alice)
    assert client.get(resolve_url(stuck, "fail")).status_code == 405


# --- retry ---------------------------------------------------------------------------------------


def test_retry_with_new_settings_records_them_and_starts_the_step_again(client, alice, stuck):
    client.force_login(alice)
    response = client.post(
        resolve_url(stuck, "retry"),
        {"step": "s0", "settings": json.dumps(FIXED, indent=2), "note": "region was a typo"},
        headers=HTMX,
    )

    assert response.status_code == 200
    assert response["HX-Reswap"] == "none"  # the panel and the message come out of band
    html = response.content.decode()
    assert '<section id="attention-panel"' in html and 'hx-swap-oob="true"' in html
    assert "Retrying step &#x27;Lookup&#x27; with the new settings." in html
    assert 'id="attention-panel"' in html and "hidden" in html  # nothing left to answer
    resolved = last(stuck, "AttentionResolved")
    assert resolved["action"] == "retry" and resolved["config"] == FIXED
    assert resolved["actor"] == "alice" and resolved["note"] == "region was a typo"
    assert last(stuck, "RetryScheduled")["actor"] == "alice"
    state = store.load(stuck.id).state
    assert state.attention == {} and state.steps["s0"].config == FIXED
    page = text(client.get(run_url("run-detail", stuck)).content.decode())
    assert "alice retried step 'Lookup' with new settings: region was a typo" in page
    assert "Needs attention: Step 'Lookup' failed after 1 attempt" in page  # the story stays


def test_retry_with_the_settings_unchanged_gives_no_new_settings(client, alice, stuck):
    client.force_login(alice)
    response = client.post(
        resolve_url(stuck, "retry"),
        {"step": "s0", "settings": json.dumps(SETTINGS, indent=2)},
        headers=HTMX,
    )
    assert "Retrying step &#x27;Lookup&#x27;." in response.content.decode()
    assert last(stuck, "AttentionResolved")["config"] is None
    page = text(client.get(run_url("run-detail", stuck)).content.decode())
    assert "alice retried step 'Lookup'" in page and "with new settings" not in page


def test_retry_can_move_the_run_to_the_newest_version(client, alice, acme, stuck):
    newer = lookup_flow()
    newer["steps"][0]["config"] = FIXED
    v2 = WorkflowVersion.objects.create(
        workflow=stuck.workflow, number=2, definition=newer, content_hash=content_hash(newer)
    )
    client.force_login(alice)
    html = client.get(run_url("run-detail", stuck)).content.decode()
    assert "Run it on the newest version (v2)" in html
    assert 'name="version" value="2"' in html

    client.post(resolve_url(stuck, "retry"), {"step": "s0", "version": "2"})

    assert last(stuck, "AttentionResolved")["version_id"] == str(v2.id)
    assert store.load(stuck.id).version_id == v2.id
    page = text(client.get(run_url("run-detail", stuck)).content.decode())
    assert "alice retried step 'Lookup' on version 2" in page


def test_settings_that_are_not_json_are_shown_again_with_the_problem(client, alice, stuck):
    client.force_login(alice)
    typed = '{"tool": "lookup_region", "args": {"region": "eu",}}'
    before = types(stuck)

    response = client.post(
        resolve_url(stuck, "retry"), {"step": "s0", "settings": typed}, headers=HTMX
    )

    assert response.status_code == 200
    html = response.content.decode()
    assert html.startswith('<form class="attention-form attention-retry"')
    assert "This is not valid JSON: expecting property name enclosed in double quotes" in html
    assert typed in unescape(html)  # what the person typed is still there
    assert '<details class="attention-settings" open>' in html
    assert types(stuck) == before

    full = client.post(resolve_url(stuck, "retry"), {"step": "s0", "settings": typed})
    assert full.status_code == 400
    page = full.content.decode()
    assert "<html" in page and "This is not valid JSON" in page and typed in unescape(page)


def test_settings_must_be_an_object(client, alice, stuck):
    client.force_login(alice)
    html = client.post(
        resolve_url(stuck, "retry"), {"step": "s0", "settings": "[1, 2]"}, headers=HTMX
    ).content.decode()
    assert "The settings must be a JSON object" in html


def test_settings_the_step_kind_refuses_are_refused_in_plain_words(client, alice, stuck):
    client.force_login(alice)
    typed = json.dumps({"args": {"region": "eu"}})
    response = client.post(
        resolve_url(stuck, "retry"), {"step": "s0", "settings": typed}, headers=HTMX
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert 'class="alert alert-error form-problem" role="alert"' in html
    assert "is missing the required setting 'tool'" in text(html)
    assert "Traceback" not in html and typed in unescape(html)
    assert "AttentionResolved" not in types(stuck)


def test_a_version_that_does_not_exist_is_refused(client, alice, stuck):
    client.force_login(alice)
    html = client.post(
        resolve_url(stuck, "retry"), {"step": "s0", "version": "9"}, headers=HTMX
    ).content.decode()
    assert "The workflow has no version 9." in html


# --- supply, skip, fail --------------------------------------------------------------------------


def test_supplying_the_output_lets_the_run_go_on(client, alice, stuck):
    client.force_login(alice)
    output = {"region": "eu", "customers": 3}
    response = client.post(
        resolve_url(stuck, "supply_output"),
        {"step": "s0", "output": json.dumps(output), "note": "looked it up by hand"},
        headers=HTMX,
    )
    assert "Step &#x27;Lookup&#x27; has the output you gave; the run goes on." in (
        response.content.decode()
    )
    state = store.load(stuck.id).state
    assert state.steps["s0"].output == output and state.steps["s0"].resolution == "supplied"
    assert state.steps["s1"].status == "running"
    page = text(client.get(run_url("run-detail", stuck)).content.decode())
    assert "alice supplied the output of step 'Lookup': looked it up by hand" in page


def test_an_output_that_is_not_json_is_shown_again_with_the_problem(client, alice, stuck):
    client.force_login(alice)
    html = client.post(
        resolve_url(stuck, "supply_output"), {"step": "s0", "output": "region: eu"}, headers=HTMX
    ).content.decode()
    assert "This is not valid JSON" in html and "region: eu" in html
    html = client.post(
        resolve_url(stuck, "supply_output"), {"step": "s0", "output": ""}, headers=HTMX
    ).content.decode()
    assert "Give the step&#x27;s output as JSON." in html


def test_skip_is_refused_where_the_workflow_does_not_allow_it(client, alice, stuck):
    client.force_login(alice)
    html = client.post(resolve_url(stuck, "skip"), {"step": "s0"}, headers=HTMX).content.decode()
    assert "may not be skipped: the workflow does not allow it" in unescape(html)
    assert "AttentionResolved" not in types(stuck)


def test_a_step_that_allows_it_can_be_skipped(client, alice, acme):
    run = start_run(publish(acme, lookup_flow(allow_skip=True)), {})
    stop(run)
    client.force_login(alice)
    assert "Skip this step" in client.get(run_url("run-detail", run)).content.decode()

    response = client.post(resolve_url(run, "skip"), {"step": "s0", "note": "not needed today"})

    assert response.status_code == 302
    state = store.load(run.id).state
    assert state.steps["s0"].status == "skipped" and state.steps["s1"].status == "running"
    page = text(client.get(run_url("run-detail", run)).content.decode())
    assert "alice skipped step 'Lookup': not needed today" in page
    assert "Skipped step 'Lookup'; the run goes on." in page  # the message


def test_failing_the_run_records_the_note_as_its_reason(client, alice, stuck):
    client.force_login(alice)
    client.post(resolve_url(stuck, "fail"), {"step": "s0", "note": "wrong customer"}, headers=HTMX)

    assert RunSummary.objects.get(run=stuck).status == "failed"
    assert last(stuck, "RunFailed")["reason"] == (
        "alice failed the run at step 'Lookup': wrong customer"
    )
    page = text(client.get(run_url("run-detail", stuck)).content.decode())
    assert "alice failed the run at step 'Lookup': wrong customer" in page
    assert 'id="attention-panel" class="attention-panel" aria-label="Needs attention" hidden' in (
        page
    )


def test_an_answer_that_comes_too_late_says_so(client, alice, stuck):
    resolve_attention(stuck.id, "s0", "fail", actor="carol", note="first")
    client.force_login(alice)
    response = client.post(resolve_url(stuck, "retry"), {"step": "s0"}, headers=HTMX)
    assert response.status_code == 200 and response["HX-Reswap"] == "none"
    assert "does not need attention any more" in response.content.decode()
    response = client.post(resolve_url(stuck, "retry"), {"step": "s0"})
    assert response.status_code == 302
    assert "does not need attention any more" in client.get(response.url).content.decode()


# --- the live page -------------------------------------------------------------------------------


def test_the_live_update_brings_the_panel_and_keeps_typed_text(alice, acme):
    from vectorbea.runs.timeline import render_live_update

    run = start_run(publish(acme, lookup_flow()), {})
    before = store.load(run.id).state.last_seq
    stop(run)

    html, _ = render_live_update(run.id, before, 100, can_operate=True, workspace_slug="acme")

    assert 'id="attention-panel"' in html and "Needs attention: step ‘Lookup’" in html
    assert re.search(
        r'class="attention-item" id="attention-s0-\d+" data-step="s0" hx-preserve', html
    )
    assert "Needs attention: Step &#x27;Lookup&#x27; failed" in html  # the timeline row
    viewer, _ = render_live_update(run.id, before, 100, can_operate=False, workspace_slug="acme")
    assert "Needs attention: step ‘Lookup’" in viewer and "/attention/" not in viewer


# --- the run list and the inbox ------------------------------------------------------------------


def test_the_run_list_has_a_needs_attention_tab_with_a_count(client, alice, acme, stuck):
    start_run(publish(acme, chain(1), name="Other"), {})
    client.force_login(alice)
    html = client.get(reverse("runs", kwargs={"ws": "acme"})).content.decode()
    assert 'href="/w/acme/runs/?status=attention"' in html
    assert 'hx-get="/w/acme/runs/attention-count/"' in html
    assert "Retry on newest version" not in html
    count = client.get(reverse("runs-attention-count", kwargs={"ws": "acme"}), headers=HTMX)
    assert count.content.decode() == '<span class="tab-count" data-count="1">1</span>'

    html = client.get(reverse("runs", kwargs={"ws": "acme"}) + "?status=attention").content
    assert "Retry on newest version" in html.decode()
    filtered = client.get(
        reverse("runs", kwargs={"ws": "acme"}) + "?status=attention", headers=HTMX
    ).content.decode()
    assert 'id="run-tabs"' in filtered and 'hx-swap-oob="true"' in filtered


def bulk(client, action: str, runs) -> str:
    return client.post(
        reverse("runs-bulk", kwargs={"ws": "acme"}),
        {"action": action, "run": [str(r.id) for r in runs]},
        headers=HTMX,
    ).content.decode()


def test_bulk_retry_on_the_newest_version_refuses_runs_of_several_workflows(
    client, alice, acme, stuck
):
    other = start_run(publish(acme, lookup_flow(), name="Other"), {})
    stop(other)
    client.force_login(alice)

    html = bulk(client, "retry_newest", [stuck, other])

    assert "Select runs of one workflow" in html
    assert "AttentionResolved" not in types(stuck) + types(other)


def test_bulk_retry_on_the_newest_version_says_what_happened_to_each_run(
    client, alice, acme, stuck
):
    also = start_run(stuck.workflow, {"customer": "Hooli"})
    stop(also)
    fine = start_run(stuck.workflow, {"customer": "Globex"})
    newer = lookup_flow()
    newer["steps"][0]["config"] = FIXED
    v2 = WorkflowVersion.objects.create(
        workflow=stuck.workflow, number=2, definition=newer, content_hash=content_hash(newer)
    )
    client.force_login(alice)

    html = unescape(bulk(client, "retry_newest", [stuck, also, fine]))

    assert html.count("Retrying.") == 2
    assert "Not retried: It does not need attention." in html
    for run in (stuck, also):
        assert last(run, "AttentionResolved")["version_id"] == str(v2.id)
        assert store.load(run.id).state.attention == {}


def test_the_inbox_counts_the_runs_needing_attention(client, alice, acme):
    client.force_login(alice)
    html = text(client.get(reverse("inbox", kwargs={"ws": "acme"})).content.decode())
    assert "Runs needing attention" in html and "No run needs attention." in html

    run = start_run(publish(acme, lookup_flow()), {})
    stop(run)
    html = text(client.get(reverse("inbox", kwargs={"ws": "acme"})).content.decode())
    assert "1 run has stopped at a step" in html
    assert 'href="/w/acme/runs/?status=attention">Review it</a>' in html


# --- the email -----------------------------------------------------------------------------------


@pytest.fixture
def team(acme, alice):
    make_member("carol", acme, Role.ADMIN)
    make_member("eddie", acme, Role.EDITOR)
    make_member("vera", acme, Role.VIEWER)
    make_member("omar", acme, Role.APPROVER)
    gone = make_member("gary", acme, Role.ADMIN)
    gone.is_active = False
    gone.save(update_fields=["is_active"])
    nomail = make_member("nina", acme, Role.OWNER)
    nomail.email = ""
    nomail.save(update_fields=["email"])


def test_owners_and_admins_are_emailed_with_the_summary_and_a_link(
    acme, alice, team, settings, mailoutbox
):
    settings.SITE_URL = "https://vectorbea.example.com/"
    secret = "sk-live-0123456789abcdef"
    definition = lookup_flow()
    definition["steps"][0]["config"] = {**SETTINGS, "args": {"region": "mars", "key": secret}}
    run = start_run(publish(acme, definition, name="Nightly"), {"api_key": secret})
    stop(run)

    assert notify_attention(run.id) == 2

    assert sorted(m.to[0] for m in mailoutbox) == ["alice@example.com", "carol@example.com"]
    message = mailoutbox[0]
    assert message.subject == f"Needs attention: Nightly run {str(run.id)[:8]}"
    assert f"https://vectorbea.example.com/w/acme/runs/{run.id}/" in message.body
    assert "Step: Lookup" in message.body and "version 1" in message.body
    assert "Unknown region 'mars': use 'eu' or 'us'" in message.body
    assert secret not in message.body and secret not in message.subject
    assert "api_key" not in message.body


def test_nothing_is_sent_once_the_run_no_longer_needs_attention(acme, alice, team, mailoutbox):
    run = start_run(publish(acme, lookup_flow()), {})
    assert notify_attention(run.id) == 0  # running
    stop(run)
    resolve_attention(run.id, "s0", "fail", actor="alice")
    assert notify_attention(run.id) == 0
    assert mailoutbox == []


def test_an_email_problem_is_logged_never_raised(acme, alice, stuck, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise ConnectionRefusedError("smtp is down")

    monkeypatch.setattr("vectorbea.runs.attention.send_mail", broken)
    assert notify_attention(stuck.id) == 0
    assert "Could not email about run" in caplog.text
    assert mail.outbox == []


def test_an_unknown_run_sends_nothing(db, mailoutbox):
    import uuid

    assert notify_attention(uuid.uuid4()) == 0
    assert mailoutbox == []


def test_a_second_failure_after_a_retry_stops_the_run_again(client, alice, stuck):
    resolve_attention(stuck.id, "s0", "retry", actor="alice")
    record(stuck.id, StepFailed("s0", 2, "permanent", "Unknown region 'mars' again"))
    client.force_login(alice)
    html = client.get(run_url("run-detail", stuck)).content.decode()
    assert len(re.findall(r'class="attention-item"', html)) == 1
    assert "Unknown region &#x27;mars&#x27; again" in html
