"""What the API answers when it refuses a request: always JSON of one shape,
{"detail": "...", "problems": [{"path": ..., "message": ...}]}, with a plain reason.

Request bodies are checked at the edge by `JsonParser`: a JSON object of at most 1 MB,
strict JSON (no NaN or Infinity), nested at most 64 levels, and no NUL characters
(PostgreSQL's jsonb refuses them), so nothing malformed reaches a command.
"""

import json
from collections.abc import Iterable, Sequence
from typing import Any

from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.http import Http404, HttpRequest, HttpResponse
from ninja import NinjaAPI, Schema
from ninja.errors import AuthenticationError, HttpError, ValidationError
from ninja.parser import Parser

from vectorbea.engine import json_problem
from vectorbea.engine.limits import text_problem_at

MAX_BODY_BYTES = 1_000_000
MAX_BODY_DEPTH = 64


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


def _strict_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"{text} is too large a number")
    return value


class JsonParser(Parser):
    def parse_body(self, request: HttpRequest) -> Any:
        too_large = f"The request body is larger than {MAX_BODY_BYTES:,} bytes."
        length = request.META.get("CONTENT_LENGTH") or "0"
        if length.isdigit() and int(length) > MAX_BODY_BYTES:
            raise BadBody(too_large)
        try:
            body = request.body
        except RequestDataTooBig:
            raise BadBody(too_large) from None
        if len(body) > MAX_BODY_BYTES:
            raise BadBody(too_large)
        try:
            data = json.loads(body, parse_constant=_strict_constant, parse_float=_finite_float)
        except (ValueError, RecursionError) as exc:
            raise BadBody(f"The request body is not valid JSON: {exc}"[:300]) from None
        if not isinstance(data, dict):
            raise BadBody("The request body must be a JSON object.")
        unstorable = text_problem_at(data)  # well-formed JSON whose text Postgres refuses
        if unstorable:
            path, what = unstorable
            raise BadBody(f"Text may not contain {what}.", status=422, path=path or "body")
        problem = json_problem(data, "The request body", MAX_BODY_BYTES, MAX_BODY_DEPTH)
        if problem:
            raise BadBody(problem)
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

    api.add_exception_handler(Refused, refused)
    api.add_exception_handler(AuthenticationError, unauthenticated)
    api.add_exception_handler(HttpError, http_error)
    api.add_exception_handler(ValidationError, invalid)
    api.add_exception_handler(Http404, not_found)
    api.add_exception_handler(PermissionDenied, forbidden)
