"""OKX API v5: the public ``trades`` or ``tickers`` channel (``wss://ws.okx.com:8443/ws/v5/public``).

Instruments are spelt ``BASE-QUOTE`` (``BTC-USDT``; derivatives keep their suffix,
``BTC-USDT-SWAP``). Prices are decimal strings.

A raw frame from the trades channel, as the OKX v5 documentation shows it::

    {"arg": {"channel": "trades", "instId": "BTC-USDT"},
     "data": [{"instId": "BTC-USDT", "tradeId": "130639474", "px": "42219.9",
               "sz": "0.12060306", "side": "buy", "ts": "1630048897897", "count": "3",
               "source": "0", "seqId": 1234}]}

becomes ``Tick("okx", "BTC-USDT", Decimal("42219.9"), 1630048897897, received_ns)``.

Heartbeat: OKX drops a connection that has pushed nothing for 30 s; the client sends the text
``ping`` when it has received nothing for N < 30 s and expects the text ``pong``. The runner sends
``ping`` every 20 s, so even a quiet instrument answers within the staleness limit.

A ``notice`` (code 64008: the connection closes for a service upgrade in 60 s) is a control frame;
the runner reconnects when the server closes.

Symbols: ``btc-usdt``, ``BTC/USDT``, ``btc_usdt`` and ``BTCUSDT`` (a known quote currency at the
end) all normalise to ``BTC-USDT``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar

import msgspec

from engine.errors import BadFrame, ConfigError, SubscriptionRejected
from engine.feeds.exchange import Exchange
from engine.hookspecs import hookimpl
from engine.model import Tick

__all__ = ["Okx", "triggerbook_exchanges"]

CHANNELS = ("trades", "tickers")
QUOTES = ("USDT", "USDC", "USD", "EUR", "BTC", "ETH", "OKB", "DAI")

_PONG = frozenset({"pong", b"pong"})
_SEPARATORS = re.compile(r"[\s/_:.-]+")
# "instId:FOO-USDT" (60018) or "instId" : "LTC-USD-200327" (60012) inside an error message.
_INST_ID = re.compile(r"instId\W{0,6}([A-Za-z0-9]+(?:-[A-Za-z0-9]+)+)")
_decode = msgspec.json.Decoder(float_hook=Decimal).decode
_encode = msgspec.json.encode

Message = dict[str, Any]


class Okx(Exchange):
    """The OKX v5 public market-data feed. No I/O: the shared feed runner drives it."""

    name = "okx"
    url = "wss://ws.okx.com:8443/ws/v5/public"
    options: ClassVar[Mapping[str, Any]] = {"channel": "trades"}

    # OKX v5 "WebSocket / Connect": 480 subscribe/unsubscribe/login requests per connection
    # per hour; the channels of one request must total under 64 KB (100 args is ~5 KB). No
    # per-connection cap on public subscriptions is documented.
    max_streams_per_connection = 200
    max_messages_per_second = 480 / 3600
    symbols_per_message = 100
    # "ping" every 20 s is answered by "pong", so silence past 45 s means a dead connection.
    stale_after_s = 45.0
    heartbeat_interval_s = 20.0

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        super().__init__(config)
        channel = self.config["channel"]
        if channel not in CHANNELS:
            raise ConfigError(
                f"[feeds.okx] channel must be one of {', '.join(CHANNELS)}, got {channel!r}"
            )
        self.channel: str = channel

    def normalise_symbol(self, symbol: str) -> str:
        """``BASE-QUOTE[-SUFFIX]`` in upper case; see the module docstring."""
        parts = [p for p in _SEPARATORS.split(symbol.strip().upper()) if p]
        if len(parts) == 1:
            parts = _split_quote(parts[0])
        return "-".join(parts)

    def subscribe_frames(self, symbols: Sequence[str]) -> list[str]:
        """One ``subscribe`` op with one ``{channel, instId}`` argument per symbol."""
        return [self._request("subscribe", symbols)]

    def unsubscribe_frames(self, symbols: Sequence[str]) -> list[str]:
        """One ``unsubscribe`` op with one argument per symbol."""
        return [self._request("unsubscribe", symbols)]

    def _request(self, op: str, symbols: Sequence[str]) -> str:
        args = [{"channel": self.channel, "instId": s} for s in symbols]
        return _encode({"op": op, "args": args}).decode()

    def heartbeat_frame(self) -> str:
        """OKX's application-level ping: the bare text ``ping``."""
        return "ping"

    def parse(self, frame: str | bytes, received_ns: int) -> list[Tick]:
        """Ticks from a ``trades``/``tickers`` push; ``[]`` for ``pong``, acks and notices.

        Raises :class:`BadFrame` (``not-json``, ``unknown-event``, ``bad-shape``, ``bad-price``)
        and :class:`SubscriptionRejected` for an ``error`` event.
        """
        if frame in _PONG:
            return []
        try:
            msg = _decode(frame)
        except msgspec.DecodeError:
            raise BadFrame("not-json", frame) from None
        if not isinstance(msg, dict):
            raise BadFrame("unknown-event", frame)
        # Replies name an "event"; pushes name their channel in "arg".
        arg = msg.get("arg")
        key = msg.get("event") or (arg.get("channel") if isinstance(arg, dict) else None)
        handler = _HANDLERS.get(key) if isinstance(key, str) else None
        if handler is None:
            raise BadFrame("unknown-event", frame)
        return handler(self, msg, frame, received_ns)

    def _push(self, msg: Message, frame: str | bytes, received_ns: int) -> list[Tick]:
        data = msg.get("data")
        if not isinstance(data, list):
            raise BadFrame("bad-shape", frame)
        # trades carry the trade price in "px", tickers the last trade price in "last".
        field = "px" if msg["arg"]["channel"] == "trades" else "last"
        ticks = []
        for item in data:
            if not isinstance(item, dict) or not isinstance(item.get("instId"), str):
                raise BadFrame("bad-shape", frame)
            price = _price(item.get(field), frame)
            ticks.append(
                Tick(self.name, item["instId"], price, _ms(item.get("ts"), frame), received_ns)
            )
        return ticks

    def _control(self, msg: Message, frame: str | bytes, received_ns: int) -> list[Tick]:
        return []

    def _error(self, msg: Message, frame: str | bytes, received_ns: int) -> list[Tick]:
        # {"event": "error", "code": "60018", "msg": "Wrong URL or channel:trades,instId:FOO-USDT
        # doesn't exist. ...", "connId": "a4d3ae55"}
        text = str(msg.get("msg") or "")
        reason = f"{msg.get('code', '')} {text}".strip() or "error"
        raise SubscriptionRejected(reason, tuple(_INST_ID.findall(text)))


