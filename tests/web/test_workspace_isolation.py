"""Every workspace URL is invisible to strangers: a member of another workspace gets a 404,
an anonymous visitor is sent to sign in. New views are covered automatically: this test walks
the URLconf and checks every route under `w/<slug:ws>/`."""

import re
from collections.abc import Callable

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from vectorbea.accounts.models import Membership, Workspace

KWARG = re.compile(r"<(?:\w+:)?(\w+)>")


def workspace_routes() -> dict[str, str]:
    """{url name: full route} for every URL pattern whose route contains <slug:ws>."""
    found: dict[str, str] = {}

    def walk(patterns, prefix: str, namespace: str) -> None:
        for entry in patterns:
            route = prefix + str(entry.pattern)
            if isinstance(entry, URLResolver):
                inner = f"{namespace}{entry.namespace}:" if entry.namespace else namespace
                walk(entry.url_patterns, route, inner)
            elif isinstance(entry, URLPattern) and "<slug:ws>" in route:
                if not entry.name:
                    raise AssertionError(f"Give the URL pattern {route!r} a name.")
                found[namespace + entry.name] = route

    walk(get_resolver().url_patterns, "", "")
    return found


WORKSPACE_ROUTES = workspace_routes()

# How to fill each URL kwarg (other than `ws`) with an object that lives in Acme.
# Adding a view with a new kwarg? Add an entry: kwarg name -> function(acme, alice) -> value.
URL_KWARG_REGISTRY: dict[str, Callable[[Workspace, object], object]] = {
    "member_id": lambda acme, alice: Membership.objects.get(workspace=acme, user=alice).id,
    "run_id": lambda acme, alice: _a_run_in(acme),
    "step_id": lambda acme, alice: "s0",  # a step of the run above (approvals: a gate's page)
    "workflow_id": lambda acme, alice: _a_published_workflow_in(acme).id,
    "version_number": lambda acme, alice: _a_published_workflow_in(acme).latest_version().number,
    "key_id": lambda acme, alice: _a_provider_key_in(acme, alice),
    "secret_id": lambda acme, alice: _a_secret_in(acme, alice),
    "provider_id": lambda acme, alice: _a_compatible_provider_in(acme, alice),
    "token_id": lambda acme, alice: _an_api_token_in(acme, alice),
    "endpoint_id": lambda acme, alice: _a_webhook_in(acme, alice),
    "schedule_id": lambda acme, alice: _a_schedule_in(acme),
}


def _a_published_workflow_in(workspace: Workspace):
    from tests.support.workflows import chain, publish
    from vectorbea.workflows.models import Workflow

    existing = Workflow.objects.filter(workspace=workspace, name="Isolation check").first()
    return existing or publish(workspace, chain(1), name="Isolation check")


def _a_run_in(workspace: Workspace):
    from tests.support.workflows import chain, publish
    from vectorbea.runs.commands import start_run

    return start_run(publish(workspace, chain(1)), {}).id


def _a_provider_key_in(workspace: Workspace, user):
    from vectorbea.keys import vault

    return vault.add_key(workspace, "openai", "sk-isolation-test-0123456789", "", user).id


def _a_secret_in(workspace: Workspace, user):
    from vectorbea.keys import vault

    return vault.set_secret(workspace, "ISOLATION", "isolation-secret-0123456789", user)[0].id


def _a_compatible_provider_in(workspace: Workspace, user):
    from vectorbea.keys import vault

    url = "http://127.0.0.1:11434/v1"
    return vault.save_compatible_provider(workspace, "Isolation", url, "m", None, user)[0].id


def _a_webhook_in(workspace: Workspace, user):
    from vectorbea.triggers.webhooks import create_endpoint

    return create_endpoint(_a_published_workflow_in(workspace), user)[0].id


def _a_schedule_in(workspace: Workspace):
    from vectorbea.triggers.models import Schedule
    from vectorbea.triggers.schedules import save_schedule

    workflow = _a_published_workflow_in(workspace)
    return save_schedule(Schedule(workflow=workflow, cron="0 9 * * *")).id


def _an_api_token_in(workspace: Workspace, user):
    from vectorbea.api.tokens import create_token

    return create_token(workspace, "Isolation check", "admin", user)[0].id


def test_it_finds_workspace_urls_to_check():
    assert {"workflows", "runs", "inbox", "workspace-settings", "members"} <= set(WORKSPACE_ROUTES)


def acme_url(name: str, acme: Workspace, alice) -> str:
    kwargs: dict[str, object] = {"ws": acme.slug}
    for kwarg in KWARG.findall(WORKSPACE_ROUTES[name]):
        if kwarg == "ws":
            continue
        if kwarg not in URL_KWARG_REGISTRY:
            pytest.fail(
                f"The URL {name!r} ({WORKSPACE_ROUTES[name]}) takes <{kwarg}>, which "
                f"URL_KWARG_REGISTRY in {__file__} does not know how to fill. Add an entry "
                f'"{kwarg}": lambda acme, alice: <an object in Acme>.pk so this URL is '
                "checked for cross-workspace access."
            )
        kwargs[kwarg] = URL_KWARG_REGISTRY[kwarg](acme, alice)
    return reverse(name, kwargs=kwargs)


@pytest.mark.parametrize("name", sorted(WORKSPACE_ROUTES))
def test_every_workspace_url_is_404_for_a_member_of_another_workspace(
    name, acme, alice, bob, client
):
    url = acme_url(name, acme, alice)
    client.force_login(bob)

    assert client.get(url).status_code == 404, f"GET {url} as a stranger"
    assert client.post(url, {"role": "owner", "name": "Hacked"}).status_code == 404, (
        f"POST {url} as a stranger"
    )
    assert Membership.objects.filter(workspace=acme, user=bob).count() == 0
    assert Workspace.objects.get(pk=acme.pk).name == "Acme"


@pytest.mark.parametrize("name", sorted(WORKSPACE_ROUTES))
def test_every_workspace_url_sends_anonymous_visitors_to_sign_in(name, acme, alice, client):
    url = acme_url(name, acme, alice)

    for response in (client.get(url), client.post(url, {"role": "owner"})):
        assert response.status_code in (302, 404), f"{response.request['REQUEST_METHOD']} {url}"
        if response.status_code == 302:
            assert response["Location"].startswith(reverse("login"))
