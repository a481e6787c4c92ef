"""Which pages may open a websocket: exactly the origins Django accepts a form POST from,
scheme, host and port, and no other port of an allowed host."""

import pytest
from django.middleware.csrf import CsrfViewMiddleware
from django.test import RequestFactory

from tests.ws.support import run_async
from tests.ws.test_run_timeline import communicator
from vectorbea.origins import origin_allowed


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("origin", "accepted"),
    [
        ("http://localhost:8000", True),  # the page this socket belongs to
        ("http://localhost:8001", False),  # another app on another port of the same host
        ("http://localhost", False),  # port 80
        ("https://localhost:8000", False),  # another scheme
        ("http://127.0.0.1:8000", False),  # another allowed host: not this site's origin
    ],
)
def test_only_the_sites_own_origin_opens_a_socket(origin, accepted, alice, acme):
    async def scenario() -> bool:
        comm = communicator(alice, "/ws/w/acme/", origin=origin, host="localhost:8000")
        connected, _ = await comm.connect()
        await comm.disconnect()
        return connected

    assert run_async(scenario) is accepted


PROXY = {"HTTP_X_FORWARDED_PROTO": "https"}

# (origin, Host, other headers, accepted): behind a TLS proxy that sends the public Host
# and X-Forwarded-Proto, behind one that rewrites the Host (CSRF_TRUSTED_ORIGINS names the
# public origin), and a subdomain entry of CSRF_TRUSTED_ORIGINS.
CASES = [
    ("https://vectorbea.example.com", "vectorbea.example.com", PROXY, True),
    ("http://vectorbea.example.com", "vectorbea.example.com", PROXY, False),
    ("https://vectorbea.example.com:8443", "vectorbea.example.com", PROXY, False),
    ("https://vectorbea.example.com", "vectorbea.example.com", {}, False),
    ("https://evil.example", "vectorbea.example.com", PROXY, False),
    ("https://trusted.example.net", "127.0.0.1:8000", {}, True),
    ("https://trusted.example.net:444", "127.0.0.1:8000", {}, False),
    ("https://a.example.org", "127.0.0.1:8000", {}, True),
    ("https://a.example.org:8443", "127.0.0.1:8000", {}, False),
    ("http://a.example.org", "127.0.0.1:8000", {}, False),
    ("http://evil.example", "evil.example", {}, False),  # a Host not in ALLOWED_HOSTS
    ("http://localhost:8000", "localhost:8000", {}, True),
]


@pytest.mark.parametrize(("origin", "host", "extra", "accepted"), CASES)
def test_a_socket_trusts_the_origins_a_form_post_is_trusted_from(
    origin, host, extra, accepted, settings
):
    settings.ALLOWED_HOSTS = ["localhost", "127.0.0.1", "vectorbea.example.com"]
    settings.CSRF_TRUSTED_ORIGINS = ["https://trusted.example.net", "https://*.example.org"]
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    headers = [(b"origin", origin.encode()), (b"host", host.encode())]
    headers += [
        (name[5:].lower().replace("_", "-").encode(), v.encode()) for name, v in extra.items()
    ]
    scope = {"type": "websocket", "scheme": "ws", "path": "/ws/w/acme/", "headers": headers}
    post = RequestFactory().post("/", HTTP_ORIGIN=origin, HTTP_HOST=host, **extra)

    assert origin_allowed(scope) is accepted
    assert CsrfViewMiddleware(lambda request: None)._origin_verified(post) is accepted
