"""The SSRF guard: what it refuses, what the allow-list lets through, and pinning."""

import socket

import httpx
import pytest

from tests.support.counting_server import CountingServer
from vectorbea.engine import ErrorClass, StepError
from vectorbea.steps import ssrf
from vectorbea.steps.ssrf import Allowlist, check, check_url, parse_allowlist

NOTHING_ALLOWED = Allowlist()


def refusal(url: str, allowlist: Allowlist = NOTHING_ALLOWED) -> str:
    with pytest.raises(StepError) as caught:
        check_url(url, allowlist)
    assert caught.value.error_class == ErrorClass.PERMANENT
    return caught.value.message


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://127.0.0.1/", "Refused to call 127.0.0.1: loopback addresses are blocked"),
        ("http://[::1]:8080/", "Refused to call ::1: loopback addresses are blocked"),
        ("http://10.0.0.1/", "Refused to call 10.0.0.1: private addresses are blocked"),
        ("http://172.16.5.4/", "Refused to call 172.16.5.4: private addresses are blocked"),
        ("http://192.168.1.1/", "Refused to call 192.168.1.1: private addresses are blocked"),
        ("http://[fd00::1]/", "Refused to call fd00::1: private addresses are blocked"),
        (
            "http://169.254.169.254/latest/meta-data/",
            "Refused to call 169.254.169.254: link-local addresses are blocked",
        ),
        ("http://[fe80::1]/", "Refused to call fe80::1: link-local addresses are blocked"),
        ("http://0.0.0.0/", "Refused to call 0.0.0.0: unspecified addresses are blocked"),
        ("http://224.0.0.1/", "Refused to call 224.0.0.1: multicast addresses are blocked"),
        ("http://100.64.0.1/", "Refused to call 100.64.0.1: shared (CGNAT) addresses are blocked"),
        ("http://2130706433/", "Refused to call 2130706433 (127.0.0.1): loopback addresses"),
        ("http://0x7f.1/", "Refused to call 0x7f.1 (127.0.0.1): loopback addresses"),
        ("http://017700000001/", "Refused to call 017700000001 (127.0.0.1): loopback"),
        (
            "http://[::ffff:127.0.0.1]/",
            "Refused to call ::ffff:127.0.0.1: loopback addresses are blocked",
        ),
        ("http://[::ffff:a9fe:a9fe]/", "link-local addresses are blocked"),
        ("http://[2002:7f00:1::]/", "loopback addresses are blocked"),
        ("http://[64:ff9b::a00:1]/", "private addresses are blocked"),
        ("http://localhost:8000/", "Refused to call localhost (127.0.0.1): loopback"),
    ],
)
def test_it_refuses_addresses_that_are_not_public(url, message):
    text = refusal(url)
    assert message in text
    assert text.endswith(" to VECTORBEA_HTTP_ALLOWLIST.")


@pytest.mark.parametrize(
    ("url", "entry"),
    [
        ("http://127.0.0.1:11434/v1", "127.0.0.1:11434"),
        ("http://localhost:8000/", "localhost:8000"),
        ("https://10.1.2.3/", "10.1.2.3:443"),
        ("http://[::1]:8080/", "[::1]:8080"),
    ],
)
def test_a_refusal_names_the_exact_allowlist_entry_that_allows_it(url, entry):
    text = refusal(url)
    assert f"the operator adds {entry} to VECTORBEA_HTTP_ALLOWLIST." in text
    # ... and that entry does allow it.
    assert ssrf.check_url(url, ssrf.parse_allowlist([entry])).port == int(entry.rsplit(":", 1)[1])


@pytest.mark.parametrize("url", ["ftp://example.com/", "file:///etc/passwd", "gopher://x/"])
def test_only_http_and_https_are_allowed(url):
    assert "only http and https are allowed" in refusal(url)


def test_public_addresses_pass_and_are_pinned():
    target = check_url("https://8.8.8.8:8443/x", NOTHING_ALLOWED)
    assert (target.scheme, target.host, target.port, str(target.ip)) == (
        "https",
        "8.8.8.8",
        8443,
        "8.8.8.8",
    )


def test_the_allow_list_takes_cidrs_and_host_port_pairs():
    allowlist = parse_allowlist(["10.1.0.0/16", "localhost:8080", "[::1]:9000", "127.0.0.1:7000"])
    assert check("http", "10.1.2.3", 80, allowlist).ip.exploded == "10.1.2.3"
    assert "private" in refusal("http://10.2.0.1/", allowlist)
    assert str(check("http", "localhost", 8080, allowlist).ip) in ("127.0.0.1", "::1")
    assert "loopback" in refusal("http://localhost:8081/", allowlist)
    assert str(check("http", "::1", 9000, allowlist).ip) == "::1"
    # An IP entry matches the address a numeric spelling resolves to.
    assert str(check("http", "2130706433", 7000, allowlist).ip) == "127.0.0.1"


@pytest.mark.parametrize("entry", ["nonsense", "host:", ":80", "host:99999", "10.0.0.0/33"])
def test_a_bad_allow_list_entry_is_named(entry):
    with pytest.raises(ValueError, match="VECTORBEA_HTTP_ALLOWLIST entry"):
        parse_allowlist([entry])


