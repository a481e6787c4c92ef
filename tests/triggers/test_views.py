"""The triggers page: who sees and manages webhooks and schedules, the one-time secret,
plain-language validation, and strangers getting 404s."""

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape

from tests.support.workflows import chain, publish
from tests.triggers.conftest import deliver
from vectorbea.triggers import schedules, webhooks
from vectorbea.triggers.models import Schedule, WebhookDelivery, WebhookEndpoint

pytestmark = pytest.mark.django_db


def url(name: str, workflow, **kwargs) -> str:
    return reverse(
        name, kwargs={"ws": workflow.workspace.slug, "workflow_id": workflow.id, **kwargs}
    )


def schedule_post(cron="0 9 * * 1-5", tz="Europe/Paris", run_input='{"ticket": "Standup"}'):
    return {"cron": cron, "timezone": tz, "input": run_input, "enabled": "on"}


def an_acme_schedule(workflow) -> Schedule:
    return schedules.save_schedule(
        Schedule(workflow=workflow, cron="0 9 * * *", timezone="UTC", input={"ticket": "t"})
    )


def test_the_builder_links_to_the_triggers_page(client, alice, workflow):
    client.force_login(alice)

    page = client.get(reverse("workflow-builder", args=["acme", workflow.id])).content.decode()

    assert url("workflow-triggers", workflow) in page


def test_an_owner_sees_webhooks_schedules_and_the_forms(client, alice, workflow, hook):
    client.force_login(alice)

    response = client.get(url("workflow-triggers", workflow))

    assert response.status_code == 200
    page = response.content.decode()
    assert "Webhooks" in page and "Schedules" in page
    assert f"/hooks/{hook[0].public_id}/" in page
    assert "New webhook" in page and "Add schedule" in page
    assert "csrfmiddlewaretoken" in page


def test_creating_a_webhook_shows_its_secret_once(client, alice, workflow):
    client.force_login(alice)

    created = client.post(url("webhook-create", workflow))

    assert created.status_code == 201
    assert "no-store" in created["Cache-Control"]
    endpoint = WebhookEndpoint.objects.get(workflow=workflow)
    secret = webhooks.secret_of(endpoint)
    page = created.content.decode()
    assert secret in page
    assert f"http://testserver/hooks/{endpoint.public_id}/" in page
    assert "openssl dgst -sha256 -hmac" in page
    assert "is not shown again" in page
    # ... and never again.
    assert secret not in client.get(url("workflow-triggers", workflow)).content.decode()
    assert endpoint.created_by == alice


def test_the_new_secret_signs_deliveries_that_start_runs(client, alice, workflow):
    client.force_login(alice)
    page = client.post(url("webhook-create", workflow)).content.decode()
    secret = re.search(r'id="new-webhook-secret"[^>]*>([^<]+)<', page).group(1)
    endpoint = WebhookEndpoint.objects.get(workflow=workflow)

    assert deliver(Client(), endpoint, secret, {"ticket": "From the page"}).status_code == 202


def test_recent_deliveries_are_listed_with_their_runs(client, alice, workflow, hook):
    endpoint, secret = hook
    deliver(Client(), endpoint, secret, {"ticket": "one"}, event_id="evt-listed")
    deliver(Client(), endpoint, secret, {"nope": 1}, event_id="evt-bad")
    WebhookDelivery.objects.create(endpoint=endpoint, event_id="evt-ancient", status=202)
    WebhookDelivery.objects.filter(event_id="evt-ancient").update(
        received_at=timezone.now() - timedelta(days=2)
    )
    client.force_login(alice)

    page = client.get(url("workflow-triggers", workflow)).content.decode()

    assert "evt-listed" in page and "evt-bad" in page and "422" in page
    assert "evt-ancient" not in page
    run_id = WebhookDelivery.objects.get(event_id="evt-listed").run_id
    assert reverse("run-detail", args=["acme", run_id]) in page


def test_turning_a_webhook_off_and_deleting_it(client, alice, workflow, hook):
    endpoint, secret = hook
    client.force_login(alice)

    off = client.post(url("webhook-toggle", workflow, endpoint_id=endpoint.id), {"enabled": "0"})
    assert off.status_code == 302
    assert deliver(Client(), endpoint, secret, {"ticket": "x"}).status_code == 404
    client.post(url("webhook-toggle", workflow, endpoint_id=endpoint.id), {"enabled": "1"})
    assert deliver(Client(), endpoint, secret, {"ticket": "x"}).status_code == 202

    deleted = client.post(
        url("webhook-delete", workflow, endpoint_id=endpoint.id), headers={"HX-Request": "true"}
    )
    assert deleted.status_code == 200
    assert deleted["HX-Redirect"] == url("workflow-triggers", workflow)
    assert not WebhookEndpoint.objects.exists()
    assert deliver(Client(), endpoint, secret, {"ticket": "x"}, event_id="e2").status_code == 404


