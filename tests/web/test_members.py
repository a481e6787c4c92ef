import pytest
from django.urls import reverse

from tests.conftest import make_member
from vectorbea.accounts.models import Membership, Role


@pytest.fixture
def carol(db):
    """Has an account but no workspace."""
    from django.contrib.auth import get_user_model

    return get_user_model().objects.create_user("carol", email="Carol@Example.com", password="x")


def membership(user, workspace) -> Membership:
    return Membership.objects.get(user=user, workspace=workspace)


def test_it_lists_members_with_their_roles(client, alice, acme):
    make_member("vera", acme, Role.VIEWER)
    client.force_login(alice)

    html = client.get(reverse("members", args=["acme"])).content.decode()

    assert 'data-username="alice"' in html
    assert 'data-username="vera"' in html
    assert "Add member" in html


def test_a_viewer_sees_members_read_only(client, alice, acme):
    viewer = make_member("vera", acme, Role.VIEWER)
    client.force_login(viewer)

    html = client.get(reverse("members", args=["acme"])).content.decode()

    assert 'data-username="alice"' in html
    assert "Only owners and admins can add, change or remove members." in html
    assert "Add member" not in html
    assert "<select" not in html


def test_a_viewer_gets_403_on_every_member_management_post(client, alice, acme, carol):
    viewer = make_member("vera", acme, Role.VIEWER)
    client.force_login(viewer)
    target = membership(alice, acme).id

    posts = [
        (reverse("members", args=["acme"]), {"who": "carol", "role": Role.OWNER}),
        (reverse("member-role", args=["acme", target]), {"role": Role.VIEWER}),
        (reverse("member-remove", args=["acme", target]), {}),
        (reverse("member-role", args=["acme", membership(viewer, acme).id]), {"role": "owner"}),
    ]
    for url, data in posts:
        assert client.post(url, data).status_code == 403, url

    assert membership(viewer, acme).role == Role.VIEWER
    assert membership(alice, acme).role == Role.OWNER
    assert not Membership.objects.filter(user=carol).exists()


def test_an_admin_adds_a_member_by_username(client, acme, carol):
    admin = make_member("adam", acme, Role.ADMIN)
    client.force_login(admin)

    response = client.post(reverse("members", args=["acme"]), {"who": "carol", "role": "editor"})

    assert response.status_code == 302
    assert membership(carol, acme).role == Role.EDITOR


def test_an_owner_adds_a_member_by_email_in_any_case(client, alice, acme, carol):
    client.force_login(alice)

    client.post(reverse("members", args=["acme"]), {"who": "carol@example.COM", "role": "owner"})

    assert membership(carol, acme).role == Role.OWNER


def test_an_admin_cannot_make_owners(client, acme, carol):
    admin = make_member("adam", acme, Role.ADMIN)
    client.force_login(admin)

    response = client.post(reverse("members", args=["acme"]), {"who": "carol", "role": "owner"})

    assert response.status_code == 400
    assert "Select a valid choice" in response.content.decode()
    assert not Membership.objects.filter(user=carol).exists()


def test_an_admin_cannot_change_or_remove_an_owner(client, alice, acme):
    admin = make_member("adam", acme, Role.ADMIN)
    client.force_login(admin)
    owner = membership(alice, acme).id

    role = client.post(reverse("member-role", args=["acme", owner]), {"role": "viewer"})
    remove = client.post(reverse("member-remove", args=["acme", owner]))

    assert role.status_code == 403
    assert remove.status_code == 403
    assert membership(alice, acme).role == Role.OWNER


def test_it_explains_why_it_cannot_add_someone(client, alice, acme):
    make_member("vera", acme, Role.VIEWER)
    client.force_login(alice)

    unknown = client.post(reverse("members", args=["acme"]), {"who": "nobody", "role": "editor"})
    already = client.post(reverse("members", args=["acme"]), {"who": "vera", "role": "editor"})

    assert unknown.status_code == 400
    assert "No one with the username or email “nobody” has an account here." in (
        unknown.content.decode()
    )
    assert "vera is already a member." in already.content.decode()


def test_an_owner_changes_a_role(client, alice, acme):
    viewer = make_member("vera", acme, Role.VIEWER)
    client.force_login(alice)

    response = client.post(
        reverse("member-role", args=["acme", membership(viewer, acme).id]), {"role": "approver"}
    )

    assert response.status_code == 302
    assert membership(viewer, acme).role == Role.APPROVER


def test_it_changes_a_role_over_htmx_and_returns_the_row(client, alice, acme):
    viewer = make_member("vera", acme, Role.VIEWER)
    client.force_login(alice)
    member_id = membership(viewer, acme).id

    response = client.post(
        reverse("member-role", args=["acme", member_id]), {"role": "editor"}, HTTP_HX_REQUEST="true"
    )

    html = response.content.decode()
    assert response.status_code == 200
    assert html.strip().startswith(f'<tr id="member-{member_id}"')
    assert '<option value="editor" selected>' in html
    assert "<html" not in html


def test_the_last_owner_cannot_be_removed_or_demoted(client, alice, acme):
    client.force_login(alice)
    own = membership(alice, acme).id

    remove = client.post(reverse("member-remove", args=["acme", own]), follow=True)
    demote = client.post(
        reverse("member-role", args=["acme", own]), {"role": "admin"}, HTTP_HX_REQUEST="true"
    )

    assert "A workspace needs at least one owner." in remove.content.decode()
    assert "A workspace needs at least one owner." in demote.content.decode()
    assert membership(alice, acme).role == Role.OWNER


def test_one_of_two_owners_can_leave(client, alice, acme):
    make_member("olga", acme, Role.OWNER)
    client.force_login(alice)

    response = client.post(reverse("member-remove", args=["acme", membership(alice, acme).id]))

    assert response["Location"] == reverse("home")
    assert not Membership.objects.filter(user=alice).exists()


def test_an_owner_removes_a_member_over_htmx(client, alice, acme):
    viewer = make_member("vera", acme, Role.VIEWER)
    client.force_login(alice)

    response = client.post(
        reverse("member-remove", args=["acme", membership(viewer, acme).id]),
        HTTP_HX_REQUEST="true",
    )

    assert response.status_code == 200
    assert response.content == b""
    assert not Membership.objects.filter(user=viewer).exists()


def test_a_member_id_from_another_workspace_is_404(client, alice, bob, globex):
    client.force_login(alice)

    response = client.post(
        reverse("member-remove", args=["acme", membership(bob, globex).id]), HTTP_HX_REQUEST="true"
    )

    assert response.status_code == 404
    assert Membership.objects.filter(user=bob).exists()
