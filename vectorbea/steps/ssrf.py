"""The SSRF guard: a step may only call public addresses, unless the operator allows more.

Before every connection (each redirect hop included) the host is resolved and EVERY
address it resolves to is checked; the connection is then pinned to the checked address
(the URL's host is swapped for the IP, the Host header and TLS SNI keep the name), so a
DNS answer that changes between check and connect (rebinding) cannot reach anything else.
Numeric hosts in any spelling (2130706433, 0x7f.1, [::ffff:127.0.0.1]) are caught because
they are judged by what they resolve to, not by how they are written. What counts as not
public is this module's own table, DENIED, the same on every Python version.

VECTORBEA_HTTP_ALLOWLIST: comma-separated CIDRs (`10.1.0.0/16`, `::1/128`) that may be
called on any port, or `host:port` pairs (`localhost:11434`, `[::1]:8080`).
"""

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import httpx
import httpx2

from vectorbea.engine import ErrorClass, StepError
from vectorbea.llm.errors import network_error, shown_target

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

SCHEMES = {"http": 80, "https": 443}
SETTING = "VECTORBEA_HTTP_ALLOWLIST"


@dataclass(frozen=True)
class Allowlist:
    networks: tuple[IPNetwork, ...] = ()
    endpoints: frozenset[tuple[str, int]] = frozenset()

    def allows(self, host: str, port: int, ip: IPAddress) -> bool:
        if any(ip in network for network in self.networks if network.version == ip.version):
            return True
        return (host.lower(), port) in self.endpoints or (str(ip), port) in self.endpoints


def parse_allowlist(entries: Iterable[str]) -> Allowlist:
    """Parse VECTORBEA_HTTP_ALLOWLIST entries; ValueError names a bad one."""
    networks: list[IPNetwork] = []
    endpoints: set[tuple[str, int]] = set()
    for entry in entries:
        entry = entry.strip()
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
            continue
        except ValueError:
            pass
        host, sep, port = entry.rpartition(":")
        host = host.strip("[]").lower()
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(
                f"VECTORBEA_HTTP_ALLOWLIST entry {entry!r} is neither a CIDR (10.0.0.0/8) "
                "nor host:port (localhost:8080)"
            )
        endpoints.add((_normal_host(host), int(port)))
    return Allowlist(tuple(networks), frozenset(endpoints))


def _normal_host(host: str) -> str:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host


def configured_allowlist() -> Allowlist:
    from django.conf import settings

    return parse_allowlist(settings.VECTORBEA_HTTP_ALLOWLIST)


