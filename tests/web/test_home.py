from django.conf import settings
from django.urls import reverse

from vectorbea.accounts.models import Membership, Role


def test_it_goes_to_the_last_used_workspace(client, alice, globex):
    Membership.objects.create(workspace=globex, user=alice, role=Role.VIEWER)
    client.force_login(alice)

    client.get(reverse("inbox", args=["globex"]))
    assert client.get(reverse("home"))["Location"] == reverse("workflows", args=["globex"])

    client.get(reverse("runs", args=["acme"]))
    assert client.get(reverse("home"))["Location"] == reverse("workflows", args=["acme"])


def test_it_ignores_a_remembered_workspace_the_user_left(client, alice, globex):
    Membership.objects.create(workspace=globex, user=alice, role=Role.VIEWER)
    client.force_login(alice)
    client.get(reverse("inbox", args=["globex"]))
    globex.memberships.filter(user=alice).delete()

    assert client.get(reverse("home"))["Location"] == reverse("workflows", args=["acme"])


def test_it_asks_a_user_without_workspaces_to_create_one(client, django_user_model):
    user = django_user_model.objects.create_user("newbie", password="x")
    client.force_login(user)

    assert client.get(reverse("home"))["Location"] == reverse("workspace-create")


def test_it_redirects_the_workspace_root_to_workflows(client, alice):
    client.force_login(alice)

    response = client.get(reverse("workspace", args=["acme"]))

    assert response["Location"] == reverse("workflows", args=["acme"])


def test_it_shows_the_shell_with_workspace_nav_and_switcher(client, alice, globex):
    Membership.objects.create(workspace=globex, user=alice, role=Role.APPROVER)
    client.force_login(alice)

    html = client.get(reverse("workflows", args=["acme"])).content.decode()

    for name in ("workflows", "runs", "inbox", "workspace-settings"):
        assert f'href="{reverse(name, args=["acme"])}"' in html
    assert f'href="{reverse("workflows", args=["globex"])}"' in html  # switcher
    assert "No workflows in Acme yet" in html
    assert f'action="{reverse("logout")}"' in html


def test_the_stylesheet_has_a_badge_for_every_run_status():
    css = (settings.BASE_DIR / "static" / "css" / "app.css").read_text()

    for status in (
        "pending",
        "running",
        "waiting",
        "retrying",
        "completed",
        "failed",
        "cancelled",
        "needs-attention",
    ):
        assert f".status-{status} {{" in css
