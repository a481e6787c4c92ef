"""What the API answers when it refuses a request: always JSON of one shape,
{"detail": "...", "problems": [{"path": ..., "message": ...}]}, with a plain reason.

Request bodies are read at the edge by `JsonParser` with the one reader of untrusted JSON
(`vectorbea.engine.limits.parse_json`): a JSON object of at most 1 MB, strict JSON (no NaN
or Infinity), nested at most 64 levels, and no text PostgreSQL cannot store (a NUL, an
unpaired surrogate), so nothing malformed reaches a command.
"""

from collections.abc import Iterable, Sequence
from typing import Any

from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.http import Http404, HttpRequest, HttpResponse
from ninja import NinjaAPI, Schema
from ninja.errors import AuthenticationError, HttpError, ValidationError
from ninja.parser import Parser

from vectorbea.engine.limits import BadJson, parse_json

MAX_BODY_BYTES = 1_000_000
TOO_LARGE = f"The request body is larger than {MAX_BODY_BYTES:,} bytes."


class ProblemItem(Schema):
    path: str
    message: str


class Problem(Schema):
    detail: str
    problems: list[ProblemItem] = []


ERRORS: dict[int, type[Problem]] = {400: Problem, 401: Problem, 403: Problem, 404: Problem}
INVALID = {422: Problem}
CONFLICT = {409: Problem}


class Refused(Exception):
    """Raised by an operation: answer `status` with this reason (and problems)."""

    def __init__(self, status: int, detail: str, problems: Iterable[tuple[str, str]] = ()) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.problems = list(problems)


class BadBody(ValueError):
    """A request body the API does not read, said plainly: a 400, or a 422 when the JSON is
    fine but holds a value that cannot be recorded (with where it is)."""

    def __init__(self, detail: str, status: int = 400, path: str | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.problems = [(path, detail)] if path else []


class JsonParser(Parser):
    def parse_body(self, request: HttpRequest) -> Any:
        length = request.META.get("CONTENT_LENGTH") or "0"
        if length.isascii() and length.isdigit() and int(length) > MAX_BODY_BYTES:
            raise BadBody(TOO_LARGE)
        try:
            body = request.body
        except RequestDataTooBig:
            raise BadBody(TOO_LARGE) from None
        try:
            data = parse_json(body, "The request body", max_bytes=MAX_BODY_BYTES)
        except BadJson as exc:  # a value Postgres cannot store is a 422 naming where it is
            if exc.path is None:
                raise BadBody(exc.message) from None
            raise BadBody(exc.message, status=422, path=exc.path or "body") from None
        if not isinstance(data, dict):
            raise BadBody("The request body must be a JSON object.")
        return data


def problem_response(
    api: NinjaAPI,
    request: HttpRequest,
    status: int,
    detail: str,
    problems: Sequence[tuple[str, str]] = (),
) -> HttpResponse:
    body = {"detail": detail, "problems": [{"path": p, "message": m} for p, m in problems]}
    response = api.create_response(request, body, status=status)
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="vectorbea"'
    return response


def _location(loc: Sequence[Any]) -> str:
    """A pydantic error location as a path: body fields by name ("input.ticket"), other
    parameters with where they were sent ("query.limit", "header.Idempotency-Key")."""
    source, *rest = [str(part) for part in loc] or ["body"]
    if source == "body":
        rest = rest[1:]  # the operation's parameter name, not part of the document
        return ".".join(rest) or "body"
    return ".".join([source, *rest])


def install_handlers(api: NinjaAPI) -> None:
    def refused(request: HttpRequest, exc: Refused) -> HttpResponse:
        return problem_response(api, request, exc.status, exc.detail, exc.problems)

    def unauthenticated(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
        return problem_response(api, request, 401, exc.message)

    def http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
        cause = exc.__cause__  # ninja wraps what the parser raises in a 400
        if isinstance(cause, BadBody):
            return problem_response(api, request, cause.status, str(cause), cause.problems)
        return problem_response(api, request, exc.status_code, exc.message)

    def invalid(request: HttpRequest, exc: ValidationError) -> HttpResponse:
        problems = [(_location(e.get("loc", ())), str(e.get("msg", "Invalid"))) for e in exc.errors]
        detail = "The request has invalid values: " + "; ".join(f"{p}: {m}" for p, m in problems)
        return problem_response(api, request, 422, detail[:1000], problems)

    def not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
        return problem_response(api, request, 404, str(exc) or "Not found.")

    def forbidden(request: HttpRequest, exc: PermissionDenied) -> HttpResponse:
        return problem_response(api, request, 403, str(exc) or "This token cannot do this.")

    def too_large(request: HttpRequest, exc: RequestDataTooBig) -> HttpResponse:
        # Django refuses a body over DATA_UPLOAD_MAX_MEMORY_SIZE when ninja first reads it
        return problem_response(api, request, 400, TOO_LARGE)

    api.add_exception_handler(Refused, refused)
    api.add_exception_handler(RequestDataTooBig, too_large)
    api.add_exception_handler(AuthenticationError, unauthenticated)
    api.add_exception_handler(HttpError, http_error)
    api.add_exception_handler(ValidationError, invalid)
    api.add_exception_handler(Http404, not_found)
    api.add_exception_handler(PermissionDenied, forbidden)