def test_adding_a_schedule_shows_its_next_five_times_in_its_time_zone(client, alice, workflow):
    client.force_login(alice)

    response = client.post(url("schedule-create", workflow), schedule_post(), follow=True)

    assert response.status_code == 200
    schedule = Schedule.objects.get(workflow=workflow)
    assert (schedule.cron, schedule.timezone, schedule.input) == (
        "0 9 * * 1-5",
        "Europe/Paris",
        {"ticket": "Standup"},
    )
    assert schedule.created_by == alice and schedule.enabled
    page = response.content.decode()
    assert "Saved the schedule “0 9 * * 1-5” (Europe/Paris)" in page
    upcoming = re.findall(r"<li><time[^>]*>([^<]+)</time></li>", page)
    assert len(upcoming) == 5
    assert all(re.search(r"· 09:00:00 CES?T$", when) for when in upcoming), upcoming
    assert not any(when.startswith(("Sat", "Sun")) for when in upcoming)


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        (
            schedule_post(cron="61 * * * *"),
            "cron",
            "“61 * * * *” is not a cron expression: a value is out of range",
        ),
        (
            schedule_post(cron="every day at nine am"),
            "cron",
            "“every day at nine am” is not a cron expression",
        ),
        (schedule_post(cron=""), "cron", "Say when it runs"),
        (
            schedule_post(tz="Mars/Olympus_Mons"),
            "timezone",
            "“Mars/Olympus_Mons” is not a time zone we know",
        ),
        (schedule_post(run_input="{ticket: 1}"), "input", "The input is not valid JSON"),
        (schedule_post(run_input="[1, 2]"), "input", "The input must be a JSON object"),
        (schedule_post(run_input="{}"), "input", "input: 'ticket' is a required property"),
        (
            schedule_post(run_input='{"ticket": 7}'),
            "input",
            "input.ticket: 7 is not of type 'string'",
        ),
    ],
)
def test_a_bad_schedule_is_refused_in_plain_words(client, alice, workflow, data, field, message):
    client.force_login(alice)

    response = client.post(url("schedule-create", workflow), data)

    assert response.status_code == 400
    errors = response.context["schedule_form"].errors
    assert any(error.startswith(message) for error in errors[field]), errors
    assert escape(message) in response.content.decode()
    assert not Schedule.objects.exists()


def test_editing_a_schedule_times_it_afresh(client, alice, workflow):
    schedule = an_acme_schedule(workflow)
    client.force_login(alice)
    edit = url("schedule-edit", workflow, schedule_id=schedule.id)

    assert client.get(edit).status_code == 200
    bad = client.post(edit, schedule_post(cron="0 25 * * *"))
    assert bad.status_code == 400
    assert "is not a cron expression" in bad.content.decode()
    saved = client.post(edit, schedule_post(cron="30 6 * * *", tz="Asia/Tokyo"))

    assert saved.status_code == 302
    schedule.refresh_from_db()
    assert (schedule.cron, schedule.timezone) == ("30 6 * * *", "Asia/Tokyo")
    local = schedule.next_fire_at.astimezone(schedules.zone("Asia/Tokyo"))
    assert (local.hour, local.minute) == (6, 30)


def test_turning_a_schedule_off_and_on_and_deleting_it(client, alice, workflow):
    schedule = an_acme_schedule(workflow)
    client.force_login(alice)

    client.post(url("schedule-toggle", workflow, schedule_id=schedule.id), {"enabled": "0"})
    schedule.refresh_from_db()
    assert (schedule.enabled, schedule.next_fire_at) == (False, None)
    assert (
        "Off: it starts nothing" in client.get(url("workflow-triggers", workflow)).content.decode()
    )

    client.post(url("schedule-toggle", workflow, schedule_id=schedule.id), {"enabled": "1"})
    schedule.refresh_from_db()
    assert schedule.enabled and schedule.next_fire_at > timezone.now()

    client.post(url("schedule-delete", workflow, schedule_id=schedule.id))
    assert not Schedule.objects.exists()


