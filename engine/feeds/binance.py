"""Binance spot market streams (built in): one combined-stream connection, live SUBSCRIBE.

Protocol (https://github.com/binance/binance-spot-api-docs, ``web-socket-streams.md``):
connect to ``<base>/stream`` (combined streams), then subscribe live::

    -> {"method": "SUBSCRIBE", "params": ["btcusdt@trade"], "id": 1}
    <- {"result": null, "id": 1}
    <- {"stream": "btcusdt@trade", "data": {"e": "trade", "E": 1672515782136, "s": "BNBBTC",
        "t": 12345, "p": "0.001", "q": "100", "T": 1672515782136, "m": true, "M": true}}

Errors come back as ``{"error": {"code": 2, "msg": "..."}, "id": 1}``. Limits: 5 incoming
messages per second per connection (control frames and pongs count), 1024 streams per
connection, every connection dropped after 24 h, a server ping every 20 s (trio-websocket answers
it), a ``serverShutdown`` event before maintenance.

Symbols: Binance spells them ``BTCUSDT``; an alert may write ``btcusdt``, ``BTC/USDT``,
``BTC-USDT`` or ``btc_usdt``, all normalised to ``BTCUSDT``. Stream names are lower case.

Option ``stream``: ``trade`` (default: every trade, so no crossing is missed between snapshots),
``aggTrade`` (one tick per taker order), or ``bookTicker`` (best bid/ask, real time; the tick
price is the mid, ``(bid + ask) / 2``, exact in Decimal, and carries no exchange time because
Binance sends none). Batched all-market frames (``!miniTicker@arr``) are parsed too: one tick
per element, priced at its last (close) price.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import Decimal
from itertools import count
from typing import ClassVar

import msgspec

from engine.errors import BadFrame, ConfigError, FeedClosed, SubscriptionRejected
from engine.feeds.exchange import Exchange
from engine.hookspecs import hookimpl
from engine.model import Tick

STREAMS = ("trade", "aggTrade", "bookTicker")
_TWO = Decimal(2)


class _Error(msgspec.Struct):
    code: int = 0
    msg: str = ""


class _Envelope(msgspec.Struct):
    """Every frame on a combined-stream connection: a stream event, an ack, or an error."""

    stream: str | None = None
    data: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET
    result: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET  # an ack's result is null
    id: int | str | None = None
    error: _Error | None = None
    code: int | None = None  # the docs also show errors flat: {"code": .., "msg": .., "id": ..}
    msg: str | None = None


class _Trade(msgspec.Struct):  # trade and aggTrade share the fields we read
    s: str
    p: Decimal
    T: int


class _TradeEnvelope(msgspec.Struct):  # the hot frame, decoded in one pass
    stream: str
    data: _Trade


class _BookTicker(msgspec.Struct):
    s: str
    b: Decimal
    a: Decimal


class _MiniTicker(msgspec.Struct):
    s: str
    c: Decimal
    E: int


_envelope = msgspec.json.Decoder(_Envelope)
_trade = msgspec.json.Decoder(_Trade)
_trade_envelope = msgspec.json.Decoder(_TradeEnvelope)
_book_ticker = msgspec.json.Decoder(_BookTicker)
_mini_tickers = msgspec.json.Decoder(list[_MiniTicker])
_encode = msgspec.json.Encoder().encode


def _check_price(price: Decimal, sample: msgspec.Raw) -> Decimal:
    if price.is_finite() and price > 0:
        return price
    raise BadFrame("bad-price", bytes(sample))


def _invalid(exc: msgspec.ValidationError, sample: msgspec.Raw) -> BadFrame:
    text = str(exc)
    kind = "bad-price" if "decimal" in text else "bad-field"
    return BadFrame(kind, f"{text}: {bytes(sample)[:160].decode('utf-8', 'replace')}")


class Binance(Exchange):
    """Binance spot, combined streams, live (un)subscribe."""

    name = "binance"
    url = "wss://stream.binance.com:9443"
    enabled_by_default = True
    options: ClassVar[dict[str, object]] = {"stream": "trade"}

    max_streams_per_connection = 1024
    max_messages_per_second = 4.0  # the limit is 5 and counts our pongs too
    symbols_per_message = 200
    stale_after_s = 120.0  # a quiet symbol's trade stream may say nothing for a minute
    forced_disconnect_after_s = 24 * 3600.0
    handover_lead_s = 300.0

    def __init__(self, config: dict[str, object] | None = None) -> None:
        super().__init__(config)
        stream = self.config["stream"]
        if stream not in STREAMS:
            raise ConfigError(f"[feeds.binance] stream must be one of {STREAMS}, got {stream!r}")
        self.stream = str(stream)
        self._fast_suffix = f"@{self.stream}" if self.stream != "bookTicker" else ""
        self._ids = count(1)
        self._pending: dict[int, tuple[str, ...]] = {}  # request id -> symbols, until answered
        self._kinds: dict[str, Callable[[msgspec.Raw, int], list[Tick]]] = {
            "trade": self._trade,
            "aggTrade": self._trade,
            "bookTicker": self._book_ticker,
            "!miniTicker@arr": self._mini_tickers,
            "!serverShutdown": self._server_shutdown,
        }

    def normalise_symbol(self, symbol: str) -> str:
        """``btc/usdt``, ``BTC-USDT``, ``btc_usdt`` -> ``BTCUSDT``."""
        return symbol.strip().upper().replace("/", "").replace("-", "").replace("_", "")

    def connect_url(self) -> str:
        """``<base>/stream``: a combined-stream connection with no stream yet."""
        return self.base_url.rstrip("/") + "/stream"

    def subscribe_frames(self, symbols: Sequence[str]) -> list[str]:
        """One ``SUBSCRIBE`` per ``symbols_per_message`` symbols, each with a fresh id."""
        return self._requests("SUBSCRIBE", symbols)

    def unsubscribe_frames(self, symbols: Sequence[str]) -> list[str]:
        """One ``UNSUBSCRIBE`` per ``symbols_per_message`` symbols."""
        return self._requests("UNSUBSCRIBE", symbols)

    def _requests(self, method: str, symbols: Sequence[str]) -> list[str]:
        frames = []
        step = self.symbols_per_message
        for start in range(0, len(symbols), step):
            chunk = tuple(symbols[start : start + step])
            request_id = next(self._ids)
            self._pending[request_id] = chunk
            params = [f"{s.lower()}@{self.stream}" for s in chunk]
            frames.append(_encode({"method": method, "params": params, "id": request_id}).decode())
        return frames

    def parse(self, frame: str | bytes, received_ns: int) -> list[Tick]:
        """Ticks from one combined-stream frame; ``[]`` for an ack.

        Raises :class:`BadFrame` (``not-json``, ``unknown-event``, ``bad-price``, ``bad-field``),
        :class:`SubscriptionRejected` for an error reply (with the symbols of that request), and
        :class:`FeedClosed` for ``serverShutdown`` so the runner reconnects at once.
        """
        if self._fast_suffix:  # trade/aggTrade: one decode; anything odd takes the full path
            try:
                hot = _trade_envelope.decode(frame)
            except msgspec.DecodeError:
                pass
            else:
                t = hot.data
                if hot.stream.endswith(self._fast_suffix) and t.p.is_finite() and t.p > 0:
                    return [Tick("binance", t.s, t.p, t.T, received_ns)]
        try:
            env = _envelope.decode(frame)
        except msgspec.ValidationError as exc:
            raise BadFrame("unknown-event", frame) from exc
        except msgspec.DecodeError:
            raise BadFrame("not-json", frame) from None
        stream = env.stream
        if stream is not None and env.data is not msgspec.UNSET:
            kind = stream if stream[0] == "!" else stream[stream.find("@") + 1 :]
            handler = self._kinds.get(kind)
            if handler is None:
                raise BadFrame("unknown-event", frame)
            return handler(env.data, received_ns)
        if env.error is not None or env.code is not None:
            reason = env.error.msg if env.error is not None else (env.msg or "")
            code = env.error.code if env.error is not None else env.code
            symbols = self._pending.pop(env.id, ()) if isinstance(env.id, int) else ()
            raise SubscriptionRejected(f"code {code}: {reason}", symbols)
        if env.result is not msgspec.UNSET:
            if isinstance(env.id, int):
                self._pending.pop(env.id, None)
            return []
        raise BadFrame("unknown-event", frame)

    def _trade(self, data: msgspec.Raw, received_ns: int) -> list[Tick]:
        try:
            t = _trade.decode(data)
        except msgspec.ValidationError as exc:
            raise _invalid(exc, data) from None
        return [Tick("binance", t.s, _check_price(t.p, data), t.T, received_ns)]

    def _book_ticker(self, data: msgspec.Raw, received_ns: int) -> list[Tick]:
        try:
            b = _book_ticker.decode(data)
        except msgspec.ValidationError as exc:
            raise _invalid(exc, data) from None
        mid = (_check_price(b.b, data) + _check_price(b.a, data)) / _TWO
        return [Tick("binance", b.s, mid, 0, received_ns)]

    def _mini_tickers(self, data: msgspec.Raw, received_ns: int) -> list[Tick]:
        try:
            items = _mini_tickers.decode(data)
        except msgspec.ValidationError as exc:
            raise _invalid(exc, data) from None
        return [
            Tick("binance", m.s, m.c, m.E, received_ns)
            for m in items
            if m.c.is_finite() and m.c > 0
        ]

    def _server_shutdown(self, data: msgspec.Raw, received_ns: int) -> list[Tick]:
        raise FeedClosed("binance sent serverShutdown")


@hookimpl
def triggerbook_exchanges() -> list[type[Exchange]]:
    """Binance is built in, registered through the same hook a plugin uses."""
    return [Binance]
