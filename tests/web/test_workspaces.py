from django.urls import reverse

from tests.conftest import make_member
from vectorbea.accounts.models import Membership, Role, Workspace


def test_it_creates_a_workspace_owned_by_its_creator(client, alice):
    client.force_login(alice)

    response = client.post(reverse("workspace-create"), {"name": "  Initech   Labs "})

    workspace = Workspace.objects.get(slug="initech-labs")
    assert workspace.name == "Initech Labs"
    assert response["Location"] == reverse("workflows", args=["initech-labs"])
    assert Membership.objects.get(workspace=workspace).user == alice
    assert Membership.objects.get(workspace=workspace).role == Role.OWNER


def test_it_gives_a_taken_name_the_next_free_slug(client, alice, acme):
    client.force_login(alice)

    client.post(reverse("workspace-create"), {"name": "ACME"})
    client.post(reverse("workspace-create"), {"name": "Acme!"})

    assert set(Workspace.objects.values_list("slug", flat=True)) == {"acme", "acme-2", "acme-3"}


def test_it_rejects_a_name_without_letters_or_numbers(client, alice):
    client.force_login(alice)

    response = client.post(reverse("workspace-create"), {"name": "!!!"})

    assert response.status_code == 200
    assert "Use at least one letter or number" in response.content.decode()
    assert Workspace.objects.count() == 1


def test_it_rejects_an_empty_name(client, alice):
    client.force_login(alice)

    response = client.post(reverse("workspace-create"), {"name": " "})

    assert "Give the workspace a name." in response.content.decode()


def test_an_admin_renames_the_workspace(client, acme):
    admin = make_member("adam", acme, Role.ADMIN)
    client.force_login(admin)

    response = client.post(reverse("workspace-settings", args=["acme"]), {"name": "Acme Corp"})

    assert response.status_code == 302
    assert Workspace.objects.get(pk=acme.pk).name == "Acme Corp"


def test_an_editor_cannot_rename_the_workspace(client, acme):
    editor = make_member("eddie", acme, Role.EDITOR)
    client.force_login(editor)

    page = client.get(reverse("workspace-settings", args=["acme"]))
    response = client.post(reverse("workspace-settings", args=["acme"]), {"name": "Mine"})

    assert page.status_code == 200
    assert "read-only for you" in page.content.decode()
    assert response.status_code == 403
    assert Workspace.objects.get(pk=acme.pk).name == "Acme"