def test_a_name_with_any_private_address_is_refused(monkeypatch):
    real = socket.getaddrinfo

    def two_faced(host, port, *args, **kwargs):
        if host == "mixed.test":
            return [
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("8.8.8.8", port)),
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.7", port)),
            ]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(ssrf.socket, "getaddrinfo", two_faced)
    assert "Refused to call mixed.test (10.0.0.7): private" in refusal("http://mixed.test/")


def test_connections_are_pinned_to_the_checked_address(monkeypatch):
    """A name is resolved once, checked, and the connection goes to that address with the
    name in the Host header: a second DNS answer (rebinding) is never consulted."""
    real = socket.getaddrinfo
    lookups = []

    def rebinding(host, port, *args, **kwargs):
        if host == "rebind.test":
            lookups.append(host)
            # First answer 127.0.0.1 (allow-listed here); any later one would be elsewhere.
            ip = "127.0.0.1" if len(lookups) == 1 else "10.9.9.9"
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    with CountingServer() as server:
        allowlist = parse_allowlist(["127.0.0.1/32"])
        transport = ssrf.GuardedTransport(allowlist=allowlist)
        with httpx.Client(transport=transport) as client:
            response = client.get(f"http://rebind.test:{server.port}/echo")
        assert response.status_code == 200
        assert lookups == ["rebind.test"]
        assert server.requests[0].headers["host"] == f"rebind.test:{server.port}"


def test_https_keeps_the_name_for_sni():
    request = httpx.Request("GET", "https://api.example.com/v1")
    ssrf.pin(
        request,
        ssrf.Target("https", "api.example.com", 443, ssrf.ipaddress.ip_address("93.184.215.14")),
    )
    assert request.url.host == "93.184.215.14"
    assert request.headers["host"] == "api.example.com"
    assert request.extensions["sni_hostname"] == "api.example.com"


def _ends(network) -> list[str]:
    return [str(network[0]), str(network[-1])]


@pytest.mark.parametrize(
    "address",
    [
        "192.0.0.192",
        "192.0.0.9",
        "192.31.196.1",
        "192.52.193.1",
        "192.175.48.1",
        "198.18.0.1",
        "240.0.0.1",
        "255.255.255.255",
        "fec0::1",
        "5f00::1",
        "3fff::1",
        "64:ff9b:1::a00:1",
        "100::1",
        "2001::1",
        "2001:1::3",
        "2001:20::1",
        "2001:db8::1",
        "2620:4f:8000::1",
        "::7f00:1",
        "4000::1",
    ]
    + [end for network, _ in ssrf.DENIED for end in _ends(network)],
)
def test_every_special_purpose_address_is_refused(address):
    assert ssrf.blocked_reason(ssrf.ipaddress.ip_address(address)) is not None
    host = f"[{address}]" if ":" in address else address
    assert "addresses are blocked" in refusal(f"http://{host}/")


CLASSIFIERS = (
    "is_private",
    "is_global",
    "is_reserved",
    "is_loopback",
    "is_link_local",
    "is_multicast",
    "is_unspecified",
    "is_site_local",
)


def _python_says(monkeypatch, public: bool) -> None:
    """Make Python's own address tables say `public` (or the opposite) of every address."""
    flags = {"is_global": public, "is_private": not public}
    for cls in (ssrf.ipaddress.IPv4Address, ssrf.ipaddress.IPv6Address):
        for name in CLASSIFIERS:
            if hasattr(cls, name):
                says = flags.get(name, False)
                monkeypatch.setattr(cls, name, property(lambda self, says=says: says))


@pytest.mark.parametrize("address", ["192.0.0.192", "fec0::1", "10.0.0.1", "::1", "fc00::1"])
def test_the_deny_table_does_not_depend_on_pythons_tables(monkeypatch, address):
    """Whatever this Python's ipaddress thinks of an address, the guard's answer is its
    own: refused when Python calls it global, allowed when Python calls it private."""
    _python_says(monkeypatch, public=True)
    assert ssrf.ipaddress.ip_address(address).is_global
    assert ssrf.blocked_reason(ssrf.ipaddress.ip_address(address)) is not None
    _python_says(monkeypatch, public=False)
    for public in ("8.8.8.8", "2606:4700:4700::1111", "2002:808:808::1"):
        assert ssrf.ipaddress.ip_address(public).is_private
        assert ssrf.blocked_reason(ssrf.ipaddress.ip_address(public)) is None


@pytest.mark.parametrize(
    ("url", "allowed", "refused"),
    [
        ("http://127.0.0.1:11434/v1", [], True),
        ("http://localhost:1234/v1", [], True),
        ("http://[::1]:8080/", [], True),
        ("http://127.0.0.1:11434/v1", ["127.0.0.1:11434"], False),
        ("http://localhost:1234/v1", ["localhost:1234"], False),
        ("http://10.0.0.9/", ["10.0.0.0/8"], False),
        ("https://8.8.8.8/", [], False),
        # A name is judged when it is called (no DNS lookup on a page or in the builder).
        ("http://internal.example/v1", [], False),
        ("not a url", [], False),
    ],
)
def test_a_quick_refusal_judges_addresses_written_as_numbers_and_localhost(url, allowed, refused):
    why = ssrf.refusal(url, parse_allowlist(allowed))
    assert (why is not None) == refused
    if refused:
        assert why.endswith(" to VECTORBEA_HTTP_ALLOWLIST.")
