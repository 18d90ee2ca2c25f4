"""No tick outside ``engine.limits`` gets past a feed: the one check every feed path shares.

A tick whose price or exchange time the book or the database cannot hold (``limits.tick_problem``:
a price of ``1e30``, a time of year 318,857) is dropped where it enters the engine, counted in
``metrics.frames_skipped{kind="out-of-range"}`` and logged once per feed, and the feed carries on.
The exchange runner checks inline on its one per-frame path (``Session.frame_ticks`` in
``engine.feeds.session``); the replay source
checks as it reads a line; every other source gets its tick channel wrapped in
:class:`BoundedTicks`.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

import trio

from engine.limits import tick_problem
from engine.metrics import Metrics
from engine.model import Tick

log = logging.getLogger(__name__)

OUT_OF_RANGE = "out-of-range"


def tick_refusal(tick: Tick) -> str | None:
    """Why ``tick`` cannot be matched and recorded, or None when it can: ``tick_problem`` of its
    price and time, and a price that is not a ``Decimal`` or a time that is not an ``int`` (a
    plugin's bug) is refused too rather than raising."""
    price, time_ms = tick.price, tick.exchange_time_ms
    if type(price) is not Decimal:
        return f"price {price!r} is not a Decimal"
    if type(time_ms) is not int:
        return f"time {time_ms!r} is not an integer of milliseconds"
    return tick_problem(price, time_ms)


def describe(tick: Tick, reason: str) -> str:
    """A log sample of a refused tick: its symbol and the reason (never the whole frame)."""
    return f"{tick.symbol[:40]!r}: {reason}"


class BoundedTicks:
    """A source's tick channel that drops the ticks :func:`tick_refusal` refuses.

    Duck-types the ``trio.MemorySendChannel`` a source is given (``send``, ``send_nowait``,
    ``aclose``, ``async with``); anything else is the channel's own. A dropped tick is counted in
    ``frames_skipped{exchange=<source>, kind="out-of-range"}``; the first one is logged.
    """

    def __init__(self, channel: trio.MemorySendChannel[Tick], name: str, metrics: Metrics) -> None:
        self._channel = channel
        self._name = name
        self._metrics = metrics
        self._logged = False

    def _usable(self, tick: Tick) -> bool:
        reason = tick_refusal(tick)
        if reason is None:
            return True
        self._metrics.frames_skipped.inc(exchange=self._name, kind=OUT_OF_RANGE)
        if not self._logged:
            self._logged = True
            log.warning(
                "%s: skipping a tick out of range (further ones are only counted): %s",
                self._name,
                describe(tick, reason),
            )
        return False

    async def send(self, tick: Tick) -> None:
        """Send ``tick`` unless it is out of range (then it is counted and dropped)."""
        if self._usable(tick):
            await self._channel.send(tick)

    def send_nowait(self, tick: Tick) -> None:
        """As :meth:`send`, without waiting; ``trio.WouldBlock`` as the channel raises it."""
        if self._usable(tick):
            self._channel.send_nowait(tick)

    async def aclose(self) -> None:
        await self._channel.aclose()

    def close(self) -> None:
        self._channel.close()

    def clone(self) -> BoundedTicks:
        """A clone of the channel, bounded too."""
        return BoundedTicks(self._channel.clone(), self._name, self._metrics)

    async def __aenter__(self) -> BoundedTicks:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._channel, name)
