"""Finnhub real-time trades (``wss://ws.finnhub.io?token=...``): US stocks, forex and crypto.

This is the example of a non-crypto feed: an operator adds it with ``pip install`` and a
``[feeds.finnhub]`` table holding an API token (or ``TRIGGERBOOK_FEEDS_FINNHUB_TOKEN``); alerts then
name ``exchange = "finnhub"`` and a Finnhub symbol such as ``AAPL``.

The token goes into the connect URL, as Finnhub asks. One ``subscribe`` frame per symbol. Finnhub
sends trades in batches, pings with ``{"type": "ping"}`` (a control frame) and reports errors as
``{"type": "error", "msg": ...}``.

A raw trade frame, as the Finnhub "Trades - Last Price Updates" documentation shows it::

    {"data": [{"p": 7296.89, "s": "BINANCE:BTCUSDT", "t": 1575526691134, "v": 0.011467}],
     "type": "trade"}

becomes ``Tick("finnhub", "BINANCE:BTCUSDT", Decimal("7296.89"), 1575526691134, received_ns)``:
the price is a JSON number, read as ``Decimal`` from its own digits, never through a float.

Symbols are Finnhub's, as given and upper-cased: ``aapl`` -> ``AAPL``, ``binance:btcusdt`` ->
``BINANCE:BTCUSDT``, ``oanda:eur_usd`` -> ``OANDA:EUR_USD``, ``brk.b`` -> ``BRK.B``: an optional
``VENUE:`` prefix (``IC MARKETS:1`` has a space), then letters, digits and ``. _ -``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from engine.errors import ConfigError, SubscriptionRejected
from engine.feeds.parsing import (
    Handler,
    Message,
    data_items,
    decode_object,
    encode_json,
    epoch_ms,
    exact_price,
    handler_for,
    no_ticks,
)
from engine.model import Tick
from engine.plugins import Exchange, hookimpl

__all__ = ["Finnhub", "triggerbook_exchanges"]


class Finnhub(Exchange):
    """Finnhub's trades WebSocket. No I/O: the shared feed runner drives it."""

    name = "finnhub"
    url = "wss://ws.finnhub.io"
    options: ClassVar[Mapping[str, Any]] = {"token": ""}
    symbol_pattern = "^(?:[A-Z0-9](?:[A-Z0-9 ]{0,13}[A-Z0-9])?:)?[A-Z0-9][A-Z0-9._-]{0,15}$"
    input_pattern = (
        "^(?:[A-Za-z0-9](?:[A-Za-z0-9 ]{0,13}[A-Za-z0-9])?:)?[A-Za-z0-9][A-Za-z0-9._-]{0,15}$"
    )
    symbol_rule = (
        "Finnhub's symbol: a ticker such as AAPL or BRK.B, or VENUE:SYMBOL such as "
        "BINANCE:BTCUSDT or OANDA:EUR_USD"
    )

    # Finnhub's free plan streams up to 50 symbols per connection, one symbol per subscribe
    # message; its API limit is 30 calls a second, of which this uses a third.
    max_streams_per_connection = 50
    max_messages_per_second = 10.0
    symbols_per_message = 1
    # Finnhub pings an idle connection (the interval is undocumented), so a frame arrives even
    # while markets are closed; two minutes of silence is a dead connection.
    stale_after_s = 120.0

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        super().__init__(config)
        self.token: str = str(self.config["token"])
        if self.config.get("enabled") and not self.token:
            raise ConfigError(
                "[feeds.finnhub] token is empty: set it in the configuration file or in "
                "TRIGGERBOOK_FEEDS_FINNHUB_TOKEN (a free key from finnhub.io)"
            )

    def spell_symbol(self, symbol: str) -> str:
        """Finnhub's symbol as given, upper-cased (``aapl`` -> ``AAPL``)."""
        return symbol.upper()

    def connect_url(self) -> str:
        """The configured URL with ``token`` added to its query (Finnhub authenticates so)."""
        parts = urlsplit(self.base_url)
        query = [(k, v) for k, v in parse_qsl(parts.query) if k != "token"]
        query.append(("token", self.token))
        return urlunsplit(parts._replace(query=urlencode(query)))

    # Finnhub's requests carry no id and its error replies name neither a request nor a symbol
    # (``{"type": "error", "msg": "Subscribing to too many symbols"}``), so the default
    # ``subscribe_request`` (these frames, unnumbered) is kept.

    def subscribe_frames(self, symbols: Sequence[str]) -> list[str]:
        """One ``{"type": "subscribe", "symbol": ...}`` per symbol."""
        return [encode_json({"type": "subscribe", "symbol": s}) for s in symbols]

    def unsubscribe_frames(self, symbols: Sequence[str]) -> list[str]:
        """One ``{"type": "unsubscribe", "symbol": ...}`` per symbol."""
        return [encode_json({"type": "unsubscribe", "symbol": s}) for s in symbols]

    def parse(self, frame: str | bytes, received_ns: int) -> list[Tick]:
        """Ticks from a ``trade`` frame; ``[]`` for ``ping``.

        Raises :class:`BadFrame` (``not-json``, ``unknown-event``, ``bad-shape``, ``bad-price``)
        and :class:`SubscriptionRejected` for an ``error`` frame.
        """
        msg = decode_object(frame)
        return handler_for(_HANDLERS, msg.get("type"), frame)(self, msg, frame, received_ns)

    def _trades(self, msg: Message, frame: str | bytes, received_ns: int) -> list[Tick]:
        ticks = []
        for item in data_items(msg, "s", frame):
            # "t" is Unix milliseconds; a trade without it has no exchange time (0).
            stamp = epoch_ms(item.get("t", 0), frame)
            price = exact_price(item.get("p"), frame)
            ticks.append(Tick(self.name, item["s"], price, stamp, received_ns))
        return ticks

    def _error(self, msg: Message, frame: str | bytes, received_ns: int) -> list[Tick]:
        # {"type": "error", "msg": "Subscribing to too many symbols"}; Finnhub names no symbol.
        raise SubscriptionRejected(str(msg.get("msg") or "error"))


_HANDLERS: Mapping[str, Handler[Finnhub]] = {
    "trade": Finnhub._trades,
    "ping": no_ticks,
    "error": Finnhub._error,
}


@hookimpl
def triggerbook_exchanges() -> Sequence[type[Exchange]]:
    """The exchanges this plugin provides."""
    return [Finnhub]
