"""/metrics in Prometheus's text format, for a bearer token or an allowed network.

No login and no session: a scraper presents `Authorization: Bearer <VECTORBEA_METRICS_TOKEN>`
or comes from a network in VECTORBEA_METRICS_ALLOW (loopback by default). A request that
came through a proxy (it carries forwarding headers) is not judged by its address, which is
the proxy's: behind a proxy on the same host, only the token lets it in.
"""

import glob
import hmac
import ipaddress
import os
import re

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from vectorbea.metrics.events import TALLY
from vectorbea.metrics.scrape import ScrapeTimeFigures

FORWARDING_HEADERS = (
    "HTTP_FORWARDED",
    "HTTP_X_FORWARDED_FOR",
    "HTTP_X_FORWARDED_HOST",
    "HTTP_X_FORWARDED_PROTO",
    "HTTP_X_REAL_IP",
)
# prometheus_client's files for "live" gauges (the websocket connections): gauge_live…_<pid>.db
LIVE_GAUGE_FILE = re.compile(r"gauge_live[a-z]*_(\d+)\.db")


@never_cache
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    if not may_read_metrics(request):
        return HttpResponseForbidden(
            "Forbidden: /metrics needs the metrics token or an allowed address.\n",
            content_type="text/plain; charset=utf-8",
        )
    return HttpResponse(exposition(), content_type=CONTENT_TYPE_LATEST)


def may_read_metrics(request: HttpRequest) -> bool:
    token = settings.VECTORBEA_METRICS_TOKEN
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if (
        token
        and scheme.lower() == "bearer"
        and hmac.compare_digest(given.strip().encode(), token.encode())
    ):
        return True
    if any(header in request.META for header in FORWARDING_HEADERS):
        return False
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped  # ::ffff:127.0.0.1 from a socket bound to ::
    return any(address in network for network in settings.VECTORBEA_METRICS_ALLOW)


def exposition() -> bytes:
    """Every process's files in VECTORBEA_METRICS_DIR added up, plus the figures read now."""
    path = settings.VECTORBEA_METRICS_DIR
    TALLY.flush()  # this process's own counts, up to now
    forget_dead_processes(path)
    registry = CollectorRegistry()
    HostFiles(registry, path=path)
    registry.register(ScrapeTimeFigures())
    return generate_latest(registry)


class HostFiles(MultiProcessCollector):
    """prometheus_client's collector, except that it skips a file a process is creating
    right now: an empty file has no figures yet, and reading it raises (a process that
    starts while /metrics is scraped must not turn the scrape into a 500)."""

    def collect(self):
        files = []
        for name in glob.glob(os.path.join(self._path, "*.db")):
            try:
                if os.path.getsize(name) > 0:
                    files.append(name)
            except FileNotFoundError:  # a dead process's live gauge, just removed
                continue
        return self.merge(files, accumulate=True)


def forget_dead_processes(path: str) -> None:
    """A process that died (or was killed) holding websockets leaves its live gauge file
    behind; remove those, as prometheus_client asks servers to do when a process exits."""
    for name in os.listdir(path):
        match = LIVE_GAUGE_FILE.fullmatch(name)
        if match and not _alive(int(match[1])):
            mark_process_dead(int(match[1]), path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True
