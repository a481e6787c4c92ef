"""Which pages may open a websocket: those Django would accept a form POST from.

A browser sends every websocket handshake with its session cookie, whatever page opened
it, so the Origin header is what tells our own pages from another site's (or another port
of this host's: a second app on localhost:8001 is another origin). A handshake is accepted
when its Origin is, exactly as Django's CSRF check decides for a POST
(CsrfViewMiddleware._origin_verified):
- this site's own origin: the request's scheme (honouring SECURE_PROXY_SSL_HEADER) and its
  Host header (which must be in ALLOWED_HOSTS), port included; or
- in CSRF_TRUSTED_ORIGINS, scheme, host and port exactly, or a subdomain of a
  `https://*.example.com` entry on the same scheme and port.
Channels' AllowedHostsOriginValidator compares host names with ALLOWED_HOSTS only, so it
accepts any scheme and any port of an allowed host.
"""

import io
from typing import Any
from urllib.parse import urlsplit

from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.core.handlers.asgi import ASGIRequest
from django.http.request import is_same_domain


def origin_allowed(scope: dict[str, Any]) -> bool:
    # The handshake read as Django reads an HTTP request (repeated headers joined, so two
    # Origins match nothing; X-Forwarded-* as settings say), ws/wss named as http/https.
    secure = scope.get("scheme") in ("wss", "https")
    request = ASGIRequest(
        {**scope, "method": "GET", "scheme": "https" if secure else "http"}, io.BytesIO()
    )
    origin = request.META.get("HTTP_ORIGIN")
    if not origin:
        return False
    try:
        if origin == f"{request.scheme}://{request.get_host()}":
            return True
    except DisallowedHost:
        pass
    trusted = settings.CSRF_TRUSTED_ORIGINS
    if origin in (entry for entry in trusted if "*" not in entry):
        return True
    try:
        parsed = urlsplit(origin)
    except ValueError:
        return False
    return any(
        is_same_domain(parsed.netloc, pattern.netloc.lstrip("*"))
        for pattern in (urlsplit(entry) for entry in trusted if "*" in entry)
        if pattern.scheme == parsed.scheme
    )


class OriginValidator:
    """ASGI middleware for the websocket router: a handshake from any other origin is
    refused (HTTP 403) before it reaches authentication or a consumer."""

    def __init__(self, application: Any) -> None:
        self.application = application

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if origin_allowed(scope):
            return await self.application(scope, receive, send)
        return await WebsocketDenier()(scope, receive, send)
