"""What every handler shares: the engine's parts, the token codec, the hasher, the limiters; and
the two request helpers every JSON route uses (read a body, write a response)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlencode

import msgspec
from quart import Response, request

from engine.errors import MalformedRequest, PayloadTooLarge, UnsupportedMediaType
from web.auth import AttemptLimiter, PasswordHasher, TokenCodec
from web.batcher import CreateBatcher, ListBatcher
from web.validation import Body, parse_json_object

if TYPE_CHECKING:
    from web.server import WebContext

MAX_BODY = 16 * 1024


@dataclass(frozen=True, slots=True)
class WebSettings:
    """Knobs of the web layer that are not in the configuration file (tests turn them down).

    ``bcrypt_rounds`` is bcrypt's cost; ``login_*`` bound failed logins per username and per
    client address within ``login_window_s``; ``grace_s`` is how long in-flight requests may
    finish once the server is cancelled.
    """

    bcrypt_rounds: int = 12
    bcrypt_threads: int = 2
    max_body: int = MAX_BODY
    login_per_user: int = 5
    login_per_address: int = 20
    login_window_s: float = 300.0
    grace_s: float = 5.0


@dataclass(slots=True)
class State:
    """The web layer's collaborators, built once per server by :func:`web.app.create_app`."""

    ctx: WebContext
    settings: WebSettings
    tokens: TokenCodec
    hasher: PasswordHasher
    by_user: AttemptLimiter
    by_address: AttemptLimiter
    creates: CreateBatcher  # run by web.server.run_web
    lists: ListBatcher  # run by web.server.run_web
    encoder: msgspec.json.Encoder = field(default_factory=msgspec.json.Encoder)
    bodies: dict[str, Body] = field(default_factory=dict)  # each route's body rules, by name
    openapi: bytes = b""  # the encoded document, built once by create_app


async def read_json(max_body: int) -> dict[str, Any]:
    """The request body as one JSON object (numbers as ``Decimal``).

    Raises :class:`UnsupportedMediaType` unless the body is declared ``application/json``,
    :class:`PayloadTooLarge` beyond ``max_body`` bytes (before reading it when the length is
    declared), and :class:`MalformedRequest` for anything but one JSON object.
    """
    if request.mimetype != "application/json":
        raise UnsupportedMediaType(
            f"send the body as application/json, not {request.mimetype or 'no content type'}"
        )
    declared = request.content_length
    if declared is not None and declared > max_body:
        raise PayloadTooLarge(f"the body is {declared} bytes; the limit is {max_body}")
    body = cast(bytes, await request.get_data(cache=False, as_text=False))
    if len(body) > max_body:
        raise PayloadTooLarge(f"the body is over the limit of {max_body} bytes")
    if not body:
        raise MalformedRequest("the body is empty; send a JSON object")
    return parse_json_object(body)


def plain(value: Decimal | None) -> str | None:
    """A decimal as an exact string without exponent (``1E-18`` -> ``0.000000000000000001``)."""
    return None if value is None else format(value, "f")


def json_response(state: State, payload: Any, status: int = 200) -> Response:
    """``payload`` as JSON: ``Decimal`` as exact strings, datetimes as ISO 8601."""
    return Response(state.encoder.encode(payload), status=status, content_type="application/json")


def page_links(
    page: int,
    size: int,
    count: int,
    base: str | None = None,
    args: Mapping[str, str] | None = None,
    max_page: int | None = None,
) -> tuple[str | None, str | None]:
    """Absolute ``next`` and ``previous`` links for a page of ``size`` out of ``count``.

    ``base`` (the URL without its query) and ``args`` (the query, first value per name) default
    to the current request's. No ``next`` past ``max_page``, the deepest page the route serves.
    """
    last = max(1, -(-count // size))
    if max_page is not None:
        last = min(last, max_page)
    base = request.base_url if base is None else base
    items = request.args.items() if args is None else args.items()
    kept = [(k, val) for k, val in items if k != "page"]

    def link(number: int) -> str:
        query = dict(kept)
        query["page"] = str(number)
        return f"{base}?{urlencode(query)}"

    nxt = link(page + 1) if page < last else None
    prev = link(min(page - 1, last)) if page > 1 else None
    return nxt, prev
