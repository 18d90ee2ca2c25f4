"""Made-up trades in an exchange's own format, for the operator's server to send.

Pure: :class:`TradeMaker` builds frames from recorded ones and keeps only those the plugin's own
``parse`` reads back exactly.
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping, Sequence
from decimal import Decimal

import msgspec

from engine.errors import BadFrame, FeedClosed, SubscriptionRejected
from engine.model import Tick
from engine.plugins.exchange import Exchange

_json_in = msgspec.json.Decoder(float_hook=Decimal)  # JSON numbers keep their digits
_json_out = msgspec.json.Encoder(decimal_format="number")


class TradeMaker:
    """New trade frames in ``exchange``'s own format, made from its recorded data frames.

    For a symbol it takes that symbol's recorded frame (or any data frame, with the symbol put
    in its place, also lower-cased where the recording had it so) and a new price (a small
    random walk from the recorded one, at the same precision) and the time now where the
    recording had its time in milliseconds. A frame is kept only when ``exchange.parse`` gives
    back exactly that symbol and price, so the operator never sees a frame the plugin would
    misread.
    """

    def __init__(
        self, exchange: Exchange, frames: Sequence[str], *, seed: int | None = None
    ) -> None:
        self.exchange = exchange
        self.templates: dict[str, tuple[object, Tick]] = {}
        for frame in frames:
            try:
                ticks = exchange.parse(frame, 0)
                doc = _json_in.decode(frame)
            except (BadFrame, SubscriptionRejected, FeedClosed, msgspec.DecodeError):
                continue
            if len(ticks) == 1 and isinstance(doc, dict):
                self.templates.setdefault(ticks[0].symbol, (doc, ticks[0]))
        self.prices: dict[str, Decimal] = {}
        self._random = random.Random(seed)

    def trade(self, symbol: str) -> str | None:
        """A new trade frame of ``symbol``, or None when no recorded frame can be made one."""
        if not self.templates:
            return None
        doc, tick = self.templates.get(symbol) or next(iter(self.templates.values()))
        last = self.prices.get(symbol, tick.price)
        step = Decimal(self._random.uniform(-0.001, 0.001)).quantize(Decimal("1e-6"))
        # at least six significant digits, so that a price like 0.001 can move at all
        exponent = min(int(tick.price.as_tuple().exponent), tick.price.adjusted() - 5)
        price = (last * (1 + step)).quantize(Decimal(1).scaleb(exponent))
        price = price if price > 0 else last
        now_ms = int(time.time() * 1000)
        swaps = {
            tick.symbol: symbol,
            tick.symbol.lower(): symbol.lower(),
            str(tick.price): str(price),
            str(tick.exchange_time_ms): str(now_ms),
        }
        frame = _json_out.encode(_swap(doc, swaps, tick, price, now_ms)).decode()
        try:
            ticks = self.exchange.parse(frame, 0)
        except (BadFrame, SubscriptionRejected, FeedClosed):
            return None
        if [(t.symbol, t.price) for t in ticks] != [(symbol, price)]:
            return None
        self.prices[symbol] = price
        return frame


def _swap(
    value: object, swaps: Mapping[str, str], tick: Tick, price: Decimal, now_ms: int
) -> object:
    """``value`` with the recorded symbol, price and millisecond time replaced."""
    if isinstance(value, dict):
        return {k: _swap(v, swaps, tick, price, now_ms) for k, v in value.items()}
    if isinstance(value, list):
        return [_swap(v, swaps, tick, price, now_ms) for v in value]
    if isinstance(value, str):
        if value in swaps:
            return swaps[value]
        for old in (tick.symbol, tick.symbol.lower()):
            if old and old in value:
                return value.replace(old, swaps[old])
        return value
    if isinstance(value, Decimal) and value == tick.price:
        return price
    if isinstance(value, int) and not isinstance(value, bool) and value == tick.exchange_time_ms:
        return now_ms if value else value
    return value
