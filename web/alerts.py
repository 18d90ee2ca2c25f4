"""Alerts: create, get, list, soft delete; and the historic routes the seeds' clients call.

A create writes through the store first and only then tells the book, so a trigger is in the
book only once its row is committed; the pair runs shielded from cancellation (a client that
hangs up mid-request must not leave a committed alert outside the book). An alert is visible
only to its owner: any other id is a 404, whether it exists or not.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import trio
from quart import Response, request

from engine.errors import NotFound, ValidationFailed
from engine.model import Alert, AlertStatus, Direction, RemoveTrigger
from web import validation as v
from web.batcher import Row
from web.spec import (
    STATUS,
    STR,
    Param,
    Route,
    ok,
    problems,
    ref,
)
from web.state import State, json_response, page_links, plain, read_json

DEFAULT_EXCHANGE = "binance"
LEGACY_SYMBOL = "BTCUSDT"  # the historic clients tracked BTC only and sent no symbol
LEGACY_PRICE_FIELDS = ("price", "trigger_value")
MAX_ID = 2**63 - 1
LIST_QUERY = ("status", "symbol", "exchange", "page", "page_size")


def alert_view(alert: Alert) -> dict[str, Any]:
    """An alert as the API shows it to its owner."""
    return {
        "id": alert.id,
        "symbol": alert.symbol,
        "exchange": alert.exchange,
        "target_price": plain(alert.target_price),
        "direction": alert.direction.value,
        "status": alert.status.value,
        "name": alert.name,
        "created_at": alert.created_at,
        "triggered_at": alert.triggered_at,
        "triggered_price": plain(alert.triggered_price),
        "deleted_at": alert.deleted_at,
    }


def exchange_name(state: State, body: dict[str, Any]) -> str:
    if "exchange" not in body:
        return DEFAULT_EXCHANGE
    name = v.string(body, "exchange", max_length=64).strip().lower()
    known = state.ctx.feeds.names()
    if name not in known:
        raise ValidationFailed(
            f"exchange {name!r} is not loaded (loaded: {', '.join(known) or 'none'})",
            field="exchange",
        )
    return name


def symbol_name(state: State, exchange: str, raw: Any) -> str:
    text = v.symbol(raw)
    try:
        normal = state.ctx.feeds.normalise(exchange, text)
    except (KeyError, ValueError):
        raise ValidationFailed(
            f"{text!r} is not a symbol {exchange} can spell", field="symbol"
        ) from None
    return v.symbol(normal)


def _direction(
    state: State, body: dict[str, Any], exchange: str, symbol: str, target: Decimal
) -> Direction:
    if "direction" in body:
        text = body["direction"]
        if not isinstance(text, str) or text.strip().lower() not in ("above", "below"):
            raise ValidationFailed("direction must be 'above' or 'below'", field="direction")
        return Direction(text.strip().lower())
    tick = state.ctx.prices.get(exchange, symbol)
    if tick is None:
        raise ValidationFailed(
            f"no price is known yet for {symbol} on {exchange}; send a direction "
            "('above' or 'below')",
            field="direction",
        )
    return Direction.ABOVE if target >= tick.price else Direction.BELOW


def parse_create(state: State, user_id: int, body: dict[str, Any]) -> Row:
    """The row a create body asks for; raises :class:`ValidationFailed` naming the field."""
    exchange = exchange_name(state, body)
    symbol = symbol_name(state, exchange, body["symbol"])
    target = v.price(body["target_price"])
    direction = _direction(state, body, exchange, symbol, target)
    name = v.string(body, "name", max_length=v.NAME_MAX).strip() if "name" in body else ""
    return (user_id, exchange, symbol, target, direction, name)


async def write_create(state: State, row: Row) -> Alert:
    """Commit the alert (with whatever other creates are in flight, web/batcher.py), then it is
    in the book. Shielded: a client that hangs up cannot split the pair."""
    with trio.CancelScope(shield=True):
        return await state.creates.create(*row)


async def _create(state: State, user_id: int, body: dict[str, Any]) -> Alert:
    return await write_create(state, parse_create(state, user_id, body))


async def create_alert(state: State, user_id: int) -> Response:
    body = await read_json(state.settings.max_body)
    v.check_fields(
        body, required=("symbol", "target_price"), optional=("direction", "exchange", "name")
    )
    alert = await _create(state, user_id, body)
    return json_response(state, alert_view(alert), 201)


async def create_alert_legacy(state: State, user_id: int) -> Response:
    """The historic body: ``price`` or ``trigger_value`` name the target; BTCUSDT by default."""
    body = await read_json(state.settings.max_body)
    v.check_fields(
        body,
        required=(),
        optional=("symbol", "target_price", *LEGACY_PRICE_FIELDS, "direction", "exchange", "name"),
    )
    given = [f for f in ("target_price", *LEGACY_PRICE_FIELDS) if f in body]
    if not given:
        raise ValidationFailed("target_price (or price, trigger_value) is required", "target_price")
    if len(given) > 1:
        raise ValidationFailed(f"send one of {', '.join(given)}, not several", field=given[1])
    field = given[0]
    clean = {k: val for k, val in body.items() if k not in LEGACY_PRICE_FIELDS}
    clean["target_price"] = v.price(body[field], field)
    clean.setdefault("symbol", LEGACY_SYMBOL)
    alert = await _create(state, user_id, clean)
    view = alert_view(alert)
    if field != "target_price":
        view[field] = plain(alert.target_price)
    return json_response(state, view, 201)


def _alert_id(alert_id: int) -> int:
    if alert_id > MAX_ID:
        raise NotFound("no such alert")
    return alert_id


async def get_alert(state: State, user_id: int, alert_id: int) -> Response:
    alert = await state.ctx.store.get_alert(user_id, _alert_id(alert_id))
    if alert is None:
        raise NotFound("no such alert")
    return json_response(state, alert_view(alert))


async def delete_alert(state: State, user_id: int, alert_id: int) -> Response:
    """Soft delete: the row stays with status ``deleted``; the book forgets the trigger.

    Deleting an alert that already fired or was deleted answers 200 with the alert unchanged.
    """
    with trio.CancelScope(shield=True):
        before = await state.ctx.store.get_alert(user_id, _alert_id(alert_id))
        if before is None:
            raise NotFound("no such alert")
        alert = await state.ctx.store.delete_alert(user_id, alert_id)
        if alert is None:
            raise NotFound("no such alert")
        if before.status is AlertStatus.CREATED and alert.status is AlertStatus.DELETED:
            await state.ctx.commands.send(RemoveTrigger(alert.id))
            message = "alert deleted"
        else:
            message = f"alert was already {alert.status.value}; nothing changed"
    return json_response(state, {"message": message, "alert": alert_view(alert)})


async def list_alerts(state: State, user_id: int) -> Response:
    """The owner's alerts, newest first (then highest id), filtered and paginated."""
    payload = await alert_page(state, user_id, request.args, request.base_url)
    return json_response(state, payload)


