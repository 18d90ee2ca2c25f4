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

Requests carry the runner's number as ``"id": "7"``; OKX echoes it in the reply, so an
``error`` reply (``{"id": "7", "event": "error", "code": "60018", ...}``) is rejected with
``request_id=7`` even when its words name no instrument. At most ``symbols_per_message`` (100)
arguments go in one request, well under OKX's 64 KB per request.

A ``notice`` (code 64008: the connection closes for a service upgrade in 60 s) is a control frame;
the runner reconnects when the server closes.

Symbols: ``btc-usdt``, ``BTC/USDT``, ``btc_usdt`` and ``BTCUSDT`` (a known quote currency at the
end) all normalise to ``BTC-USDT``.
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
    data_items,
    decode_object,
    encode_json,
    epoch_ms,
    exact_price,
    handler_for,
    no_ticks,
    split_symbol,
)
from engine.model import Tick
from engine.plugins import Exchange, any_case, hookimpl

__all__ = ["Okx", "triggerbook_exchanges"]

CHANNELS = ("trades", "tickers")
QUOTES = ("USDT", "USDC", "USD", "EUR", "BTC", "ETH", "OKB", "DAI")
# The field of a push's entries that holds the price: the trade price, or the last trade price.
PRICE_FIELDS: Mapping[str, str] = {"trades": "px", "tickers": "last"}

_PONG = frozenset({"pong", b"pong"})
_PART = "[A-Za-z0-9]{1,12}"
_QUOTE_INPUT = "|".join(any_case(q) for q in QUOTES)
# "instId:FOO-USDT" (60018) or "instId" : "LTC-USD-200327" (60012) inside an error message.
_INST_ID = re.compile(r"instId\W{0,6}([A-Za-z0-9]+(?:-[A-Za-z0-9]+)+)")


class Okx(Exchange):
    """The OKX v5 public market-data feed. No I/O: the shared feed runner drives it."""

    name = "okx"
    url = "wss://ws.okx.com:8443/ws/v5/public"
    options: ClassVar[Mapping[str, Any]] = {"channel": "trades"}
    # Spot BTC-USDT, swap BTC-USDT-SWAP, future BTC-USD-250328, option BTC-USD-250328-60000-C.
    symbol_pattern = "^[A-Z0-9]{1,12}(?:-[A-Z0-9]{1,12}){1,4}$"
    input_pattern = f"^(?:{_PART}(?:[/_:. -]{_PART}){{1,4}}|{_PART}(?:{_QUOTE_INPUT}))$"
    symbol_rule = (
        "an instrument BASE-QUOTE such as BTC-USDT, with a suffix for derivatives "
        "(BTC-USDT-SWAP); BTCUSDT and btc/usdt work too"
    )

    # OKX v5 "WebSocket / Connect": 480 subscribe/unsubscribe/login requests per connection
    # per hour; the channels of one request must total under 64 KB (100 args is ~5 KB, and a
    # request never carries more than ``symbols_per_message`` of them). No per-connection cap
    # on public subscriptions is documented.
    max_streams_per_connection = 200
    max_messages_per_second = 480 / 3600
    symbols_per_message = 100
    # "ping" every 20 s is answered by "pong", so silence past 45 s means a dead connection.
    stale_after_s = 45.0
    heartbeat_interval_s = 20.0

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        super().__init__(config)
        self.channel: str = choose_option(self.name, "channel", self.config["channel"], CHANNELS)

    def spell_symbol(self, symbol: str) -> str:
        """``BASE-QUOTE[-SUFFIX]`` in upper case; see the module docstring."""
        return "-".join(split_symbol(symbol, QUOTES))

    def subscribe_request(self, symbols: Sequence[str], request_id: int) -> list[str]:
        """``subscribe`` ops of at most ``symbols_per_message`` ``{channel, instId}`` arguments,
        each with ``"id": "<request_id>"``: OKX echoes it in the reply, an ``error`` included."""
        return self._requests("subscribe", symbols, request_id)

    def unsubscribe_request(self, symbols: Sequence[str], request_id: int) -> list[str]:
        """``unsubscribe`` ops with the request's ``id``, as :meth:`subscribe_request`."""
        return self._requests("unsubscribe", symbols, request_id)

    def subscribe_frames(self, symbols: Sequence[str]) -> list[str]:
        """``subscribe`` ops of at most ``symbols_per_message`` arguments, without an id."""
        return self._requests("subscribe", symbols, None)

    def unsubscribe_frames(self, symbols: Sequence[str]) -> list[str]:
        """``unsubscribe`` ops of at most ``symbols_per_message`` arguments, without an id."""
        return self._requests("unsubscribe", symbols, None)

    def _requests(self, op: str, symbols: Sequence[str], request_id: int | None) -> list[str]:
        # The id is a string of up to 32 digits or letters in OKX's "WebSocket / Subscribe".
        head: dict[str, Any] = {"id": str(request_id)} if request_id is not None else {}
        step = self.symbols_per_message
        return [
            encode_json(
                {
                    **head,
                    "op": op,
                    "args": [{"channel": self.channel, "instId": s} for s in symbols[i : i + step]],
                }
            )
            for i in range(0, len(symbols), step)
        ]

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
        msg = decode_object(frame)
        # Replies name an "event"; pushes name their channel in "arg".
        key = msg.get("event") or _channel(msg)
        return handler_for(_HANDLERS, key, frame)(self, msg, frame, received_ns)

    def _push(self, msg: Message, frame: str | bytes, received_ns: int) -> list[Tick]:
        items = data_items(msg, "instId", frame)
        # A push names its channel in "arg"; an "event" that names a channel is no push.
        field = PRICE_FIELDS.get(_channel(msg) or "")
        if field is None:
            raise BadFrame("bad-shape", frame)
        ticks = []
        for item in items:
            price = exact_price(item.get(field), frame)
            ts = item.get("ts")
            exchange_ms = epoch_ms(ts, frame, text=True) if ts is not None else 0
            ticks.append(Tick(self.name, item["instId"], price, exchange_ms, received_ns))
        return ticks

    def _error(self, msg: Message, frame: str | bytes, received_ns: int) -> list[Tick]:
        # {"id": "7", "event": "error", "code": "60018", "msg": "Wrong URL or channel:trades,
        # instId:FOO-USDT doesn't exist. ...", "connId": "a4d3ae55"}: the id of our request when
        # it carried one, the instrument when the words name it.
        text = str(msg.get("msg") or "")
        reason = f"{msg.get('code', '')} {text}".strip() or "error"
        echoed = msg.get("id")
        request_id = (
            int(echoed)
            if isinstance(echoed, str) and echoed.isascii() and echoed.isdigit()
            else None
        )
        raise SubscriptionRejected(reason, tuple(_INST_ID.findall(text)), request_id)


def _channel(msg: Message) -> str | None:
    """The channel a push names in ``arg``, if it names one as a string."""
    arg = msg.get("arg")
    channel = arg.get("channel") if isinstance(arg, dict) else None
    return channel if isinstance(channel, str) else None


_HANDLERS: Mapping[str, Handler[Okx]] = {
    "trades": Okx._push,
    "tickers": Okx._push,
    "subscribe": no_ticks,
    "unsubscribe": no_ticks,
    "notice": no_ticks,
    "channel-conn-count": no_ticks,
    "error": Okx._error,
    "channel-conn-count-error": Okx._error,
}


@hookimpl
def triggerbook_exchanges() -> Sequence[type[Exchange]]:
    """The exchanges this plugin provides."""
    return [Okx]
