"""`manage.py seed_demo`: the demo logins the README promises, however often it runs."""

from io import StringIO

import pytest
from django.contrib.auth import authenticate, get_user_model
from django.core.management import CommandError, call_command

from vectorbea.accounts.models import Membership, Role, Workspace


def counts() -> tuple[int, int, int]:
    return (
        Workspace.objects.count(),
        get_user_model().objects.count(),
        Membership.objects.count(),
    )


def run_seed(*args: str) -> str:
    out = StringIO()
    call_command("seed_demo", *args, stdout=out)
    return out.getvalue()


def test_it_creates_the_demo_workspace_and_logins_with_debug_on(db, settings):
    settings.DEBUG = True

    output = run_seed()

    workspace = Workspace.objects.get(slug="demo")
    assert workspace.name == "Demo"
    roles = dict(workspace.memberships.values_list("user__username", "role"))
    assert roles == {"demo": Role.OWNER, "approver": Role.APPROVER, "viewer": Role.VIEWER}
    assert get_user_model().objects.get(username="demo").email == "demo@vectorbea.local"
    assert "vectorbea-demo" in output
    assert "vectorbea-approver" in output


def test_it_is_idempotent(db, settings):
    settings.DEBUG = True
    run_seed()
    first = counts()

    run_seed()

    assert counts() == first == (1, 3, 3)


def test_the_printed_passwords_work(db, settings):
    settings.DEBUG = True
    run_seed()
    run_seed()

    assert authenticate(username="demo", password="vectorbea-demo") is not None
    assert authenticate(username="approver", password="vectorbea-approver") is not None
    assert authenticate(username="viewer", password="vectorbea-viewer") is not None


def test_the_demo_owner_can_sign_in_through_the_login_page(db, settings, client):
    settings.DEBUG = True
    run_seed()

    assert client.login(username="demo", password="vectorbea-demo")


def test_it_restores_a_changed_role_and_password(db, settings):
    settings.DEBUG = True
    run_seed()
    Membership.objects.filter(user__username="approver").update(role=Role.VIEWER)
    user = get_user_model().objects.get(username="approver")
    user.set_password("something else entirely")
    user.save()

    run_seed()

    assert Membership.objects.get(user__username="approver").role == Role.APPROVER
    assert authenticate(username="approver", password="vectorbea-approver") is not None


def test_it_refuses_the_documented_passwords_with_debug_off(db, settings, monkeypatch):
    settings.DEBUG = False
    monkeypatch.delenv("VECTORBEA_DEMO_PASSWORD", raising=False)

    with pytest.raises(CommandError, match="--password"):
        run_seed()
    with pytest.raises(CommandError, match="--password"):
        run_seed("--password", "vectorbea-demo")

    assert counts() == (0, 0, 0)


def test_it_uses_the_given_password_with_debug_off(db, settings, monkeypatch):
    settings.DEBUG = False
    monkeypatch.setenv("VECTORBEA_DEMO_PASSWORD", "a-long-and-private-demo-password")

    output = run_seed()

    assert "a-long-and-private-demo-password" not in output
    assert authenticate(username="demo", password="a-long-and-private-demo-password") is not None
    assert authenticate(username="demo", password="vectorbea-demo") is None


def test_the_demo_workspace_has_published_example_workflows(db):
    from vectorbea.accounts.management.commands.seed_demo import seed_demo
    from vectorbea.workflows.models import Workflow

    seed_demo()
    seed_demo()  # idempotent: no duplicates on a second run
    workflows = Workflow.objects.filter(workspace__slug="demo")
    assert workflows.count() >= 3
    assert all(w.versions.count() == 1 for w in workflows)
