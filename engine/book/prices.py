"""The last price of every symbol: written by the book actor on each tick, read by the web
(direction inference, ``/api/prices``, the live stream). It carries the short recent history
(:class:`engine.book.history.PriceHistory`) the actor records next to it, so every place that
runs the book with a ``LastPrices`` records the history too."""

from __future__ import annotations

from engine.book.history import PriceHistory
from engine.model import Tick

__all__ = ["LastPrices"]


class LastPrices:
    """The last tick seen per (exchange, symbol); written by the book actor only."""

    def __init__(self, history: PriceHistory | None = None) -> None:
        self._ticks: dict[tuple[str, str], Tick] = {}
        self.history = history if history is not None else PriceHistory()

    def update(self, tick: Tick) -> None:
        """Remember ``tick`` as the latest of its symbol (a dict store: cheap on every tick)."""
        self._ticks[tick.exchange, tick.symbol] = tick

    def get(self, exchange: str, symbol: str) -> Tick | None:
        """The last tick of ``symbol`` on ``exchange``, or None if none was seen."""
        return self._ticks.get((exchange, symbol))

    def items(self) -> list[Tick]:
        """Every last tick, sorted by (exchange, symbol)."""
        return [self._ticks[key] for key in sorted(self._ticks)]
