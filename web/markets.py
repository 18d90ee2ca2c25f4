"""Which exchanges and symbols a request may name: the enabled feeds, each with its own spelling.

An alert on an exchange that nothing feeds would never fire, so an alert (or a price lookup) may
name only an exchange some enabled feed provides: an enabled exchange, or one an enabled source
emits (``FeedSource.provides``; a source that replays whatever its file holds, such as
``replay``, provides every loaded exchange). The list is fixed for the life of the server, so
the OpenAPI document states it as an enum.

A symbol is spelt the exchange's way (``FeedRegistry.normalise``: ``btc/usdt`` is ``BTCUSDT`` on
Binance, Finnhub keeps ``BINANCE:BTCUSDT``); a spelling the exchange cannot have is a 422 naming
``symbol`` with the exchange's reason.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine import limits
from engine.errors import ValidationFailed
from web import validation as v

if TYPE_CHECKING:
    from engine.parts import Parts

DEFAULT_EXCHANGE = "binance"
# A symbol as text; each exchange then reads its own spelling (``FeedRegistry.symbol_pattern``,
# stated per exchange in the document by :func:`symbol_conditions`).
SYMBOL_TEXT = v.Text(
    limits.SYMBOL_MAX,
    1,
    description=f"1-{limits.SYMBOL_MAX} characters, spelt the way the exchange reads symbols",
)


def alert_exchanges(ctx: Parts) -> list[str]:
    """The exchanges an alert may name now (sorted): those some enabled feed provides."""
    registry = ctx.feeds
    names: set[str] = set()
    for feed in ctx.config.enabled_feeds():
        if registry.is_exchange(feed):
            names.add(feed)
            continue
        source = registry.sources.get(feed)
        if source is None:
            continue
        if getattr(source, "provides_any", False):
            names.update(registry.names())
        names.update(source.provides)
    return sorted(names & set(registry.names()))


def symbol_conditions(ctx: Parts, fields: tuple[str, ...]) -> tuple[v.Schema, ...]:
    """The document's statement of "a symbol is spelt its exchange's way": for each exchange an
    alert may name, ``if exchange is E then each of fields matches E's pattern`` (and the
    default exchange's pattern when none is named; or ``exchange`` required when the default
    has no enabled feed). The handler checks the same through :func:`symbol_on`."""
    names = alert_exchanges(ctx)

    def spelt(exchange: str) -> v.Schema:
        pattern = ctx.feeds.symbol_pattern(exchange)
        return {"properties": {f: {"pattern": pattern} for f in fields}}

    conditions: list[v.Schema] = [
        {
            "if": {"properties": {"exchange": {"const": name}}, "required": ["exchange"]},
            "then": spelt(name),
        }
        for name in names
    ]
    if DEFAULT_EXCHANGE in names:
        conditions.append(
            {"if": {"not": {"required": ["exchange"]}}, "then": spelt(DEFAULT_EXCHANGE)}
        )
    else:
        conditions.append({"required": ["exchange"]})
    return tuple(conditions)


def exchange_rule(ctx: Parts) -> v.Choice:
    """The rule of an ``exchange`` field or parameter (computed once: feeds are fixed)."""
    names = tuple(alert_exchanges(ctx))
    return v.Choice(
        lambda: names, "an exchange with an enabled feed", "the exchange (default binance)"
    )


def price_exchange(ctx: Parts) -> v.Choice:
    """The rule of a price lookup's ``exchange``: any loaded exchange (prices are read-only, and
    a replayed recording may carry any exchange's ticks)."""
    names = tuple(ctx.feeds.names())
    return v.Choice(lambda: names, "a loaded exchange", "the exchange (default binance)")


def exchange_of(ctx: Parts, given: str | None) -> str:
    """The exchange a request names, or the default; a 422 naming ``exchange`` when the default
    has no enabled feed."""
    if given is not None:
        return given
    if DEFAULT_EXCHANGE not in alert_exchanges(ctx):
        raise ValidationFailed(
            f"the default exchange {DEFAULT_EXCHANGE} has no enabled feed; name one of: "
            f"{', '.join(alert_exchanges(ctx)) or '(none)'}",
            field="exchange",
        )
    return DEFAULT_EXCHANGE


def symbol_on(ctx: Parts, exchange: str, text: str) -> str:
    """``text`` spelt the way ``exchange`` spells symbols; a 422 naming ``symbol`` (with the
    exchange's reason) when it cannot be one of its symbols."""
    text = SYMBOL_TEXT.clean(text, "symbol")
    try:
        normal = ctx.feeds.normalise(exchange, text)
    except KeyError:
        raise ValidationFailed(f"{exchange} is not a loaded exchange", field="exchange") from None
    except ValueError as exc:  # the exchange's own words: "'xbt' is not a symbol of kraken: ..."
        raise ValidationFailed(str(exc), field="symbol") from None
    problem = limits.text_problem(normal, limits.SYMBOL_MAX)
    if problem is not None or not normal:
        raise ValidationFailed(f"{text!r} is not a symbol {exchange} can spell", field="symbol")
    return normal


def spellings(ctx: Parts, text: str, exchange: str | None = None) -> list[str]:
    """Every spelling ``text`` has on the exchanges an alert may name (for a filter given no
    exchange: ``sol-usdt`` is ``SOLUSDT`` on Binance and ``SOL-USDT`` on Coinbase), or on
    ``exchange`` alone when given. Empty when no exchange can spell it (no alert can have it); a
    422 naming ``symbol`` only when it is not a symbol's spelling at all."""
    text = SYMBOL_TEXT.clean(text, "symbol")
    found: list[str] = []
    for name in [exchange] if exchange else alert_exchanges(ctx):
        try:
            normal = symbol_on(ctx, name, text)
        except ValidationFailed:
            continue
        if normal not in found:
            found.append(normal)
    return found