def test_an_editor_manages_triggers(client, dave, workflow):
    client.force_login(dave)

    assert client.post(url("webhook-create", workflow)).status_code == 201
    assert client.post(url("schedule-create", workflow), schedule_post()).status_code == 302


def test_a_viewer_sees_the_page_but_cannot_create_or_change_anything(client, carol, workflow, hook):
    endpoint, _ = hook
    schedule = an_acme_schedule(workflow)
    client.force_login(carol)

    page = client.get(url("workflow-triggers", workflow))
    assert page.status_code == 200
    assert "New webhook" not in page.content.decode()
    assert "Add schedule" not in page.content.decode()

    for target, data in [
        (url("webhook-create", workflow), {}),
        (url("schedule-create", workflow), schedule_post()),
        (url("webhook-toggle", workflow, endpoint_id=endpoint.id), {"enabled": "0"}),
        (url("webhook-delete", workflow, endpoint_id=endpoint.id), {}),
        (url("schedule-edit", workflow, schedule_id=schedule.id), schedule_post()),
        (url("schedule-toggle", workflow, schedule_id=schedule.id), {"enabled": "0"}),
        (url("schedule-delete", workflow, schedule_id=schedule.id), {}),
    ]:
        assert client.post(target, data).status_code == 403, target
    assert WebhookEndpoint.objects.count() == 1 and WebhookEndpoint.objects.get().enabled
    assert Schedule.objects.count() == 1 and Schedule.objects.get().cron == "0 9 * * *"


def test_a_stranger_gets_404_for_the_page_and_every_post(client, bob, workflow, hook):
    endpoint, _ = hook
    schedule = an_acme_schedule(workflow)
    client.force_login(bob)

    assert client.get(url("workflow-triggers", workflow)).status_code == 404
    for target in [
        url("webhook-create", workflow),
        url("schedule-create", workflow),
        url("webhook-toggle", workflow, endpoint_id=endpoint.id),
        url("webhook-delete", workflow, endpoint_id=endpoint.id),
        url("schedule-edit", workflow, schedule_id=schedule.id),
        url("schedule-toggle", workflow, schedule_id=schedule.id),
        url("schedule-delete", workflow, schedule_id=schedule.id),
    ]:
        assert client.post(target, schedule_post()).status_code == 404, target
    assert WebhookEndpoint.objects.count() == 1 and Schedule.objects.count() == 1


def test_another_workspaces_objects_are_404_under_your_own_workflow(
    client, bob, globex, workflow, hook
):
    """Bob's own workspace and workflow in the URL, Acme's webhook and schedule ids."""
    endpoint, _ = hook
    schedule = an_acme_schedule(workflow)
    mine = publish(globex, chain(1), name="Bob's")
    client.force_login(bob)

    assert client.get(url("schedule-edit", mine, schedule_id=schedule.id)).status_code == 404
    for target in [
        url("webhook-toggle", mine, endpoint_id=endpoint.id),
        url("webhook-delete", mine, endpoint_id=endpoint.id),
        url("schedule-toggle", mine, schedule_id=schedule.id),
        url("schedule-delete", mine, schedule_id=schedule.id),
    ]:
        assert client.post(target, {"enabled": "0"}).status_code == 404, target
    assert WebhookEndpoint.objects.get().enabled and Schedule.objects.get().enabled


def test_every_form_needs_the_csrf_token(alice, workflow, hook):
    endpoint, _ = hook
    schedule = an_acme_schedule(workflow)
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)

    for target in [
        url("webhook-create", workflow),
        url("schedule-create", workflow),
        url("webhook-toggle", workflow, endpoint_id=endpoint.id),
        url("webhook-delete", workflow, endpoint_id=endpoint.id),
        url("schedule-edit", workflow, schedule_id=schedule.id),
        url("schedule-toggle", workflow, schedule_id=schedule.id),
        url("schedule-delete", workflow, schedule_id=schedule.id),
    ]:
        assert client.post(target, schedule_post()).status_code == 403, target
    assert WebhookEndpoint.objects.count() == 1 and Schedule.objects.count() == 1


def test_the_page_holds_no_secret_or_ciphertext(client, alice, workflow, hook):
    endpoint, secret = hook
    client.force_login(alice)

    page = client.get(url("workflow-triggers", workflow)).content.decode()

    assert secret not in page
    assert secret[6:20] not in page
    assert bytes(endpoint.secret_ciphertext).hex()[:16] not in page
