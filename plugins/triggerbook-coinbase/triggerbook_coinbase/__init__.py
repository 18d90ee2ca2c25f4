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
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from engine.errors import BadFrame, SubscriptionRejected
from engine.feeds.parsing import (
    Handler,
    Message,
    choose_option,
    decode_object,
    encode_json,
    exact_price,
    handler_for,
    iso_ms,
    no_ticks,
    split_symbol,
)
from engine.model import Tick
from engine.plugins import Exchange, any_case, hookimpl

__all__ = ["Coinbase", "triggerbook_exchanges"]

CHANNELS = ("matches", "ticker")
# Quote currencies recognised at the end of an unseparated symbol (``BTCUSD``), longest first.
QUOTES = ("USDT", "USDC", "EUR", "GBP", "USD", "DAI", "BTC", "ETH")

_PRODUCT = re.compile(r"\b[A-Z0-9]{2,12}-[A-Z0-9]{2,12}\b")
_ASSET = "[A-Za-z0-9]{2,12}"
_QUOTE_INPUT = "|".join(any_case(q) for q in QUOTES)


class Coinbase(Exchange):
    """The Coinbase Exchange market-data feed. No I/O: the shared feed runner drives it."""

    name = "coinbase"
    url = "wss://ws-feed.exchange.coinbase.com"
    options: ClassVar[Mapping[str, Any]] = {"channel": "matches"}
    symbol_pattern = "^[A-Z0-9]{2,12}-[A-Z0-9]{2,12}$"
    # BASE-QUOTE with one separator of - / _ : . or a space, or BASEQUOTE with a known quote.
    input_pattern = f"^(?:{_ASSET}[/_:. -]{_ASSET}|{_ASSET}(?:{_QUOTE_INPUT}))$"
    symbol_rule = "a product BASE-QUOTE such as BTC-USD (BTCUSD and btc/usd work too)"

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
        self.channel: str = choose_option(self.name, "channel", self.config["channel"], CHANNELS)

    def spell_symbol(self, symbol: str) -> str:
        """``BASE-QUOTE`` in upper case; see the module docstring for accepted spellings."""
        return "-".join(split_symbol(symbol, QUOTES))

    # Coinbase's requests carry no id and its error replies echo none, so the default
    # ``subscribe_request`` (these frames, unnumbered) is kept; an error names its products in
    # ``reason`` when it names any.

    def subscribe_frames(self, symbols: Sequence[str]) -> list[str]:
        """A ``subscribe`` of the configured channel plus ``heartbeat`` per
        ``symbols_per_message`` products."""
        return self._requests("subscribe", symbols)

    def unsubscribe_frames(self, symbols: Sequence[str]) -> list[str]:
        """An ``unsubscribe`` of both channels per ``symbols_per_message`` products."""
        return self._requests("unsubscribe", symbols)

    def _requests(self, kind: str, symbols: Sequence[str]) -> list[str]:
        channels = [self.channel, "heartbeat"]
        step = self.symbols_per_message
        return [
            encode_json(
                {"type": kind, "product_ids": list(symbols[i : i + step]), "channels": channels}
            )
            for i in range(0, len(symbols), step)
        ]

    def parse(self, frame: str | bytes, received_ns: int) -> list[Tick]:
        """Ticks from a ``match``/``last_match``/``ticker`` frame; ``[]`` for control frames.

        Raises :class:`BadFrame` (``not-json``, ``unknown-event``, ``bad-shape``,
        ``bad-price``) and :class:`SubscriptionRejected` for an ``error`` frame.
        """
        msg = decode_object(frame)
        return handler_for(_HANDLERS, msg.get("type"), frame)(self, msg, frame, received_ns)

    def _trade(self, msg: Message, frame: str | bytes, received_ns: int) -> list[Tick]:
        # ``match``, ``ticker`` and ``last_match`` (the product's latest trade, sent once on
        # subscribing to matches: the current price) all carry product_id, price and time.
        symbol = msg.get("product_id")
        if not isinstance(symbol, str) or not symbol:
            raise BadFrame("bad-shape", frame)
        time = msg.get("time")
        exchange_ms = iso_ms(time, frame) if time is not None else 0
        price = exact_price(msg.get("price"), frame)
        return [Tick(self.name, symbol, price, exchange_ms, received_ns)]

    def _error(self, msg: Message, frame: str | bytes, received_ns: int) -> list[Tick]:
        # {"type": "error", "message": "Failed to subscribe", "reason": "FOO-BAR is not a valid
        # product"}: the products named in the reason are the rejected ones.
        reason = " ".join(str(msg[k]) for k in ("message", "reason") if msg.get(k))
        raise SubscriptionRejected(reason or "error", tuple(_PRODUCT.findall(reason)))


_HANDLERS: Mapping[str, Handler[Coinbase]] = {
    "match": Coinbase._trade,
    "last_match": Coinbase._trade,
    "ticker": Coinbase._trade,
    "subscriptions": no_ticks,
    "heartbeat": no_ticks,
    "error": Coinbase._error,
}


@hookimpl
def triggerbook_exchanges() -> Sequence[type[Exchange]]:
    """The exchanges this plugin provides."""
    return [Coinbase]
