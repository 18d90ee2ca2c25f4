"""RFC 9457 problem details: one table from each error class to its status and problem type.

Every error response of the API is ``application/problem+json`` with ``type``, ``title``,
``status`` and ``detail``, plus ``field`` for a validation error. The table below is the only
place that decides which status an error gets, so a new error class is one row here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec
from quart import Response
from werkzeug.exceptions import HTTPException

from engine.errors import (
    ApiError,
    Conflict,
    Forbidden,
    LimitReached,
    MalformedRequest,
    NotFound,
    Overloaded,
    PayloadTooLarge,
    RateLimited,
    ShuttingDown,
    StoreUnavailable,
    Unauthorized,
    UnsupportedMediaType,
    ValidationFailed,
)

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "urn:triggerbook:problem:"


class ProblemKind(msgspec.Struct, frozen=True):
    """How one class of error is shown: HTTP status, the ``type`` slug and the ``title``."""

    status: int
    slug: str
    title: str

    @property
    def type(self) -> str:
        return TYPE_BASE + self.slug


# Most specific first: the first class the error is an instance of wins.
PROBLEMS: tuple[tuple[type[BaseException], ProblemKind], ...] = (
    (ValidationFailed, ProblemKind(422, "validation", "Invalid request")),
    (MalformedRequest, ProblemKind(400, "malformed-request", "Malformed request")),
    (Unauthorized, ProblemKind(401, "unauthorized", "Not authenticated")),
    (Forbidden, ProblemKind(403, "forbidden", "Not allowed")),
    (NotFound, ProblemKind(404, "not-found", "Not found")),
    (Conflict, ProblemKind(409, "conflict", "Already exists")),
    (LimitReached, ProblemKind(409, "limit-reached", "Limit reached")),
    (PayloadTooLarge, ProblemKind(413, "payload-too-large", "Request body too large")),
    (UnsupportedMediaType, ProblemKind(415, "unsupported-media-type", "Unsupported media type")),
    (RateLimited, ProblemKind(429, "rate-limited", "Too many attempts")),
    (ShuttingDown, ProblemKind(503, "shutting-down", "Shutting down")),
    (StoreUnavailable, ProblemKind(503, "unavailable", "Service unavailable")),
    (Overloaded, ProblemKind(503, "overloaded", "Server busy")),
)

# Errors the framework raises itself (routing, body cap): shown with our types too.
HTTP_PROBLEMS: Mapping[int, ProblemKind] = {
    400: ProblemKind(400, "malformed-request", "Malformed request"),
    404: ProblemKind(404, "not-found", "Not found"),
    405: ProblemKind(405, "method-not-allowed", "Method not allowed"),
    413: ProblemKind(413, "payload-too-large", "Request body too large"),
    415: ProblemKind(415, "unsupported-media-type", "Unsupported media type"),
}
INTERNAL = ProblemKind(500, "internal", "Internal server error")
NOT_READY = ProblemKind(503, "not-ready", "Not ready")


def kind_of(error: BaseException) -> ProblemKind | None:
    """The problem kind of one of our errors, or ``None`` when the table does not know it."""
    for cls, kind in PROBLEMS:
        if isinstance(error, cls):
            return kind
    return None


def problem(
    kind: ProblemKind,
    detail: str,
    *,
    field: str | None = None,
    headers: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Response:
    """A problem+json response of ``kind``; ``extra`` adds extension members (RFC 9457 3.2)."""
    body: dict[str, Any] = {
        "type": kind.type,
        "title": kind.title,
        "status": kind.status,
        "detail": detail,
    }
    if field is not None:
        body["field"] = field
    if extra:
        body.update(extra)
    response = Response(msgspec.json.encode(body), status=kind.status, content_type=PROBLEM_JSON)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def from_error(error: ApiError | Conflict | StoreUnavailable) -> Response:
    """The response for one of our errors (every class in :data:`PROBLEMS`)."""
    kind = kind_of(error)
    if kind is None:  # an ApiError subclass added without a row: a server bug, not a 4xx
        kind = INTERNAL
    headers: dict[str, str] = {}
    if isinstance(error, RateLimited | ShuttingDown | Overloaded):
        headers["Retry-After"] = str(error.retry_after)
    if isinstance(error, PayloadTooLarge):  # the rest of the body is never read: end the connection
        headers["Connection"] = "close"
    if isinstance(error, ValidationFailed | LimitReached):
        return problem(kind, error.detail, field=error.field, headers=headers)
    return problem(kind, str(error), headers=headers)


def options_answer(allow: tuple[str, ...]) -> Response:
    """The answer to ``OPTIONS``: 204, no body, ``Allow`` listing what the path serves."""
    response = Response(b"", status=204)
    response.headers.pop("Content-Type", None)
    response.headers["Allow"] = ", ".join(allow)
    return response


def allowed_only(allow: tuple[str, ...]) -> Response:
    """405 for a method the path does not serve; ``Allow`` lists the ones it does."""
    listed = ", ".join(allow)
    return problem(HTTP_PROBLEMS[405], f"this path serves {listed} only", headers={"Allow": listed})


def from_http(error: HTTPException) -> Response:
    """The response for an error the framework raised (404 route, 405 method, 413 body cap)."""
    code = error.code or 500
    kind = HTTP_PROBLEMS.get(code, ProblemKind(code, f"http-{code}", error.name))
    headers: dict[str, str] = {}
    if code == 413:
        headers["Connection"] = "close"
    for name, value in error.get_headers():
        if name.lower() == "allow":
            headers["Allow"] = value
    detail = {
        404: "no such route",
        405: "this route does not accept this method",
        413: "the request body is larger than the limit",
    }.get(code, error.description or kind.title)
    return problem(kind, detail, headers=headers)
