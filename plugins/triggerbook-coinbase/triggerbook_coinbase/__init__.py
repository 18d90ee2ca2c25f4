"""Coinbase Exchange: the public WebSocket feed (``wss://ws-feed.exchange.coinbase.com``).

Products are spelt ``BASE-QUOTE`` (``BTC-USD``). The feed subscribes the configured channel,
``matches`` (every trade, the default, so no crossing is missed) or ``ticker`` (one message per
match cascade, with the best bid and ask), together with ``heartbeat``: Coinbase sends one
heartbeat per product per second, which keeps a quiet product from looking stale.

A raw frame from the matches channel, as the Coinbase Exchange WebSocket documentation shows it::

    {"type": "match", "trade_id": 10, "sequence": 50,
     "maker_order_id": "ac928c66-ca53-498f-9c13-a110027a60e8",
     "taker_order_id": "132fb6ae-456b-4654-b4e0-d681ac05cea1",
     "time": "2014-11-07T08:19:27.028459Z", "product_id": "BTC-USD",
     "size": "5.23512", "price": "400.23", "side": "sell"}

becomes ``Tick("coinbase", "BTC-USD", Decimal("400.23"), 1415348367028, received_ns)``.

Symbols: ``btc-usd``, ``BTC/USD``, ``btc_usd``, ``btc usd`` and ``BTCUSD`` (a known quote currency
at the end) all normalise to ``BTC-USD``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar

import msgspec

from engine.errors import BadFrame, ConfigError, SubscriptionRejected
from engine.feeds.exchange import Exchange
from engine.hookspecs import hookimpl
from engine.model import Tick

__all__ = ["Coinbase", "triggerbook_exchanges"]

CHANNELS = ("matches", "ticker")
# Quote currencies recognised at the end of an unseparated symbol (``BTCUSD``), longest first.
QUOTES = ("USDT", "USDC", "EUR", "GBP", "USD", "DAI", "BTC", "ETH")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
_SEPARATORS = re.compile(r"[\s/_:.-]+")
_PRODUCT = re.compile(r"\b[A-Z0-9]{2,12}-[A-Z0-9]{2,12}\b")
_decode = msgspec.json.Decoder(float_hook=Decimal).decode
_encode = msgspec.json.encode

Message = dict[str, Any]


class Coinbase(Exchange):
    """The Coinbase Exchange market-data feed. No I/O: the shared feed runner drives it."""

    name = "coinbase"
    url = "wss://ws-feed.exchange.coinbase.com"
    options: ClassVar[Mapping[str, Any]] = {"channel": "matches"}

    # Coinbase Exchange "WebSocket rate limits": 8 requests per second per IP (bursts of 20),
    # 100 client messages per second. No per-connection product cap is documented; the best
    # practices page asks to spread busy products over connections, hence a modest 100.
    max_streams_per_connection = 100
    max_messages_per_second = 8.0
    symbols_per_message = 100
    # The heartbeat channel sends a frame per product every second while subscribed.
    stale_after_s = 15.0

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        super().__init__(config)
        channel = self.config["channel"]
        if channel not in CHANNELS:
            raise ConfigError(
                f"[feeds.coinbase] channel must be one of {', '.join(CHANNELS)}, got {channel!r}"
            )
        self.channel: str = channel

    def normalise_symbol(self, symbol: str) -> str:
        """``BASE-QUOTE`` in upper case; see the module docstring for accepted spellings."""
        parts = [p for p in _SEPARATORS.split(symbol.strip().upper()) if p]
        if len(parts) == 1:
            parts = _split_quote(parts[0])
        return "-".join(parts)

    def subscribe_frames(self, symbols: Sequence[str]) -> list[str]:
        """One ``subscribe`` of the configured channel plus ``heartbeat`` for ``symbols``."""
        return [self._request("subscribe", symbols)]

    def unsubscribe_frames(self, symbols: Sequence[str]) -> list[str]:
        """One ``unsubscribe`` of both channels for ``symbols``."""
        return [self._request("unsubscribe", symbols)]

    def _request(self, kind: str, symbols: Sequence[str]) -> str:
        body = {"type": kind, "product_ids": list(symbols), "channels": [self.channel, "heartbeat"]}
        return _encode(body).decode()

    def parse(self, frame: str | bytes, received_ns: int) -> list[Tick]:
        """Ticks from a ``match``/``last_match``/``ticker`` frame; ``[]`` for control frames.

        Raises :class:`BadFrame` (``not-json``, ``unknown-event``, ``bad-shape``,
        ``bad-price``) and :class:`SubscriptionRejected` for an ``error`` frame.
        """
        try:
            msg = _decode(frame)
        except msgspec.DecodeError:
            raise BadFrame("not-json", frame) from None
        if not isinstance(msg, dict):
            raise BadFrame("unknown-event", frame)
        key = msg.get("type")
        handler = _HANDLERS.get(key) if isinstance(key, str) else None
        if handler is None:
            raise BadFrame("unknown-event", frame)
        return handler(self, msg, frame, received_ns)

    def _trade(self, msg: Message, frame: str | bytes, received_ns: int) -> list[Tick]:
        # ``match``, ``ticker`` and ``last_match`` (the product's latest trade, sent once on
        # subscribing to matches: the current price) all carry product_id, price and time.
        symbol = msg.get("product_id")
        if not isinstance(symbol, str) or not symbol:
            raise BadFrame("bad-shape", frame)
        time = msg.get("time")
        exchange_ms = _iso_ms(time, frame) if time is not None else 0
        return [Tick(self.name, symbol, _price(msg.get("price"), frame), exchange_ms, received_ns)]

    def _control(self, msg: Message, frame: str | bytes, received_ns: int) -> list[Tick]:
        return []

    def _error(self, msg: Message, frame: str | bytes, received_ns: int) -> list[Tick]:
        # {"type": "error", "message": "Failed to subscribe", "reason": "FOO-BAR is not a valid
        # product"}: the products named in the reason are the rejected ones.
        reason = " ".join(str(msg[k]) for k in ("message", "reason") if msg.get(k))
        raise SubscriptionRejected(reason or "error", tuple(_PRODUCT.findall(reason)))


Handler = Callable[[Coinbase, Message, "str | bytes", int], list[Tick]]

_HANDLERS: Mapping[str, Handler] = {
    "match": Coinbase._trade,
    "last_match": Coinbase._trade,
    "ticker": Coinbase._trade,
    "subscriptions": Coinbase._control,
    "heartbeat": Coinbase._control,
    "error": Coinbase._error,
}


def _split_quote(symbol: str) -> list[str]:
    for quote in QUOTES:
        if symbol.endswith(quote) and len(symbol) > len(quote):
            return [symbol[: -len(quote)], quote]
    return [symbol]


def _price(value: object, frame: str | bytes) -> Decimal:
    """The exact price of a decimal string (or JSON number); ``bad-price`` unless finite > 0."""
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise BadFrame("bad-price", frame)
    try:
        price = Decimal(value)
    except InvalidOperation:
        raise BadFrame("bad-price", frame) from None
    if not price.is_finite() or price <= 0:
        raise BadFrame("bad-price", frame)
    return price


def _iso_ms(value: object, frame: str | bytes) -> int:
    """Milliseconds since the epoch of an RFC 3339 time (``2014-11-07T08:19:27.028459Z``)."""
    if not isinstance(value, str):
        raise BadFrame("bad-shape", frame)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise BadFrame("bad-shape", frame) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // _MS


@hookimpl
def triggerbook_exchanges() -> Sequence[type[Exchange]]:
    """The exchanges this plugin provides."""
    return [Coinbase]
