"""Demand: the symbols with live triggers per exchange, which the feeds follow.

The book actor writes a :class:`Demand`; the feeds read it through :class:`DemandView` (the
three read methods), which a filtered demand (``engine.feeds.symbols.FilteredDemand``) offers too,
so a feed never knows whether it follows the book's demand or one seen through a symbol list.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Protocol

import trio

__all__ = ["Demand", "DemandView"]


class DemandView(Protocol):
    """What a feed follows: the symbols of an exchange and a version to wait past."""

    def symbols(self, exchange: str) -> frozenset[str]:
        """The symbols of ``exchange`` to subscribe (empty when none)."""
        ...

    def version(self, exchange: str) -> int:
        """Grows on every change of ``symbols(exchange)``."""
        ...

    async def wait_changed(self, exchange: str, seen_version: int) -> int:
        """Wait until ``version(exchange)`` is past ``seen_version``; return the new version."""
        ...


class Demand:
    """The symbols with live triggers, per exchange: what each feed must subscribe to.

    Each exchange's set carries a version that grows on every change, so a feed can wait for
    the next change after the set it last acted on without missing one in between. Written by
    the book actor only (one Trio thread, no locks).
    """

    def __init__(self) -> None:
        self._symbols: dict[str, frozenset[str]] = {}
        self._versions: defaultdict[str, int] = defaultdict(int)
        self._changed = trio.Event()  # set and replaced on every change

    def symbols(self, exchange: str) -> frozenset[str]:
        """The live symbols of ``exchange`` (empty when it has none)."""
        return self._symbols.get(exchange, frozenset())

    def version(self, exchange: str) -> int:
        """How many times the set of ``exchange`` has changed."""
        return self._versions[exchange]

    def set(self, exchange: str, symbols: Iterable[str]) -> None:
        """Replace the set of ``exchange``; wakes the waiters if it differs."""
        symbols = frozenset(symbols)
        if symbols == self.symbols(exchange):
            return
        if symbols:
            self._symbols[exchange] = symbols
        else:
            self._symbols.pop(exchange, None)
        self._versions[exchange] += 1
        self._changed.set()
        self._changed = trio.Event()

    def add(self, exchange: str, symbol: str) -> None:
        """Mark ``symbol`` live on ``exchange``."""
        self.set(exchange, self.symbols(exchange) | {symbol})

    def discard(self, exchange: str, symbol: str) -> None:
        """Mark ``symbol`` no longer live on ``exchange``."""
        self.set(exchange, self.symbols(exchange) - {symbol})

    async def wait_changed(self, exchange: str, seen_version: int) -> int:
        """Wait until the version of ``exchange`` is past ``seen_version``; return the new one.

        Returns at once if it already is. Cancellation: a plain wait, safe to cancel.
        """
        while self._versions[exchange] <= seen_version:
            await self._changed.wait()
        return self._versions[exchange]