# The one deny table: every block of the IANA IPv4 and IPv6 Special-Purpose Address
# Registries, plus multicast, the reserved 240.0.0.0/4 and the deprecated IPv6 site-local
# block from the address-space registries, each with the reason a refusal names. The first
# matching entry gives the reason. Python's ipaddress only parses and compares here: its
# is_private / is_global tables differ from one Python release to the next, and this guard
# must refuse the same addresses on every one.
DENIED: tuple[tuple[IPNetwork, str], ...] = tuple(
    (ipaddress.ip_network(cidr), reason)
    for cidr, reason in (
        ("0.0.0.0/8", "unspecified"),  # "this network"
        ("10.0.0.0/8", "private"),
        ("100.64.0.0/10", "shared (CGNAT)"),
        ("127.0.0.0/8", "loopback"),
        ("169.254.0.0/16", "link-local"),
        ("172.16.0.0/12", "private"),
        ("192.0.0.0/24", "reserved"),  # IETF protocol assignments (DS-Lite, PCP, NAT64 ...)
        ("192.0.2.0/24", "documentation"),
        ("192.31.196.0/24", "reserved"),  # AS112
        ("192.52.193.0/24", "reserved"),  # AMT
        ("192.88.99.0/24", "reserved"),  # 6to4 relay anycast
        ("192.168.0.0/16", "private"),
        ("192.175.48.0/24", "reserved"),  # AS112 direct delegation
        ("198.18.0.0/15", "benchmarking"),
        ("198.51.100.0/24", "documentation"),
        ("203.0.113.0/24", "documentation"),
        ("224.0.0.0/4", "multicast"),
        ("240.0.0.0/4", "reserved"),  # future use, and 255.255.255.255 (broadcast)
        ("::/128", "unspecified"),
        ("::1/128", "loopback"),
        ("::/96", "reserved"),  # IPv4-compatible (deprecated)
        ("64:ff9b:1::/48", "reserved"),  # local-use IPv4/IPv6 translation
        ("100::/64", "reserved"),  # discard-only
        ("100:0:0:1::/64", "reserved"),  # dummy prefix
        ("2001::/23", "reserved"),  # IETF protocol assignments (Teredo, ORCHID, AS112 ...)
        ("2001:db8::/32", "documentation"),
        ("2620:4f:8000::/48", "reserved"),  # AS112 direct delegation
        ("3fff::/20", "documentation"),
        ("5f00::/16", "reserved"),  # SRv6 segment identifiers
        ("fc00::/7", "private"),  # unique local
        ("fe80::/10", "link-local"),
        ("fec0::/10", "site-local"),
        ("ff00::/8", "multicast"),
    )
)
# IPv6 outside global unicast (2000::/3) is not allocated for use on the internet.
GLOBAL_UNICAST_V6 = ipaddress.ip_network("2000::/3")
# IPv6 blocks that carry an IPv4 address: judged by the IPv4 address they lead to.
IPV4_MAPPED = ipaddress.ip_network("::ffff:0:0/96")
NAT64 = ipaddress.ip_network("64:ff9b::/96")
SIX_TO_FOUR = ipaddress.ip_network("2002::/16")


def embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv4-mapped, NAT64 or 6to4 address leads to, or None."""
    if ip in IPV4_MAPPED or ip in NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip in SIX_TO_FOUR:
        return ipaddress.IPv4Address((int(ip) >> 80) & 0xFFFFFFFF)
    return None


def blocked_reason(ip: IPAddress) -> str | None:
    """Why a step may not call `ip` ("loopback", "private", ...), or None if it may:
    the reason of the first DENIED entry that holds it."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = embedded_ipv4(ip)
        if embedded is not None:
            return blocked_reason(embedded)
    for network, reason in DENIED:
        if network.version == ip.version and ip in network:
            return reason
    if isinstance(ip, ipaddress.IPv6Address) and ip not in GLOBAL_UNICAST_V6:
        return "reserved"
    return None


@dataclass(frozen=True)
class Target:
    """A checked destination: connect to `ip`, say `host`."""

    scheme: str
    host: str
    port: int
    ip: IPAddress


def resolve(host: str, port: int, scheme: str = "http") -> list[IPAddress]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise network_error(exc, shown_target(host, port, scheme)) from None
    except UnicodeError:
        raise StepError(ErrorClass.PERMANENT, f"Not a valid host name: {host!r}") from None
    addresses: list[IPAddress] = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise StepError(ErrorClass.PERMANENT, f"{host} resolves to no address")
    return addresses


def check(scheme: str, host: str, port: int | None, allowlist: Allowlist | None = None) -> Target:
    """Resolve `host` and refuse it unless every address is public or allow-listed."""
    scheme = scheme.lower()
    if scheme not in SCHEMES:
        raise StepError(
            ErrorClass.PERMANENT,
            f"Refused to call a {scheme or 'relative'}: URL: only http and https are allowed",
        )
    if not host:
        raise StepError(ErrorClass.PERMANENT, "Refused to call a URL without a host")
    host = host.strip("[]").lower()
    port = port or SCHEMES[scheme]
    allowlist = allowlist if allowlist is not None else configured_allowlist()
    addresses = resolve(host, port, scheme)
    for address in addresses:
        if allowlist.allows(host, port, address):
            continue
        reason = blocked_reason(address)
        if reason:
            raise StepError(ErrorClass.PERMANENT, refused_message(host, port, address, reason))
    return Target(scheme, host, port, addresses[0])