async def alert_page(
    state: State, user_id: int, query: Mapping[str, str], base_url: str
) -> dict[str, Any]:
    """The body of a list response for ``query`` (first value per name) at ``base_url``.

    Raises :class:`ValidationFailed` for an unknown or malformed parameter.
    """
    v.check_query(query, LIST_QUERY)
    page, size = v.page_params(query)
    status = query.get("status")
    if status is not None and status not in {s.value for s in AlertStatus}:
        raise ValidationFailed("status must be created, triggered or deleted", field="status")
    exchange = None
    if "exchange" in query:
        exchange = exchange_name(state, {"exchange": query["exchange"]})
    symbol = None
    if "symbol" in query:
        symbol = (
            symbol_name(state, exchange, query["symbol"])
            if exchange
            else v.symbol(query["symbol"]).upper()
        )
    if status is None and symbol is None and exchange is None:
        # the common case, read with other owners' pages in one statement (web/batcher.py)
        count, alerts = await state.lists.page(user_id, size, (page - 1) * size)
    else:
        count, alerts = await state.ctx.store.list_alerts(
            user_id,
            status=None if status is None else AlertStatus(status),
            symbol=symbol,
            exchange=exchange,
            limit=size,
            offset=(page - 1) * size,
        )
    nxt, prev = page_links(page, size, count, base_url, query)
    return {
        "count": count,
        "next": nxt,
        "previous": prev,
        "results": [alert_view(a) for a in alerts],
    }


LIST_PARAMS = (
    Param("status", STATUS, "only alerts in this status"),
    Param("symbol", STR, "only this symbol (normalised)"),
    Param("exchange", STR, "only this exchange"),
    Param("page", {"type": "integer", "minimum": 1}, "1-based page number"),
    Param("page_size", {"type": "integer", "minimum": 1}, "default 10, capped at 100"),
)
_CREATE_RESPONSES = {
    **ok(201, "the alert, committed and in the book", ref("Alert")),
    **problems(400, 401, 413, 415, 422),
}
_ONE = {**ok(200, "the alert", ref("Alert")), **problems(401, 404)}
_DELETE = {**ok(200, "deleted (or already fired/deleted)", ref("Deleted")), **problems(401, 404)}
_LIST = {**ok(200, "a page of alerts, newest first", ref("AlertList")), **problems(401, 422)}


def routes() -> list[Route]:
    """The alert routes, canonical first, then the historic aliases."""
    return [
        Route(
            "POST",
            "/api/alerts",
            "/api/alerts",
            create_alert,
            "Create an alert",
            body="AlertCreate",
            responses=_CREATE_RESPONSES,
        ),
        Route(
            "GET",
            "/api/alerts",
            "/api/alerts",
            list_alerts,
            "List your alerts",
            query=LIST_PARAMS,
            responses=_LIST,
        ),
        Route(
            "GET",
            "/api/alerts/{alert_id}",
            "/api/alerts/<int:alert_id>",
            get_alert,
            "One of your alerts",
            responses=_ONE,
        ),
        Route(
            "DELETE",
            "/api/alerts/{alert_id}",
            "/api/alerts/<int:alert_id>",
            delete_alert,
            "Soft-delete one of your alerts",
            responses=_DELETE,
        ),
        Route(
            "POST",
            "/api/alerts/create/",
            "/api/alerts/create/",
            create_alert_legacy,
            "Create an alert (historic route and body)",
            body="LegacyAlertCreate",
            responses=_CREATE_RESPONSES,
            alias_of="POST /api/alerts",
        ),
        Route(
            "GET",
            "/api/alerts/",
            "/api/alerts/",
            list_alerts,
            "List your alerts (historic)",
            query=LIST_PARAMS,
            responses=_LIST,
            alias_of="GET /api/alerts",
        ),
        Route(
            "GET",
            "/api/alerts/{alert_id}/",
            "/api/alerts/<int:alert_id>/",
            get_alert,
            "One of your alerts (historic)",
            responses=_ONE,
            alias_of="GET /api/alerts/{alert_id}",
        ),
        Route(
            "DELETE",
            "/api/alerts/delete/{alert_id}/",
            "/api/alerts/delete/<int:alert_id>/",
            delete_alert,
            "Soft-delete an alert (historic)",
            responses=_DELETE,
            alias_of="DELETE /api/alerts/{alert_id}",
        ),
    ]
