"""What every alert route shares, canonical or historic: the create rules, the create, one
alert, the soft delete, a page of the list, and the alert as its owner sees it.

``web/alerts.py`` (the canonical routes), ``web/legacy.py`` (the seed clients' routes) and
``web/fastlane.py`` (the hottest two requests past Quart) all call these, so nothing is
validated or written twice. A create writes through the store first and only then tells the
book, so a trigger is in the book only once its row is committed; the pair runs shielded from
cancellation (a client that hangs up mid-request must not leave a committed alert outside the
book). An alert is visible only to its owner: any other id is a 404, whether it exists or not.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import trio

from engine import limits
from engine.errors import NotFound, ValidationFailed
from engine.feeds.symbols import SymbolCheck
from engine.model import Alert, AlertStatus, Direction, RemoveTrigger
from engine.parts import Parts
from web import markets
from web import validation as v
from web.batcher import Row
from web.context import State
from web.http import page_links, plain
from web.spec import PROBLEM, Param, ref

CREATE = "AlertCreate"
LEGACY_SYMBOL = "BTCUSDT"  # the historic clients tracked BTC only and sent no symbol
LIST_QUERY = ("status", "symbol", "exchange", "page", "page_size")
DIRECTION = v.Choice(
    lambda: ("above", "below"),
    "the crossing that fires",
    "above: fires at price >= target; below: at price <= target. Omitted: inferred from the "
    "last price (target >= last: above)",
)
STATUS_RULE = v.Choice(lambda: tuple(s.value for s in AlertStatus), "an alert status")
# A create's own 503 (both create routes document it): the database away, or the engine stopping.
CREATE_UNAVAILABLE = {
    503: (
        "the database is unavailable, or the server is shutting down (`type` ends "
        "`shutting-down`, with Retry-After): no alert was written, the create may be sent again",
        ref("Problem"),
        PROBLEM,
    )
}
# Pages reach this deep and no further: offsets stay small, so every page (filtered or not) costs
# a few milliseconds whatever the owner has; a longer list is narrowed with a filter.
MAX_PAGE = max(1, limits.MAX_LIST_OFFSET // v.PAGE_SIZE_MAX + 1)


def channel_kinds(ctx: Parts) -> tuple[str, ...]:
    """The channels an alert may name, in name order: the enabled sinks that reach the account
    (console, the account's email) or take destinations (webhook, email, chat). Also what an
    alert without ``channels`` notifies: every one of them (a destination kind reaching the
    owner's live, confirmed destinations of that kind, if any), as ``queries.RECORD_FIRES``."""
    return ctx.delivery.kinds


def channels_rule(ctx: Parts) -> v.Kinds:
    return v.Kinds(
        lambda: channel_kinds(ctx),
        "an enabled channel",
        description="the channels to notify (enabled sinks), duplicates folded; a destination "
        "kind reaches every live, confirmed destination of yours of that kind; [] notifies "
        "nobody; absent: every enabled channel at fire time",
    )


def create_body(ctx: Parts) -> v.Body:
    """The rules of a create body for the exchanges this server feeds (built once per app)."""
    optional: dict[str, v.Rule] = {
        "direction": DIRECTION,
        "exchange": markets.exchange_rule(ctx),
        "name": v.NAME,
        "channels": channels_rule(ctx),
    }
    return v.Body(
        CREATE,
        {"symbol": markets.SYMBOL_TEXT, "target_price": v.PRICE},
        optional,
        conditions=markets.symbol_conditions(ctx, ("symbol",)),
    )


def alert_view(alert: Alert, state: State) -> dict[str, Any]:
    """An alert as the API shows it to its owner.

    ``symbol_status`` is what the exchange's own list of traded symbols says of the symbol now
    (``listed``, ``unlisted``, or ``unverified`` when no list can be had); ``problem`` says why a
    live alert may not fire as asked (the engine set it aside, see ``engine/quarantine.py``, or
    the exchange refused to stream its symbol), or is null. ``triggered_at`` is when the engine
    fired; ``tick_time`` the exchange's own time of the tick that fired it, when it sent one.
    ``channels`` are the ones it was created with, or (``channels_default``) the defaults it
    notifies when it fires: every enabled channel (:func:`channel_kinds`).
    """
    ctx = state.ctx
    problem = None
    if alert.status is AlertStatus.CREATED:
        problem = ctx.quarantine.reason_for(alert.id)
        if problem is None:
            refused = ctx.feed_states.rejection(alert.exchange, alert.symbol)
            if refused is not None:
                problem = f"{alert.exchange} refused to stream {alert.symbol}: {refused}"
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
        "tick_time": alert.tick_time,
        "symbol_status": ctx.symbols.lookup(alert.exchange, alert.symbol).value,
        "problem": problem,
        "channels": list(channel_kinds(ctx) if alert.channels is None else alert.channels),
        "channels_default": alert.channels is None,
    }


async def _direction(
    state: State, given: str | None, exchange: str, symbol: str, target: Decimal
) -> Direction:
    if given is not None:
        return Direction(given)
    tick = state.ctx.prices.get(exchange, symbol)
    last = tick.price if tick is not None else await state.ctx.symbols.rest_price(exchange, symbol)
    if last is None:
        raise ValidationFailed(
            f"no price is known yet for {symbol} on {exchange}; send a direction "
            "('above' or 'below')",
            field="direction",
        )
    return Direction.ABOVE if target >= last else Direction.BELOW


async def parse_create(state: State, user_id: int, fields: dict[str, Any]) -> Row:
    """The row a cleaned create body asks for (``create_body().clean``); raises
    :class:`ValidationFailed` naming the field."""
    exchange = markets.exchange_of(state.ctx, fields.get("exchange"))
    symbol = markets.symbol_on(state.ctx, exchange, fields["symbol"])
    if state.ctx.symbols.lookup(exchange, symbol) is SymbolCheck.UNLISTED:
        raise ValidationFailed(
            f"{symbol} is not listed on {exchange} (its own list of traded symbols)",
            field="symbol",
        )
    target = fields["target_price"]
    direction = await _direction(state, fields.get("direction"), exchange, symbol, target)
    name = fields.get("name", "").strip()
    return (user_id, exchange, symbol, target, direction, name, fields.get("channels"))


async def write_create(state: State, row: Row) -> Alert:
    """Commit the alert (with whatever other creates are in flight, web/batcher.py), then it is
    in the book. Shielded: a client that hangs up cannot split the pair.

    Raises :class:`ShuttingDown` (503, nothing written) once the web has stopped taking
    creates (the engine's shutdown, ``engine/app.py``). A committed alert is returned (a 201)
    even if the book has stopped meanwhile: it is loaded into the book at the next start."""
    with trio.CancelScope(shield=True):
        return await state.creates.create(*row)


async def create(state: State, user_id: int, fields: dict[str, Any]) -> Alert:
    """Create the alert a cleaned body asks for: validated, committed, in the book."""
    return await write_create(state, await parse_create(state, user_id, fields))


async def get(state: State, user_id: int, alert_id: int) -> Alert:
    """The owner's alert ``alert_id``; raises :class:`NotFound` for anyone else's or none.
    (The router serves only ids a database can hold: ``web.app.PathId``.)"""
    alert = await state.ctx.store.get_alert(user_id, alert_id)
    if alert is None:
        raise NotFound("no such alert")
    return alert


async def delete(state: State, user_id: int, alert_id: int) -> tuple[str, Alert]:
    """Soft delete: the row stays with status ``deleted``; the book forgets the trigger.

    Returns what happened and the alert; an alert that already fired or was deleted is left
    unchanged. Raises :class:`NotFound` as :func:`get` does. Shielded, like a create.
    """
    with trio.CancelScope(shield=True):
        before = await state.ctx.store.get_alert(user_id, alert_id)
        if before is None:
            raise NotFound("no such alert")
        alert = await state.ctx.store.delete_alert(user_id, alert_id)
        if alert is None:
            raise NotFound("no such alert")
        if before.status is AlertStatus.CREATED and alert.status is AlertStatus.DELETED:
            await state.ctx.commands.send(RemoveTrigger(alert.id))
            state.ctx.quarantine.forget(alert.id)
            return "alert deleted", alert
    return f"alert was already {alert.status.value}; nothing changed", alert


async def alert_page(
    state: State, user_id: int, query: Mapping[str, str], base_url: str
) -> dict[str, Any]:
    """The body of a list response for ``query`` (first value per name) at ``base_url``: the
    owner's alerts, newest first (then highest id), filtered and paginated.

    Raises :class:`ValidationFailed` for an unknown or malformed parameter.
    """
    v.check_query(query, LIST_QUERY)
    page, size = v.page_params(query, MAX_PAGE)
    status = (
        None if "status" not in query else AlertStatus(STATUS_RULE.clean(query["status"], "status"))
    )
    exchange = None
    if "exchange" in query:
        exchange = state.bodies[CREATE].optional["exchange"].clean(query["exchange"], "exchange")
    symbols: list[str] | None = None
    if "symbol" in query:
        symbols = markets.spellings(state.ctx, query["symbol"], exchange)
    if status is None and symbols is None and exchange is None:
        # the common case, read with other owners' pages in one statement (web/batcher.py)
        count, alerts = await state.lists.page(user_id, size, (page - 1) * size)
    elif symbols == []:  # no exchange here can spell it, so no alert has it
        count, alerts = 0, []
    else:
        count, alerts = await state.ctx.store.list_alerts(
            user_id,
            status=status,
            symbols=symbols,
            exchange=exchange,
            limit=size,
            offset=(page - 1) * size,
        )
    nxt, prev = page_links(page, size, count, base_url, query, MAX_PAGE)
    return {
        "count": count,
        "next": nxt,
        "previous": prev,
        "results": [alert_view(a, state) for a in alerts],
    }


def list_params(ctx: Parts) -> tuple[Param, ...]:
    """The list's query parameters, with the exchanges this server feeds."""
    return (
        Param("status", STATUS_RULE.schema(), "only alerts in this status"),
        Param(
            "symbol",
            markets.SYMBOL_TEXT.schema(),
            "only this symbol, spelt any way its exchange reads (every exchange's spelling when "
            "no exchange is given)",
        ),
        Param("exchange", markets.exchange_rule(ctx).schema(), "only this exchange"),
        Param("page", v.page_schema(MAX_PAGE), "1-based page number"),
        Param("page_size", v.PAGE_SIZE_SCHEMA, "default 10, capped at 100"),
    )