def allowlist_entry(host: str, port: int) -> str:
    """The VECTORBEA_HTTP_ALLOWLIST entry that allows `host` on `port`, and nothing else."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def refused_message(host: str, port: int, address: IPAddress, reason: str) -> str:
    """Why a call is refused, and the exact setting the operator adds to allow it."""
    shown = host if _normal_host(host) == str(address) else f"{host} ({address})"
    return (
        f"Refused to call {shown}: {reason} addresses are blocked. To allow it, the "
        f"operator adds {allowlist_entry(host, port)} to {SETTING}."
    )


def refusal(url: str, allowlist: Allowlist | None = None) -> str | None:
    """Why the installation would refuse to call `url`, judged without a DNS lookup (for
    pages and the builder, which must stay quick): only a host written as an IP address, or
    localhost, is judged; a name is judged when it is called. None: no refusal seen."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        return None
    scheme, host = parsed.scheme.lower(), parsed.host.strip("[]").lower()
    if scheme not in SCHEMES or not host:
        return None
    port = parsed.port or SCHEMES[scheme]
    if host == "localhost" or host.endswith(".localhost"):
        address: IPAddress = ipaddress.ip_address("127.0.0.1")
    else:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return None
    allowlist = allowlist if allowlist is not None else configured_allowlist()
    reason = blocked_reason(address)
    if reason is None or allowlist.allows(host, port, address):
        return None
    return refused_message(host, port, address, reason)


def check_url(url: str, allowlist: Allowlist | None = None) -> Target:
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise StepError(ErrorClass.PERMANENT, f"Not a valid URL: {exc}") from None
    return check(parsed.scheme, parsed.host, parsed.port, allowlist)


def pin(request: Any, target: Target) -> None:
    """Point an httpx/httpx2 request at the checked IP, keeping the name for Host and SNI."""
    host = request.url.host
    if "host" not in request.headers:
        request.headers["Host"] = request.url.netloc.decode("ascii")
    request.url = request.url.copy_with(host=str(target.ip))
    if target.scheme == "https" and not _is_ip(host):
        request.extensions = {**request.extensions, "sni_hostname": host}


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class _Pinning:
    """Checks and pins every request the transport sends (so every redirect hop too)."""

    def __init__(self, *args: Any, allowlist: Allowlist | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.allowlist = allowlist

    def handle_request(self, request: Any) -> Any:
        url = request.url
        pin(request, check(url.scheme, url.host, url.port, self.allowlist))
        return super().handle_request(request)  # type: ignore[misc]


class _AsyncPinning:
    """The same for an event loop: resolving a name may block, so it is done on the loop's
    executor, never on the loop itself."""

    def __init__(self, *args: Any, allowlist: Allowlist | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.allowlist = allowlist

    async def handle_async_request(self, request: Any) -> Any:
        url = request.url
        loop = asyncio.get_running_loop()
        target = await loop.run_in_executor(
            None, check, url.scheme, url.host, url.port, self.allowlist
        )
        pin(request, target)
        return await super().handle_async_request(request)  # type: ignore[misc]


class GuardedTransport(_Pinning, httpx.HTTPTransport):
    """For httpx clients."""


class GuardedAsyncTransport(_AsyncPinning, httpx.AsyncHTTPTransport):
    """For httpx async clients (the HTTP step)."""


class GuardedTransport2(_Pinning, httpx2.HTTPTransport):
    """For httpx2 clients (what the provider SDKs are built on)."""


class GuardedAsyncTransport2(_AsyncPinning, httpx2.AsyncHTTPTransport):
    """For httpx2 async clients (the provider SDKs' async clients)."""
