"""The API's reference page at /api/docs: plain HTML rendered on the server from the
OpenAPI description. Swagger UI needs inline script or a CDN, which the site's
Content-Security-Policy refuses; /api/openapi.json is the full description for tools."""

import re
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe
from ninja.openapi.docs import DocsBase

METHODS = ("get", "post", "put", "patch", "delete")
CODE_SPAN = re.compile(r"`([^`]+)`")


def paragraphs(markdown: str) -> list[SafeString]:
    """The description's paragraphs as HTML: text escaped, `code` spans as <code>."""
    return [
        mark_safe(CODE_SPAN.sub(r"<code>\1</code>", escape(" ".join(block.split()))))  # noqa: S308
        for block in markdown.split("\n\n")
        if block.strip()
    ]


class PlainDocs(DocsBase):
    def render_page(self, request: HttpRequest, api: Any, **kwargs: Any) -> HttpResponse:
        schema = api.get_openapi_schema(path_params=kwargs)
        operations = [
            {
                "method": method.upper(),
                "path": path,
                "summary": operation.get("summary", ""),
                "description": paragraphs(operation.get("description", "")),
                "parameters": operation.get("parameters", []),
                "has_body": "requestBody" in operation,
                "responses": sorted(operation.get("responses", {})),
            }
            for path, item in schema["paths"].items()
            for method, operation in item.items()
            if method in METHODS
        ]
        context = {
            "api": api,
            "description": paragraphs(schema["info"].get("description", "")),
            "operations": operations,
            "openapi_url": self.get_openapi_url(api, kwargs),
        }
        return render(request, "api/docs.html", context)
