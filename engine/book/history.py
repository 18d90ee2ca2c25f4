"""A short recent price history per symbol, so a chart that opens is not empty (issue 16).

The book actor records every tick here, next to :class:`engine.book.prices.LastPrices`; the web
reads it (``GET /api/prices/{symbol}/history``, and the live stream sends it first).

Per (exchange, symbol) a ring of at most ``capacity`` points (epoch second, price), one point
per second: the last price seen in a second wins. The hot path is an int compare of the second
and a list store in the common case (a tick in the same second as the symbol's last point); a
new second writes one more slot of the preallocated ring and moves the symbol to the recent end.

Memory is bounded whatever an outsider does: the book holds triggers for symbols that users
choose, so the set of symbols that tick is theirs to grow (150,000 symbols of churn is a tested
load). The history keeps the ``max_symbols`` most recently *updated* symbols (least recently
updated evicted first), not only the watched ones: a chart that opens on a symbol nobody watched
a moment ago still finds its history, and no reader's behaviour can grow it. Recency moves once
per second per symbol (when its second changes), never per tick. The worst case is
``max_symbols * capacity`` points: with the defaults 1,000 x 900, about 16 bytes of slots per
point plus the tick's Decimal the point keeps alive (~100 bytes), so ~110 MB at most; a deployment
that cannot spare it passes smaller bounds.
"""

from __future__ import annotations

from array import array
from collections import OrderedDict
from decimal import Decimal

from engine.model import Tick

__all__ = ["PriceHistory"]

CAPACITY = 900  # points per symbol: 15 minutes at one point per second
MAX_SYMBOLS = 1_000  # symbols kept at once; the least recently updated is evicted


class _Ring:
    """One symbol's points: ``seconds`` (raw int64s, no int objects kept) and ``prices`` in
    parallel, ``head`` the slot of the newest point, ``last`` its second (-1 when empty)."""

    __slots__ = ("exchange", "head", "last", "prices", "seconds", "size", "symbol")

    def __init__(self, exchange: str, symbol: str, capacity: int) -> None:
        self.exchange = exchange
        self.symbol = symbol
        self.seconds = array("q", bytes(8 * capacity))
        self.prices: list[Decimal | None] = [None] * capacity
        self.head = -1
        self.size = 0
        self.last = -1


_NONE: dict[str, _Ring] = {}  # the empty default of a lookup on an unknown exchange


class PriceHistory:
    """The last ``capacity`` seconds of prices of the ``max_symbols`` most recently updated
    symbols (module docstring); written by the book actor only."""

    def __init__(self, capacity: int = CAPACITY, max_symbols: int = MAX_SYMBOLS) -> None:
        if capacity < 1 or max_symbols < 1:
            raise ValueError("capacity and max_symbols must be at least 1")
        self.capacity = capacity
        self.max_symbols = max_symbols
        # exchange -> symbol -> ring: two lookups, no key tuple built per tick.
        self._rings: dict[str, dict[str, _Ring]] = {}
        # Every ring, least recently updated first (recency moves once per second per symbol).
        self._recent: OrderedDict[_Ring, None] = OrderedDict()

    def record(self, tick: Tick, second: int) -> None:
        """Keep ``tick``'s price as its symbol's point for epoch ``second``.

        In the common case (the symbol's last point is of this second) an int compare and a
        list store; a second earlier than the last point's (the wall clock stepped back) also
        lands on the last point, so the points stay in increasing time."""
        ring = self._rings.get(tick.exchange, _NONE).get(tick.symbol)
        if ring is not None and second <= ring.last:
            ring.prices[ring.head] = tick.price
            return
        self._advance(ring, tick, second)

    def _advance(self, ring: _Ring | None, tick: Tick, second: int) -> None:
        """A new second for the symbol: one more point, and the symbol becomes the most recent."""
        if ring is None:
            ring = self._add(tick.exchange, tick.symbol)
        else:
            self._recent.move_to_end(ring)
        head = ring.head + 1
        if head == self.capacity:
            head = 0
        ring.head = head
        ring.seconds[head] = second
        ring.prices[head] = tick.price
        ring.last = second
        if ring.size < self.capacity:
            ring.size += 1

    def _add(self, exchange: str, symbol: str) -> _Ring:
        """A ring for a symbol not held, evicting the least recently updated one when full."""
        if len(self._recent) >= self.max_symbols:
            old, _ = self._recent.popitem(last=False)
            by_symbol = self._rings[old.exchange]
            del by_symbol[old.symbol]
            if not by_symbol:
                del self._rings[old.exchange]
        ring = _Ring(exchange, symbol, self.capacity)
        self._rings.setdefault(exchange, {})[symbol] = ring
        self._recent[ring] = None
        return ring

    def points(
        self, exchange: str, symbol: str, now: int | None = None
    ) -> list[tuple[int, Decimal]]:
        """The symbol's points, oldest first; with ``now`` (epoch second) only those of the last
        ``capacity`` seconds (``now - capacity < second``). Empty when none is held."""
        ring = self._rings.get(exchange, _NONE).get(symbol)
        if ring is None:
            return []
        capacity, seconds, prices = self.capacity, ring.seconds, ring.prices
        start = ring.head - ring.size + 1
        out = [
            (seconds[i % capacity], prices[i % capacity]) for i in range(start, start + ring.size)
        ]
        if now is not None:
            out = [point for point in out if point[0] > now - capacity]
        return out  # type: ignore[return-value]  # a held slot's price is never None

    def __len__(self) -> int:
        """How many symbols are held."""
        return len(self._recent)
