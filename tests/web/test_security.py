"""CSRF, CSP and the error pages."""

from html.parser import HTMLParser

import pytest
from django.test import Client, override_settings
from django.urls import reverse

from tests.api.support import ApiClient, token_for
from tests.conftest import make_member
from tests.support.workflows import chain, publish
from vectorbea.accounts.models import Role
from vectorbea.runs.commands import start_run


class InlineCodeFinder(HTMLParser):
    """Collects what CSP would block: inline <script>, <style>, style= and on*= attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.problems: list[str] = []
        self.scripts_with_src: list[str] = []

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "script":
            if attributes.get("src"):
                self.scripts_with_src.append(attributes["src"])
            else:
                self.problems.append("inline <script>")
        if tag == "style":
            self.problems.append("inline <style>")
        for name, _ in attrs:
            if name == "style" or name.startswith("on"):
                self.problems.append(f"<{tag} {name}=...>")
            if name.startswith("hx-on"):
                self.problems.append(f"<{tag} {name}=...> (needs eval)")


def page_urls(ws: str, member_id: int) -> list[str]:
    return [
        reverse("workflows", args=[ws]),
        reverse("runs", args=[ws]),
        reverse("inbox", args=[ws]),
        reverse("workspace-settings", args=[ws]),
        reverse("members", args=[ws]),
        reverse("workspace-create"),
        reverse("password_change"),
        reverse("password_change_done"),
        "/no-such-page/",
        reverse("workflows", args=["globex"]),  # a 404
    ]


@pytest.fixture
def signed_in(client, alice, acme, bob):
    make_member("vera", acme, Role.VIEWER)
    client.force_login(alice)
    return client


def test_it_sends_a_strict_csp_header(client, db):
    csp = client.get(reverse("login"))["Content-Security-Policy"]

    assert "script-src 'self'" in csp
    assert "style-src 'self'" in csp
    assert "'unsafe-inline'" not in csp
    assert "'unsafe-eval'" not in csp


def test_no_page_has_inline_script_or_style(signed_in, client, alice, acme):
    member_id = alice.memberships.get(workspace=acme).id
    pages = {reverse("login"): Client().get(reverse("login"))}
    for url in page_urls("acme", member_id):
        pages[url] = client.get(url)

    for url, response in pages.items():
        assert response.status_code in (200, 404), url
        assert "Content-Security-Policy" in response, url
        finder = InlineCodeFinder()
        finder.feed(response.content.decode())
        assert finder.problems == [], url
        if response.status_code == 200:
            assert "/static/vendor/htmx/htmx-2.0.11.min.js" in finder.scripts_with_src, url


def test_it_sets_htmx_config_and_the_csrf_header_on_body(signed_in, client):
    html = client.get(reverse("workflows", args=["acme"])).content.decode()

    assert (
        '<meta name="htmx-config" content=\'{"allowEval": false, '
        '"includeIndicatorStyles": false, "allowScriptTags": false}\'>'
    ) in html
    assert 'hx-headers=\'{"X-CSRFToken": "' in html


def test_it_rejects_a_post_without_a_csrf_token(alice, acme):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)

    create = client.post(reverse("workspace-create"), {"name": "Sneaky"})
    logout = client.post(reverse("logout"))

    assert create.status_code == 403
    assert "This form has expired" in create.content.decode()
    assert logout.status_code == 403
    assert "_auth_user_id" in client.session


def test_it_accepts_a_post_with_the_csrf_token_header(alice, acme):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    client.get(reverse("workflows", args=["acme"]))  # sets the CSRF cookie
    token = client.cookies["csrftoken"].value

    response = client.post(
        reverse("workspace-settings", args=["acme"]), {"name": "Acme 2"}, HTTP_X_CSRFTOKEN=token
    )

    assert response.status_code == 302


def test_the_404_page_is_plain_language(signed_in, client):
    response = client.get(reverse("workflows", args=["globex"]))

    html = response.content.decode()
    assert response.status_code == 404
    assert "We can’t find that page" in html
    assert "Traceback" not in html


@pytest.mark.parametrize(
    "path",
    [
        "/w/globex/workflows/",
        "/no/such/page/",
        "/w/acme/runs/00000000-0000-0000-0000-000000000000/",
    ],
)
def test_with_debug_on_a_missing_page_is_the_styled_404_not_djangos(alice, globex, path):
    with override_settings(DEBUG=True):
        client = Client()  # loads the middleware under DEBUG
        client.force_login(alice)
        response = client.get(path)

    html = response.content.decode()
    assert response.status_code == 404
    assert "We can’t find that page" in html
    assert "URLconf" not in html and "DEBUG = True" not in html


def test_with_debug_on_a_path_missing_its_slash_still_redirects_and_the_api_keeps_json(alice):
    with override_settings(DEBUG=True):
        client = Client()
        client.force_login(alice)
        redirect = client.get("/w/acme/workflows")
        api = client.get("/api/v1/nothing-here")

    assert redirect.status_code == 301 and redirect["Location"] == "/w/acme/workflows/"
    assert api.status_code == 404 and api["Content-Type"].startswith("application/")


def test_the_403_page_says_what_the_role_cannot_do(client, acme):
    client.force_login(make_member("vera", acme, Role.VIEWER))

    response = client.post(reverse("members", args=["acme"]), {"who": "x", "role": "viewer"})

    assert response.status_code == 403
    assert "Only owners and admins can add members." in response.content.decode()


def test_the_500_page_renders_without_a_request_context():
    from django.template.loader import render_to_string

    html = render_to_string("500.html")

    assert "Something went wrong on our side" in html


def test_a_form_over_the_request_size_limit_gets_a_page_saying_so_and_the_limit(alice, acme):
    """The CSRF check reads the form before any view runs: Django refuses the body there,
    and the 400 page says what happened and what the limit is."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    client.get(reverse("workflows", args=["acme"]))  # sets the CSRF cookie
    token = client.cookies["csrftoken"].value

    response = client.post(
        reverse("workflow-import", args=["acme"]),
        {"text": "x" * 3_000_000, "csrfmiddlewaretoken": token},
    )

    assert response.status_code == 400
    html = " ".join(response.content.decode().split())
    assert "That was too much to send at once" in html
    assert (
        "The request was too large: this server accepts at most 2.5 MB (2,621,440 bytes) in "
        "one request, not counting uploaded files. Nothing was saved."
    ) in html
    assert '<p class="error-code">400</p>' in html
    assert response["Content-Type"].startswith("text/html")


