"""Error pages Django would otherwise answer with its own.

The answer to a request Django refuses before any view runs (handler400): a body over
DATA_UPLOAD_MAX_MEMORY_SIZE, too many form fields or files, or another malformed request.
Pages get the 400 page saying what was wrong and what the limit is; the API and webhook
endpoints (and any request that sent JSON) get JSON: {"detail": "...", "problems": []}.
Rendered without the request's context processors: the request may be only half read.

And the styled 404 page with DEBUG on (NotFoundPageMiddleware), where Django would show its
technical one (the project's URL patterns): DEBUG is on in a fresh checkout.
"""

from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import (
    MiddlewareNotUsed,
    RequestDataTooBig,
    TooManyFieldsSent,
    TooManyFilesSent,
)
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.template import loader
from django.views.defaults import page_not_found

JSON_PATHS = ("/api/", "/hooks/")


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    heading, reason, advice = refusal(exception)
    if request.path.startswith(JSON_PATHS) or request.content_type == "application/json":
        return JsonResponse({"detail": reason, "problems": []}, status=400)
    context = {"heading": heading, "reason": reason, "advice": advice}
    return HttpResponse(loader.get_template("400.html").render(context), status=400)


def refusal(exception: Exception | None) -> tuple[str, str, str]:
    """(heading, reason, advice): what was wrong, with the limit that was passed, and what
    a person can do about it."""
    if isinstance(exception, RequestDataTooBig):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        return (
            "That was too much to send at once",
            f"The request was too large: this server accepts at most {megabytes(limit)} "
            f"({limit:,} bytes) in one request, not counting uploaded files. Nothing was saved.",
            "Go back (what you typed may still be there) and send less at once, or upload a "
            "large workflow as a file.",
        )
    if isinstance(exception, TooManyFieldsSent):
        limit = settings.DATA_UPLOAD_MAX_NUMBER_FIELDS
        return (
            "That form had too many fields",
            f"The request had more than {limit:,} fields, the most this server accepts. "
            "Nothing was saved.",
            "Go back and send fewer at once.",
        )
    if isinstance(exception, TooManyFilesSent):
        limit = settings.DATA_UPLOAD_MAX_NUMBER_FILES
        return (
            "That was too many files",
            f"The request had more than {limit:,} files, the most this server accepts. "
            "Nothing was saved.",
            "Go back and send fewer at once.",
        )
    return (
        "We could not read that request",
        "The request was malformed, so nothing was done.",
        "Go back and try again.",
    )


def megabytes(size: int) -> str:
    return f"{size / 1024 / 1024:.1f}".removesuffix(".0") + " MB"


class NotFoundPageMiddleware:
    """With DEBUG on, a page that does not exist gets templates/404.html, as with DEBUG off,
    instead of Django's technical 404 page. The API and webhook paths keep their JSON 404s.
    With DEBUG off Django already does this, and the middleware takes itself out.

    Last in MIDDLEWARE: CommonMiddleware still turns a 404 for a path missing its slash
    into a redirect."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        if not settings.DEBUG:
            raise MiddlewareNotUsed
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        unmatched = getattr(request, "resolver_match", None) is None  # no URL pattern fits
        if response.status_code == 404 and unmatched and self.is_page(request):
            return page_not_found(request, Http404())
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, Http404) and self.is_page(request):
            return page_not_found(request, exception)
        return None

    @staticmethod
    def is_page(request: HttpRequest) -> bool:
        return not request.path.startswith(JSON_PATHS)
