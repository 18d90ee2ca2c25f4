"""Demand: the symbols with live triggers per exchange, which the feeds follow.

The book actor writes a :class:`Demand`; the feeds read it through :class:`DemandView`, which a
filtered demand (``engine.feeds.symbols.FilteredDemand``) offers too, so a feed never knows
whether it follows the book's demand or one seen through a symbol list.

A change is one symbol added or removed, never a copy of the set: at 150,000 watched symbols,
copying the set on each create of a new symbol cost a create 62 ms (issue 15). A reader keeps
its own set and applies :meth:`DemandView.changes_since` (what was added and removed since the
version it holds, from a bounded log per exchange); a reader that fell further behind than the
log reaches gets the whole set instead (``Changes.snapshot``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

import trio

__all__ = ["LOG_LIMIT", "Changes", "Demand", "DemandView"]

LOG_LIMIT = 4096  # changes kept per exchange; a reader further behind gets a snapshot


@dataclass(frozen=True, slots=True)
class Changes:
    """What changed in one exchange's set between a reader's version and ``version``.

    With ``snapshot`` False, ``added`` and ``removed`` are the net difference (disjoint): apply
    them. With ``snapshot`` True the reader was too far behind for the log: ``added`` is the
    whole set at ``version`` (and ``removed`` is empty); replace what it held.
    """

    version: int
    added: frozenset[str] = frozenset()
    removed: frozenset[str] = frozenset()
    snapshot: bool = False

    def apply_to(self, held: set[str]) -> None:
        """Bring ``held`` (the set at the reader's version) to the set at :attr:`version`."""
        if self.snapshot:
            held.clear()
        else:
            held.difference_update(self.removed)
        held.update(self.added)


class DemandView(Protocol):
    """What a feed follows: the symbols of an exchange, a version, and the changes between."""

    def symbols(self, exchange: str) -> frozenset[str]:
        """The symbols of ``exchange`` to subscribe (empty when none); a copy, O(n): a reader
        that follows changes calls :meth:`changes_since` instead."""
        ...

    def version(self, exchange: str) -> int:
        """Grows on every change of ``symbols(exchange)``."""
        ...

    def changes_since(self, exchange: str, version: int) -> Changes:
        """What changed in ``exchange``'s set after ``version`` (a version this view gave out, or
        0 for nothing seen yet), up to now. O(changes), or O(n) as a snapshot."""
        ...

    async def wait_changed(self, exchange: str, seen_version: int) -> int:
        """Wait until ``version(exchange)`` is past ``seen_version``; return the new version."""
        ...


class _Log:
    """One exchange's live set, its version and the bounded log of its last changes.

    ``entries[i]`` is the change that made version ``base + i + 1``: (symbol, added?).
    """

    __slots__ = ("base", "entries", "members", "version")

    def __init__(self) -> None:
        self.members: set[str] = set()
        self.version = 0
        self.base = 0
        self.entries: list[tuple[str, bool]] = []

    def record(self, symbol: str, added: bool) -> None:
        self.version += 1
        self.entries.append((symbol, added))
        if len(self.entries) > 2 * LOG_LIMIT:  # trimmed in halves: amortised O(1) a change
            cut = len(self.entries) - LOG_LIMIT
            del self.entries[:cut]
            self.base += cut

    def since(self, version: int) -> Changes:
        if version >= self.version:
            return Changes(self.version)
        if version < self.base:
            return Changes(self.version, frozenset(self.members), snapshot=True)
        first: dict[str, bool] = {}  # each touched symbol -> was its first change an add?
        for symbol, added in self.entries[version - self.base :]:
            first.setdefault(symbol, added)
        members = self.members
        added_now = frozenset(s for s, a in first.items() if a and s in members)
        removed_now = frozenset(s for s, a in first.items() if not a and s not in members)
        return Changes(self.version, added_now, removed_now)


class Demand:
    """The symbols with live triggers, per exchange: what each feed must subscribe to.

    Each exchange's set carries a version that grows by one on every symbol added or removed,
    and a log of its last :data:`LOG_LIMIT` changes, so a feed can wait for the next change after
    the set it last acted on and read only what changed. Written by the book actor only (one
    Trio thread, no locks).
    """

    def __init__(self) -> None:
        self._logs: defaultdict[str, _Log] = defaultdict(_Log)
        self._changed = trio.Event()  # set and replaced on every change

    def symbols(self, exchange: str) -> frozenset[str]:
        """The live symbols of ``exchange`` (empty when it has none); a copy, O(n)."""
        log = self._logs.get(exchange)
        return frozenset(log.members) if log is not None else frozenset()

    def __contains__(self, key: tuple[str, str]) -> bool:
        """Whether ``(exchange, symbol)`` is live. O(1)."""
        log = self._logs.get(key[0])
        return log is not None and key[1] in log.members

    def count(self, exchange: str) -> int:
        """How many symbols of ``exchange`` are live. O(1)."""
        log = self._logs.get(exchange)
        return len(log.members) if log is not None else 0

    def version(self, exchange: str) -> int:
        """How many single changes the set of ``exchange`` has had."""
        log = self._logs.get(exchange)
        return log.version if log is not None else 0

    def changes_since(self, exchange: str, version: int) -> Changes:
        """What changed in ``exchange``'s set after ``version``; see :class:`Changes`.

        Runtime complexity: O(k) for the k changes since ``version``, O(n) when they are more
        than the log keeps (a snapshot of the n symbols).
        """
        return self._logs[exchange].since(version)

    def add(self, exchange: str, symbol: str) -> None:
        """Mark ``symbol`` live on ``exchange``; wakes the waiters if it was not. O(1)."""
        log = self._logs[exchange]
        if symbol not in log.members:
            log.members.add(symbol)
            log.record(symbol, True)
            self._wake()

    def discard(self, exchange: str, symbol: str) -> None:
        """Mark ``symbol`` no longer live on ``exchange``; wakes the waiters if it was. O(1)."""
        log = self._logs.get(exchange)
        if log is not None and symbol in log.members:
            log.members.discard(symbol)
            log.record(symbol, False)
            self._wake()

    def set(self, exchange: str, symbols: Iterable[str]) -> None:
        """Make ``symbols`` the set of ``exchange``, as the single changes that differ (the
        start, tests). O(n)."""
        wanted = set(symbols)
        log = self._logs[exchange]
        changed = False
        for symbol in sorted(log.members - wanted):
            log.members.discard(symbol)
            log.record(symbol, False)
            changed = True
        for symbol in sorted(wanted - log.members):
            log.members.add(symbol)
            log.record(symbol, True)
            changed = True
        if changed:
            self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def wait_changed(self, exchange: str, seen_version: int) -> int:
        """Wait until the version of ``exchange`` is past ``seen_version``; return the new one.

        Returns at once if it already is. Cancellation: a plain wait, safe to cancel.
        """
        while self.version(exchange) <= seen_version:
            await self._changed.wait()
        return self.version(exchange)