def test_the_api_answers_a_body_over_the_size_limit_with_json(acme):
    api = ApiClient(token_for(acme, Role.ADMIN))
    workflow = publish(acme, chain(1))

    response = api.post_raw(f"/workflows/{workflow.id}/runs", "x" * 3_000_000)

    assert response.status_code == 400
    assert response.json() == {
        "detail": "The request body is larger than 1,000,000 bytes.",
        "problems": [],
    }


def test_the_api_answers_a_query_with_too_many_fields_with_json(acme):
    """Django refuses the query string when the API first reads it, before any operation:
    the answer is still the API's JSON, not an HTML page."""
    api = ApiClient(token_for(acme, Role.ADMIN))
    run = start_run(publish(acme, chain(1)), {})
    query = "&".join(f"f{i}=1" for i in range(1_001))

    response = api.client.get(f"/api/runs/{run.id}/events?{query}", headers=api.headers)

    assert response.status_code == 400
    assert response.json() == {
        "detail": "The request had more than 1,000 fields, the most this server accepts. "
        "Nothing was saved.",
        "problems": [],
    }


def test_the_400_page_renders_without_a_request_context():
    from django.template.loader import render_to_string

    html = render_to_string("400.html")

    assert "We could not read that request" in html
    assert '<p class="error-code">400</p>' in html
