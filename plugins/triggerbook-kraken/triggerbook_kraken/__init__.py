"""Kraken Spot WebSocket API v2: the public ``trade`` or ``ticker`` channel (``wss://ws.kraken.com/v2``).

Pairs are spelt ``BASE/QUOTE`` with v2's asset names (``BTC/USD``, not v1's ``XBT/USD``). Kraken v2
sends prices as JSON numbers; they are read as ``Decimal`` from the number's own digits, never
through a float.

A raw frame from the trade channel, as the Kraken documentation shows it::

    {"channel": "trade", "type": "update", "data": [
        {"symbol": "MATIC/USD", "side": "sell", "price": 0.5117, "qty": 40.0,
         "ord_type": "market", "trade_id": 4665906,
         "timestamp": "2023-09-25T07:49:37.708706Z"}]}

becomes ``Tick("kraken", "MATIC/USD", Decimal("0.5117"), 1695628177708, received_ns)``.

Requests carry the runner's number as ``req_id``; Kraken answers each pair of a request with
its own ack echoing it, so a failed ack is rejected with that ``request_id`` (and its pair when
it names one).

The trade subscription asks for no snapshot: a snapshot is the last 50 trades, history rather
than the current price (a snapshot that arrives anyway gives no ticks). The ticker's snapshot is
the current state and is a tick. Kraken sends a ``heartbeat`` frame about once a second while
subscribed and closes idle connections after about a minute, so the runner also sends
``{"method": "ping"}`` every 30 s.

Symbols: ``btc/usd``, ``BTC-USD``, ``btc_usd``, ``XBT/USD`` and ``BTCUSD`` (a known quote currency
at the end) all normalise to ``BTC/USD``; ``XBT`` becomes ``BTC`` and ``XDG`` becomes ``DOGE``. A
symbol without a quote (``xbt``) is refused: Kraken only trades pairs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from engine.errors import SubscriptionRejected
from engine.feeds.parsing import (
    Handler,
    Message,
    choose_option,
    data_items,
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

__all__ = ["Kraken", "triggerbook_exchanges"]

CHANNELS = ("trade", "ticker")
QUOTES = ("USDT", "USDC", "USD", "EUR", "GBP", "CAD", "JPY", "CHF", "AUD", "BTC", "ETH")
# v1 / REST asset names that v2 spells differently.
ASSET_ALIASES: Mapping[str, str] = {"XBT": "BTC", "XDG": "DOGE"}
_ASSET = "[A-Za-z0-9]{1,12}"
_QUOTE_INPUT = "|".join(any_case(q) for q in QUOTES)


class Kraken(Exchange):
    """The Kraken Spot v2 market-data feed. No I/O: the shared feed runner drives it."""

    name = "kraken"
    url = "wss://ws.kraken.com/v2"
    options: ClassVar[Mapping[str, Any]] = {"channel": "trade"}
    symbol_pattern = "^[A-Z0-9]{1,12}/[A-Z0-9]{1,12}$"
    # BASE/QUOTE with one separator of / - _ : . or a space, or BASEQUOTE with a known quote.
    input_pattern = f"^(?:{_ASSET}[/_:. -]{_ASSET}|{_ASSET}(?:{_QUOTE_INPUT}))$"
    symbol_rule = (
        "a pair BASE/QUOTE such as BTC/USD (BTCUSD and btc-usd work too; a symbol without a "
        "quote currency, such as XBT, names no pair)"
    )

    # Kraken documents no per-connection or per-message pair cap for public channels, only a
    # Cloudflare limit of about 150 connection attempts per 10 minutes per IP; these are
    # conservative.
    max_streams_per_connection = 200
    max_messages_per_second = 5.0
    symbols_per_message = 50
    # A heartbeat frame arrives about every second while subscribed.
    stale_after_s = 10.0
    # "Servers close inactive connections after approximately one minute. Send periodic
    # requests like ping to maintain connectivity."
    heartbeat_interval_s = 30.0

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        super().__init__(config)
        self.channel: str = choose_option(self.name, "channel", self.config["channel"], CHANNELS)

    def spell_symbol(self, symbol: str) -> str:
        """``BASE/QUOTE`` in upper case with v2 asset names; see the module docstring."""
        return "/".join(ASSET_ALIASES.get(p, p) for p in split_symbol(symbol, QUOTES))

    def subscribe_request(self, symbols: Sequence[str], request_id: int) -> list[str]:
        """``subscribe`` requests of at most ``symbols_per_message`` pairs with ``"req_id"``:
        Kraken echoes it in every ack of the request, a failed one included."""
        return self._requests("subscribe", symbols, request_id)

    def unsubscribe_request(self, symbols: Sequence[str], request_id: int) -> list[str]:
        """``unsubscribe`` requests with ``req_id``, as :meth:`subscribe_request`."""
        return self._requests("unsubscribe", symbols, request_id)

    def subscribe_frames(self, symbols: Sequence[str]) -> list[str]:
        """``subscribe`` requests of at most ``symbols_per_message`` pairs, without a req_id."""
        return self._requests("subscribe", symbols, None)

    def unsubscribe_frames(self, symbols: Sequence[str]) -> list[str]:
        """``unsubscribe`` requests of at most ``symbols_per_message`` pairs, without a req_id."""
        return self._requests("unsubscribe", symbols, None)

    def _requests(self, method: str, symbols: Sequence[str], request_id: int | None) -> list[str]:
        frames = []
        step = self.symbols_per_message
        for start in range(0, len(symbols), step):
            params: dict[str, Any] = {
                "channel": self.channel,
                "symbol": list(symbols[start : start + step]),
            }
            if method == "subscribe" and self.channel == "trade":
                params["snapshot"] = False
            body: dict[str, Any] = {"method": method, "params": params}
            if request_id is not None:
                body["req_id"] = request_id
            frames.append(encode_json(body))
        return frames

    def heartbeat_frame(self) -> str:
        """Kraken's application-level ping; the server answers ``{"method": "pong"}``."""
        return '{"method":"ping"}'

    def parse(self, frame: str | bytes, received_ns: int) -> list[Tick]:
        """Ticks from a ``trade`` or ``ticker`` frame; ``[]`` for heartbeats, status, pongs and
        successful acks.

        Raises :class:`BadFrame` (``not-json``, ``unknown-event``, ``bad-shape``, ``bad-price``)
        and :class:`SubscriptionRejected` for an ack with ``"success": false``.
        """
        msg = decode_object(frame)
        # Data frames name a "channel", replies to requests a "method".
        key = msg.get("channel") or msg.get("method")
        return handler_for(_HANDLERS, key, frame)(self, msg, frame, received_ns)

    def _trade(self, msg: Message, frame: str | bytes, received_ns: int) -> list[Tick]:
        if msg.get("type") == "snapshot":  # the last 50 trades: history, not the price now
            return []
        return self._ticks(msg, "price", frame, received_ns)

    def _ticker(self, msg: Message, frame: str | bytes, received_ns: int) -> list[Tick]:
        return self._ticks(msg, "last", frame, received_ns)

    def _ticks(self, msg: Message, field: str, frame: str | bytes, received_ns: int) -> list[Tick]:
        ticks = []
        for item in data_items(msg, "symbol", frame):
            stamp = item.get("timestamp")
            exchange_ms = iso_ms(stamp, frame) if stamp is not None else 0
            price = exact_price(item.get(field), frame)
            ticks.append(Tick(self.name, item["symbol"], price, exchange_ms, received_ns))
        return ticks

    def _ack(self, msg: Message, frame: str | bytes, received_ns: int) -> list[Tick]:
        # {"method": "subscribe", "success": false, "error": "Currency pair not supported
        # FOO/USD", "symbol": "FOO/USD", "req_id": 69, ...}
        if msg.get("success") is not False:
            return []
        result = msg.get("result")
        symbol = msg.get("symbol") or (result.get("symbol") if isinstance(result, dict) else None)
        symbols = (symbol,) if isinstance(symbol, str) else ()
        req_id = msg.get("req_id")
        request_id = req_id if isinstance(req_id, int) and not isinstance(req_id, bool) else None
        raise SubscriptionRejected(str(msg.get("error") or "request failed"), symbols, request_id)


_HANDLERS: Mapping[str, Handler[Kraken]] = {
    "trade": Kraken._trade,
    "ticker": Kraken._ticker,
    "heartbeat": no_ticks,
    "status": no_ticks,
    "pong": no_ticks,
    "subscribe": Kraken._ack,
    "unsubscribe": Kraken._ack,
}


@hookimpl
def triggerbook_exchanges() -> Sequence[type[Exchange]]:
    """The exchanges this plugin provides."""
    return [Kraken]
