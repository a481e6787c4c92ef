"""Who may read /metrics: a bearer token, or an allowed network reached without a proxy."""

import subprocess
import sys
from ipaddress import ip_network

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import Client
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from tests.support.live import ROOT
from vectorbea.settings import envnetworks

TOKEN = "metrics-token-0123456789abcdef"
OUTSIDE = "203.0.113.7"

pytestmark = pytest.mark.django_db


@pytest.fixture
def token(settings):
    settings.VECTORBEA_METRICS_TOKEN = TOKEN


def get(client: Client, address: str = "127.0.0.1", **headers: str):
    return client.get("/metrics", headers=headers, REMOTE_ADDR=address)


def refused(response) -> bool:
    body = response.content.decode()
    return response.status_code == 403 and "vectorbea_" not in body and "# TYPE" not in body


def test_loopback_reads_it_without_a_login_or_a_token(client):
    response = get(client)

    assert response.status_code == 200
    assert response["Content-Type"] == CONTENT_TYPE_LATEST
    assert "no-cache" in response["Cache-Control"]
    names = {family.name for family in text_string_to_metric_families(response.content.decode())}
    assert {"vectorbea_queue_messages", "vectorbea_runs_due", "vectorbea_workers"} <= names
    assert "sessionid" not in response.cookies


def test_another_address_is_refused_without_the_token(client, token):
    assert refused(get(client, OUTSIDE))


def test_a_wrong_token_is_refused_and_the_right_one_lets_in(client, token):
    assert refused(get(client, OUTSIDE, Authorization="Bearer not-the-metrics-token-at-all"))
    assert refused(get(client, OUTSIDE, Authorization=f"Basic {TOKEN}"))
    assert refused(get(client, OUTSIDE, Authorization=TOKEN))
    assert get(client, OUTSIDE, Authorization=f"Bearer {TOKEN}").status_code == 200
    assert get(client, OUTSIDE, Authorization=f"bearer {TOKEN}").status_code == 200


def test_no_token_is_accepted_while_none_is_set(client):
    assert refused(get(client, OUTSIDE, Authorization="Bearer "))


def test_an_allowed_network_reads_it_and_loopback_no_longer_does(client, settings):
    settings.VECTORBEA_METRICS_ALLOW = [ip_network("203.0.113.0/24"), ip_network("2001:db8::/32")]

    assert get(client, OUTSIDE).status_code == 200
    assert get(client, "2001:db8::5").status_code == 200
    assert refused(get(client, "198.51.100.1"))
    assert refused(get(client, "127.0.0.1"))


def test_an_ipv4_client_of_a_dual_stack_socket_counts_as_its_ipv4_address(client):
    assert get(client, "::ffff:127.0.0.1").status_code == 200
    assert get(client, "::1").status_code == 200


def test_through_a_proxy_the_address_does_not_count_but_the_token_does(client, token):
    # A proxy on the same host connects from loopback for everyone it forwards.
    for header in ("X-Forwarded-For", "X-Real-IP", "Forwarded", "X-Forwarded-Proto"):
        assert refused(get(client, **{header: "198.51.100.1"}))
    response = get(client, **{"X-Forwarded-For": OUTSIDE, "Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200


def test_it_answers_plain_http_when_https_is_enforced(settings):
    settings.SECURE_SSL_REDIRECT = True
    assert get(Client()).status_code == 200
    assert Client().get("/login/").status_code == 301  # everything else goes to https


def test_it_only_answers_get(client):
    assert client.post("/metrics").status_code == 405


def test_bad_settings_stop_the_process(monkeypatch):
    monkeypatch.setenv("VECTORBEA_METRICS_ALLOW", "10.0.0.0/8,10.1.2.3/8")  # host bits set
    with pytest.raises(ImproperlyConfigured, match="VECTORBEA_METRICS_ALLOW"):
        envnetworks("VECTORBEA_METRICS_ALLOW", "")
    monkeypatch.setenv("VECTORBEA_METRICS_ALLOW", "")
    assert envnetworks("VECTORBEA_METRICS_ALLOW", "127.0.0.0/8") == []  # nobody by address
    short = subprocess.run(
        [sys.executable, "-c", "import vectorbea.settings"],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "VECTORBEA_METRICS_TOKEN": "short"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert short.returncode != 0
    assert "VECTORBEA_METRICS_TOKEN must be at least 16 characters" in short.stderr
