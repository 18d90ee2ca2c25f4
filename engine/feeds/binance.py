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

Symbols: Binance spells them ``BTCUSDT`` (2 to 20 letters and digits); an alert may write
``btcusdt``, ``BTC/USDT``, ``BTC-USDT`` or ``btc_usdt``, all normalised to ``BTCUSDT``. Stream names
are lower case.

REST (``rest-api.md``; base URL option ``rest_url``, empty for none, and the default is only used
while ``url`` is Binance's own): the traded symbols are
``GET /api/v3/exchangeInfo`` (``symbolStatus=TRADING``, ``showPermissionSets=false`` to keep the
body small; every symbol whose ``status`` is ``TRADING`` is kept), fetched again every
``symbols_refresh_s``; one symbol's last price is ``GET /api/v3/ticker/price?symbol=BTCUSDT`` ->
``{"symbol": "BTCUSDT", "price": "..."}``.

Option ``stream``: ``trade`` (default: every trade, so no crossing is missed between snapshots),
``aggTrade`` (one tick per taker order), or ``bookTicker`` (best bid/ask, real time; the tick
price is the mid, ``(bid + ask) / 2``, exact in Decimal, and carries no exchange time because
Binance sends none). Batched all-market frames (``!miniTicker@arr``) are parsed too: one tick
per element, priced at its last (close) price.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from decimal import Decimal
from itertools import count
from typing import ClassVar
from urllib.parse import quote, urlsplit

import msgspec

from engine.errors import BadFrame, ConfigError, FeedClosed, SubscriptionRejected
from engine.model import Tick
from engine.plugins import Exchange, hookimpl

STREAMS = ("trade", "aggTrade", "bookTicker")
DEFAULT_REST_URL = "https://api.binance.com"
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


class _SymbolInfo(msgspec.Struct):
    symbol: str
    status: str


class _ExchangeInfo(msgspec.Struct):  # only the fields read; the rest is skipped unparsed
    symbols: list[_SymbolInfo]


class _TickerPrice(msgspec.Struct):
    symbol: str
    price: Decimal


_exchange_info = msgspec.json.Decoder(_ExchangeInfo)
_ticker_price = msgspec.json.Decoder(_TickerPrice)
_envelope = msgspec.json.Decoder(_Envelope)
_trade = msgspec.json.Decoder(_Trade)
_trade_envelope = msgspec.json.Decoder(_TradeEnvelope)
_book_ticker = msgspec.json.Decoder(_BookTicker)
_mini_tickers = msgspec.json.Decoder(list[_MiniTicker])
_encode = msgspec.json.Encoder().encode


def _fullmatch(pattern: str, text: str) -> bool:
    return re.fullmatch(pattern, text) is not None


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
    options: ClassVar[dict[str, object]] = {
        "stream": "trade",
        "rest_url": DEFAULT_REST_URL,
        "symbols_refresh_s": 3600.0,
    }
    symbol_pattern = "^[A-Z0-9]{2,20}$"
    # BTCUSDT in any case, or BASE and QUOTE with one separator (btc/usdt, BTC-USDT, btc_usdt).
    input_pattern = "^(?:[A-Za-z0-9]{2,20}|[A-Za-z0-9]{1,12}[/_-][A-Za-z0-9]{1,8})$"
    symbol_rule = "2 to 20 letters and digits, such as BTCUSDT (btc/usdt is spelt BTCUSDT)"

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
        rest = str(self.config["rest_url"]).rstrip("/")
        if rest == DEFAULT_REST_URL and self.base_url.rstrip("/") != self.url:
            # A feed pointed elsewhere (a test server, the testnet) takes no symbol list or price
            # from the real exchange unless ``rest_url`` names one: they would disagree.
            rest = ""
        if rest and (urlsplit(rest).scheme not in ("http", "https") or not urlsplit(rest).netloc):
            raise ConfigError(f"[feeds.binance] rest_url must be an http(s) URL, got {rest!r}")
        self.rest_url = rest
        self._fast_suffix = f"@{self.stream}" if self.stream != "bookTicker" else ""
        self._ids = count(1)
        # subscribe_frames' own ids -> their symbols, until answered (the runner's numbered
        # requests need none: it keeps its own map)
        self._pending: dict[int, tuple[str, ...]] = {}
        self._kinds: dict[str, Callable[[msgspec.Raw, int], list[Tick]]] = {
            "trade": self._trade,
            "aggTrade": self._trade,
            "bookTicker": self._book_ticker,
            "!miniTicker@arr": self._mini_tickers,
            "!serverShutdown": self._server_shutdown,
        }

    def spell_symbol(self, symbol: str) -> str:
        """``btc/usdt``, ``BTC-USDT``, ``btc_usdt`` -> ``BTCUSDT``."""
        return symbol.upper().replace("/", "").replace("-", "").replace("_", "")

    def symbols_url(self) -> str | None:
        """``exchangeInfo`` of the symbols trading now, or None without a ``rest_url``."""
        if not self.rest_url:
            return None
        return f"{self.rest_url}/api/v3/exchangeInfo?symbolStatus=TRADING&showPermissionSets=false"

    def parse_symbols(self, body: bytes) -> frozenset[str]:
        """Every ``symbols[].symbol`` whose ``status`` is ``TRADING`` and that Binance's spelling
        allows (a symbol outside it could not be subscribed here anyway).

        Raises ``ValueError`` for a body that is not such a document, or lists nothing trading.
        """
        try:
            info = _exchange_info.decode(body)
        except msgspec.DecodeError as exc:  # ValidationError included
            raise ValueError(f"not an exchangeInfo document: {exc}") from None
        spelt = self.symbol_pattern
        listed = frozenset(
            s.symbol
            for s in info.symbols
            if s.status == "TRADING" and len(s.symbol) <= 20 and _fullmatch(spelt, s.symbol)
        )
        if not listed:
            raise ValueError("exchangeInfo lists no symbol trading")
        return listed

    def price_url(self, symbol: str) -> str | None:
        """``ticker/price`` of one symbol, or None without a ``rest_url``."""
        if not self.rest_url:
            return None
        return f"{self.rest_url}/api/v3/ticker/price?symbol={quote(symbol, safe='')}"

    def parse_price(self, body: bytes, symbol: str) -> Decimal:
        """The ``price`` of ``{"symbol": ..., "price": "..."}``; raises ``ValueError`` for another
        shape, another symbol, or a price that is not finite and > 0."""
        try:
            ticker = _ticker_price.decode(body)
        except msgspec.DecodeError as exc:
            raise ValueError(f"not a ticker/price document: {exc}") from None
        if ticker.symbol != symbol:
            raise ValueError(f"ticker/price answered for {ticker.symbol!r}, not {symbol!r}")
        if not (ticker.price.is_finite() and ticker.price > 0):
            raise ValueError(f"ticker/price gave the price {ticker.price}")
        return ticker.price

    def connect_url(self) -> str:
        """``<base>/stream``: a combined-stream connection with no stream yet."""
        return self.base_url.rstrip("/") + "/stream"

    def subscribe_request(self, symbols: Sequence[str], request_id: int) -> list[str]:
        """``SUBSCRIBE`` frames carrying the runner's ``request_id`` as their ``id`` (Binance
        echoes it in the ack and in an error reply), one per ``symbols_per_message`` symbols."""
        return self._frames("SUBSCRIBE", symbols, request_id)

    def unsubscribe_request(self, symbols: Sequence[str], request_id: int) -> list[str]:
        """``UNSUBSCRIBE`` frames with ``id`` = ``request_id``, as :meth:`subscribe_request`."""
        return self._frames("UNSUBSCRIBE", symbols, request_id)

    def subscribe_frames(self, symbols: Sequence[str]) -> list[str]:
        """One ``SUBSCRIBE`` per ``symbols_per_message`` symbols, each with an id of our own
        (for a runner that numbers no request; an error reply then names that id's symbols)."""
        return self._frames("SUBSCRIBE", symbols, None)

    def unsubscribe_frames(self, symbols: Sequence[str]) -> list[str]:
        """One ``UNSUBSCRIBE`` per ``symbols_per_message`` symbols, ids as ``subscribe_frames``."""
        return self._frames("UNSUBSCRIBE", symbols, None)

    def _frames(self, method: str, symbols: Sequence[str], numbered: int | None) -> list[str]:
        """Frames of at most ``symbols_per_message`` streams, all with id ``numbered`` (the
        runner's request), or each with an id of our own remembered in ``_pending``."""
        frames = []
        step = self.symbols_per_message
        for start in range(0, len(symbols), step):
            chunk = tuple(symbols[start : start + step])
            request_id = numbered
            if request_id is None:
                request_id = next(self._ids)
                self._pending[request_id] = chunk
            params = [f"{s.lower()}@{self.stream}" for s in chunk]
            frames.append(_encode({"method": method, "params": params, "id": request_id}).decode())
        return frames

    def parse(self, frame: str | bytes, received_ns: int) -> list[Tick]:
        """Ticks from one combined-stream frame; ``[]`` for an ack.

        Raises :class:`BadFrame` (``not-json``, ``unknown-event``, ``bad-price``, ``bad-field``),
        :class:`SubscriptionRejected` for an error reply (with its ``id`` as ``request_id``, and the
        symbols when the id is one of ``subscribe_frames``' own), and
        :class:`FeedClosed` for ``serverShutdown``: the runner drops the connection and reconnects
        after its usual backoff.
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
            request_id = env.id if isinstance(env.id, int) else None
            symbols = self._pending.pop(request_id, ()) if request_id is not None else ()
            raise SubscriptionRejected(f"code {code}: {reason}", symbols, request_id)
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
