"""Last prices as the book saw them: price, the exchange's event time, and age in milliseconds;
and each symbol's recent history (one point per second, ``engine.book.history``) for a chart."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from quart import Response, request

from engine.errors import NotFound, ValidationFailed
from engine.model import Tick
from engine.parts import Parts
from web import markets
from web import validation as v
from web.context import State
from web.http import json_response, plain
from web.spec import Param, Route, ok, problems, ref


def price_view(tick: Tick, now_ns: int) -> dict[str, Any]:
    """One tick for the API; ``age_ms`` is measured from when the frame arrived."""
    exchange_time = (
        datetime.fromtimestamp(tick.exchange_time_ms / 1000, UTC) if tick.exchange_time_ms else None
    )
    age_ms = round(max(0, now_ns - tick.received_ns) / 1e6, 3) if tick.received_ns else 0.0
    return {
        "exchange": tick.exchange,
        "symbol": tick.symbol,
        "price": plain(tick.price),
        "exchange_time": exchange_time,
        "age_ms": age_ms,
    }


async def list_prices(state: State, user_id: int) -> Response:
    """Every symbol's last price, by exchange then symbol."""
    v.check_query(request.args, ())
    now = time.monotonic_ns()
    ticks = state.ctx.prices.items()  # sorted by (exchange, symbol)
    return json_response(state, {"results": [price_view(tick, now) for tick in ticks]})


async def get_price(state: State, user_id: int, symbol: str) -> Response:
    """One symbol's last price (``?exchange=``, default binance); 404 when none is known."""
    exchange, normal = _symbol_query(state, symbol)
    tick = state.ctx.prices.get(exchange, normal)
    if tick is None:
        raise NotFound(f"no price known for {normal} on {exchange}")
    return json_response(state, price_view(tick, time.monotonic_ns()))


async def get_history(state: State, user_id: int, symbol: str) -> Response:
    """One symbol's points of the last 15 minutes (``?exchange=``, default binance), oldest
    first, one per second; 404 when it has none (no tick in that window, or evicted)."""
    exchange, normal = _symbol_query(state, symbol)
    history = state.ctx.history
    points = history.points(exchange, normal, now=int(time.time()))
    if not points:
        raise NotFound(f"no price history for {normal} on {exchange}")
    return json_response(
        state,
        {
            "exchange": exchange,
            "symbol": normal,
            "points": [
                {"time": datetime.fromtimestamp(second, UTC), "price": plain(price)}
                for second, price in points
            ],
        },
    )


def _symbol_query(state: State, symbol: str) -> tuple[str, str]:
    """The (exchange, normalised symbol) of a price route: ``?exchange=`` (default binance) and
    the path's symbol spelt any way; 404 for a well-formed symbol the exchange does not list."""
    v.check_query(request.args, ("exchange",))
    given = request.args.get("exchange")
    if given is not None:
        given = markets.price_exchange(state.ctx).clean(given, "exchange")
    exchange = given or markets.DEFAULT_EXCHANGE
    try:
        normal = markets.symbol_on(state.ctx, exchange, symbol)
    except ValidationFailed:
        if _spelling_only(symbol):  # well formed, just not this exchange's: no price exists
            raise NotFound(f"no price known for {symbol} on {exchange}") from None
        raise
    return exchange, normal


def _spelling_only(symbol: str) -> bool:
    """Whether ``symbol`` is a well-formed spelling (so refusing it is the exchange's word)."""
    try:
        markets.SYMBOL_TEXT.clean(symbol, "symbol")
    except ValidationFailed:
        return False
    return True


def routes(ctx: Parts) -> list[Route]:
    return [
        Route(
            "GET",
            "/api/prices",
            "/api/prices",
            list_prices,
            "Last price of every symbol with a live feed",
            responses={**ok(200, "last prices", ref("PriceList")), **problems(401, 422)},
        ),
        Route(
            "GET",
            "/api/prices/{symbol}",
            "/api/prices/<path:symbol>",
            get_price,
            "Last price of one symbol",
            query=(Param("exchange", markets.price_exchange(ctx).schema(), "default binance"),),
            path_params=(Param("symbol", markets.SYMBOL_TEXT.schema(), "spelt any way"),),
            responses={**ok(200, "the last price", ref("Price")), **problems(401, 404, 422)},
        ),
        Route(
            "GET",
            "/api/prices/{symbol}/history",
            "/api/prices/<path:symbol>/history",
            get_history,
            "Recent prices of one symbol (the last 15 minutes, one point per second)",
            query=(Param("exchange", markets.price_exchange(ctx).schema(), "default binance"),),
            path_params=(Param("symbol", markets.SYMBOL_TEXT.schema(), "spelt any way"),),
            responses={
                **ok(200, "the points, oldest first", ref("PriceHistory")),
                **problems(401, 404, 422),
            },
        ),
    ]
