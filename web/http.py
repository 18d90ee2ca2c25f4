"""The request and response helpers every JSON route uses: read a body, write a response,
spell a decimal, link the pages of a list. Below the handlers; above :mod:`web.context`."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any, cast
from urllib.parse import urlencode

from quart import Response, request

from engine.errors import MalformedRequest, PayloadTooLarge, UnsupportedMediaType
from web.context import State
from web.validation import parse_json_object


async def read_json(max_body: int) -> dict[str, Any]:
    """The request body as one JSON object (numbers as ``Decimal``).

    Raises :class:`UnsupportedMediaType` unless the body is declared ``application/json``,
    :class:`PayloadTooLarge` beyond ``max_body`` bytes (before reading it when the length is
    declared), and :class:`MalformedRequest` for anything but one JSON object. Quart's read
    raises ``RequestTimeout`` (408, then the connection closes) when the whole body has not
    arrived within the app's ``BODY_TIMEOUT``, which ``web.server.run_web`` sets to
    ``[http] body_timeout_s``: a client that trickles its body holds a connection that long.
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
