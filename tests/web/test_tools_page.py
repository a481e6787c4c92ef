"""The Python tools page: every registered tool and validator, with its docstring, its
declared schema or its signature, and the workflows that use it."""

import pytest
from django.test import Client
from django.urls import reverse

import tests.support.tools  # noqa: F401  (registers the test tools)
from tests.conftest import make_member
from vectorbea.accounts.models import Role
from vectorbea.steps.tools import TOOLS, tool, validator
from vectorbea.workflows import commands

pytestmark = pytest.mark.django_db


@tool("page_lookup")
def page_lookup(args, ctx):
    """Look a customer up by e-mail.

    Returns their name and plan."""
    return {}


page_lookup.schema = {
    "type": "object",
    "properties": {"email": {"type": "string", "format": "email"}},
    "required": ["email"],
}


@validator("page_has_sources")
def page_has_sources(value):
    """At least one source must be cited."""
    return []


def page_for(user, slug: str = "acme"):
    client = Client()
    client.force_login(user)
    return client.get(reverse("tools", args=[slug]))


def test_it_lists_tools_with_docstring_and_declared_schema(alice):
    page = page_for(alice).content.decode()

    assert 'id="tool-page_lookup"' in page
    assert "Look a customer up by e-mail." in page
    assert "&quot;required&quot;: [" in page and "&quot;email&quot;" in page
    assert 'id="tool-echo_outputs"' in page  # every registered tool, by name
    assert len(TOOLS) >= 2


def test_a_tool_without_a_schema_shows_its_signature(alice):
    page = page_for(alice).content.decode()

    assert "echo_outputs(args, ctx)" in page


def test_validators_are_listed_too(alice):
    page = page_for(alice).content.decode()

    assert 'id="validator-page_has_sources"' in page
    assert "At least one source must be cited." in page


def test_it_names_the_workflows_that_use_a_tool(alice, acme):
    step = {"id": "look", "kind": "tool", "name": "Look", "config": {"tool": "page_lookup"}}
    workflow = commands.create_workflow(acme, alice, "Lookups", {"steps": [step], "edges": []})
    junk = {"steps": ["not a step", {"kind": "tool", "config": "nor settings"}], "edges": []}
    commands.create_workflow(acme, alice, "Half-written", junk)

    page = page_for(alice).content.decode()

    start = page.index('id="tool-page_lookup"')
    item = page[start : page.index("</li>", start)]
    assert "Lookups" in item and str(workflow.id) in item


def test_every_member_may_look_and_other_workspaces_may_not(acme, alice, bob):
    viewer = make_member("vera", acme, Role.VIEWER)

    assert page_for(viewer).status_code == 200
    assert page_for(bob, "acme").status_code == 404
