from django.contrib.auth import get_user_model
from django.urls import reverse

PASSWORD = "correct horse battery staple"


def test_it_signs_in_with_the_right_password_and_lands_in_the_workspace(client, alice):
    response = client.post(reverse("login"), {"username": "alice", "password": PASSWORD})

    assert response.status_code == 302
    assert response["Location"] == reverse("home")
    response = client.get(reverse("home"))
    assert response["Location"] == reverse("workflows", args=["acme"])


def test_it_shows_a_clear_error_for_a_wrong_password(client, alice):
    response = client.post(reverse("login"), {"username": "alice", "password": "nope"})

    assert response.status_code == 200
    html = response.content.decode()
    assert "That username and password don’t match an account." in html
    assert "_auth_user_id" not in client.session


def test_it_asks_for_both_fields(client, db):
    response = client.post(reverse("login"), {"username": "", "password": ""})

    assert response.status_code == 200
    assert response.content.decode().count('class="field-error"') == 2


def test_it_sends_anonymous_visitors_to_the_login_page(client, db):
    response = client.get(reverse("home"))

    assert response.status_code == 302
    assert response["Location"] == f"{reverse('login')}?next=/"


def test_it_only_signs_out_on_post(client, alice):
    client.force_login(alice)

    assert client.get(reverse("logout")).status_code == 405
    assert "_auth_user_id" in client.session

    response = client.post(reverse("logout"))
    assert response.status_code == 302
    assert response["Location"] == reverse("login")
    assert "_auth_user_id" not in client.session


def test_it_changes_the_password(client, alice):
    client.force_login(alice)
    new = "a much longer passphrase 2026"

    response = client.post(
        reverse("password_change"),
        {"old_password": PASSWORD, "new_password1": new, "new_password2": new},
    )

    assert response["Location"] == reverse("password_change_done")
    assert get_user_model().objects.get(pk=alice.pk).check_password(new)


def test_it_explains_a_wrong_old_password(client, alice):
    client.force_login(alice)

    response = client.post(
        reverse("password_change"),
        {"old_password": "wrong", "new_password1": "x" * 20, "new_password2": "x" * 20},
    )

    assert response.status_code == 200
    assert "Your old password was entered incorrectly" in response.content.decode()
