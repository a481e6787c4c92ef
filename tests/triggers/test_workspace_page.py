"""The workspace's Triggers page: every schedule and webhook of every workflow, linked from
the nav, each linking to its workflow's triggers page."""

from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from tests.conftest import make_member
from vectorbea.accounts.models import Role
from vectorbea.triggers import webhooks
from vectorbea.triggers.models import Schedule, WebhookDelivery
from vectorbea.workflows import commands

pytestmark = pytest.mark.django_db

DEFINITION = {"steps": [{"id": "done", "kind": "noop", "name": "Done"}], "edges": []}


def page_for(user, slug: str = "acme"):
    client = Client()
    client.force_login(user)
    return client.get(reverse("triggers", args=[slug]))


def test_it_lists_the_schedules_and_webhooks_of_every_workflow(acme, alice):
    daily = commands.create_workflow(acme, alice, "Daily report", DEFINITION)
    hooks = commands.create_workflow(acme, alice, "From GitHub", DEFINITION)
    soon = timezone.now() + timedelta(hours=2)
    Schedule.objects.create(
        workflow=daily,
        cron="0 9 * * *",
        timezone="Europe/Paris",
        next_fire_at=soon,
        last_error="The workflow is not published.",
    )
    Schedule.objects.create(workflow=hooks, cron="*/5 * * * *", enabled=False)
    endpoint, _secret = webhooks.create_endpoint(hooks, alice)
    WebhookDelivery.objects.create(endpoint=endpoint, event_id="e1", status=202)
    WebhookDelivery.objects.create(endpoint=endpoint, event_id="e2", status=401)

    response = page_for(alice)

    page = response.content.decode()
    assert response.status_code == 200
    assert "Daily report" in page and "From GitHub" in page
    assert "0 9 * * *" in page and "Europe/Paris" in page and "*/5 * * * *" in page
    assert "The workflow is not published." in page
    assert f"/hooks/{endpoint.public_id}/" in page
    assert "2 in the last 24 hours" in page and "1 refused" in page
    manage = reverse("workflow-triggers", args=["acme", daily.id])
    assert f'href="{manage}#schedule-' in page


def test_it_is_linked_from_the_nav_and_marked_current(acme, alice):
    page = page_for(alice).content.decode()

    link = reverse("triggers", args=["acme"])
    assert f'<a href="{link}" aria-current="page">Triggers</a>' in page


def test_empty_states_say_where_triggers_are_made(acme, alice):
    page = page_for(alice).content.decode()

    assert "No schedules." in page and "No webhooks." in page


def test_other_workspaces_triggers_are_not_shown(acme, alice, globex, bob):
    theirs = commands.create_workflow(globex, bob, "Globex secret plan", DEFINITION)
    Schedule.objects.create(workflow=theirs, cron="0 0 * * *")

    assert "Globex secret plan" not in page_for(alice).content.decode()
    assert page_for(bob, "acme").status_code == 404


def test_a_viewer_sees_it_read_only_and_no_signing_secret_appears(acme, alice):
    hooks = commands.create_workflow(acme, alice, "Hooks", DEFINITION)
    _endpoint, secret = webhooks.create_endpoint(hooks, alice)
    viewer = make_member("vera", acme, Role.VIEWER)

    response = page_for(viewer)

    page = response.content.decode()
    assert response.status_code == 200
    assert ">Open</a>" in page and ">Manage</a>" not in page
    assert secret not in page
