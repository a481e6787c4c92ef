"""The SSRF guard: a step may only call public addresses, unless the operator allows more.

Before every connection (each redirect hop included) the host is resolved and EVERY
address it resolves to is checked; the connection is then pinned to the checked address
(the URL's host is swapped for the IP, the Host header and TLS SNI keep the name), so a
DNS answer that changes between check and connect (rebinding) cannot reach anything else.
Numeric hosts in any spelling (2130706433, 0x7f.1, [::ffff:127.0.0.1]) are caught because
they are judged by what they resolve to, not by how they are written.

VECTORBEA_HTTP_ALLOWLIST: comma-separated CIDRs (`10.1.0.0/16`, `::1/128`) that may be
called on any port, or `host:port` pairs (`localhost:11434`, `[::1]:8080`).
"""

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import httpx
import httpx2

from vectorbea.engine import ErrorClass, StepError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

SCHEMES = {"http": 80, "https": 443}
CGNAT = ipaddress.ip_network("100.64.0.0/10")
NAT64 = ipaddress.ip_network("64:ff9b::/96")
HINT = "(set VECTORBEA_HTTP_ALLOWLIST to allow)"


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


def blocked_reason(ip: IPAddress) -> str | None:
    """Why a step may not call `ip` ("loopback", "private", ...), or None if it may."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is None and ip in NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            return blocked_reason(embedded)
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_multicast:
        return "multicast"
    if isinstance(ip, ipaddress.IPv4Address) and ip in CGNAT:
        return "shared (CGNAT)"
    if ip.is_private:
        return "private"
    if ip.is_reserved:
        return "reserved"
    if not ip.is_global:
        return "non-public"
    return None


@dataclass(frozen=True)
class Target:
    """A checked destination: connect to `ip`, say `host`."""

    scheme: str
    host: str
    port: int
    ip: IPAddress


def resolve(host: str, port: int) -> list[IPAddress]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        error_class = (
            ErrorClass.TRANSIENT if exc.errno == socket.EAI_AGAIN else ErrorClass.PERMANENT
        )
        raise StepError(error_class, f"Could not resolve {host}: {exc.strerror}") from None
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
    addresses = resolve(host, port)
    for address in addresses:
        if allowlist.allows(host, port, address):
            continue
        reason = blocked_reason(address)
        if reason:
            shown = host if _normal_host(host) == str(address) else f"{host} ({address})"
            raise StepError(
                ErrorClass.PERMANENT,
                f"Refused to call {shown}: {reason} addresses are blocked {HINT}",
            )
    return Target(scheme, host, port, addresses[0])


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


class GuardedTransport(_Pinning, httpx.HTTPTransport):
    """For httpx clients (the HTTP step)."""


class GuardedTransport2(_Pinning, httpx2.HTTPTransport):
    """For httpx2 clients (what the provider SDKs are built on)."""