Handler = Callable[[Okx, Message, "str | bytes", int], list[Tick]]

_HANDLERS: Mapping[str, Handler] = {
    "trades": Okx._push,
    "tickers": Okx._push,
    "subscribe": Okx._control,
    "unsubscribe": Okx._control,
    "notice": Okx._control,
    "channel-conn-count": Okx._control,
    "error": Okx._error,
    "channel-conn-count-error": Okx._error,
}


def _split_quote(symbol: str) -> list[str]:
    for quote in QUOTES:
        if symbol.endswith(quote) and len(symbol) > len(quote):
            return [symbol[: -len(quote)], quote]
    return [symbol]


def _price(value: object, frame: str | bytes) -> Decimal:
    """The exact price of a decimal string; ``bad-price`` unless finite and > 0."""
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise BadFrame("bad-price", frame)
    try:
        price = Decimal(value)
    except InvalidOperation:
        raise BadFrame("bad-price", frame) from None
    if not price.is_finite() or price <= 0:
        raise BadFrame("bad-price", frame)
    return price


def _ms(value: object, frame: str | bytes) -> int:
    """OKX's ``ts``: Unix milliseconds as a string (or number); 0 when absent."""
    if value is None:
        return 0
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isdigit() and value.isascii():
        return int(value)
    raise BadFrame("bad-shape", frame)


@hookimpl
def triggerbook_exchanges() -> Sequence[type[Exchange]]:
    """The exchanges this plugin provides."""
    return [Okx]
