"""What each feed is doing right now, for ``/readyz`` and ``/metrics``.

The feed actors write their :class:`FeedState` in place (one Trio thread, no locks); the web reads
it. Nothing here does I/O.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Any

from engine.metrics import Gauge, Metrics


@dataclass(slots=True)
class FeedState:
    """One feed's live state.

    ``since`` is the wall time (``time.time()``) the current connection came up, ``None`` while
    disconnected. ``last_frame_ns`` is ``time.monotonic_ns()`` of the last frame received (any
    frame, acks included). ``wanted`` are the symbols demand asks for; ``symbols`` those actually
    subscribed; ``rejected`` maps a symbol the exchange refused to the exchange's reason.

    The exchange runner reports each connection (any hashable key) with :meth:`connection_up`,
    :meth:`connection_holds` and :meth:`connection_down`; ``connected`` and ``symbols`` follow
    from the connections that are up. ``unattributed`` holds, per connection, the reason of a
    rejection the runner could not map to symbols (no symbols named, no known request id): the
    feed is not ready while one stands, since some wanted symbol may not be subscribed. It goes
    with its connection (the slot's next connection subscribes afresh).
    """

    name: str
    connected: bool = False
    since: float | None = None
    last_frame_ns: int | None = None
    reconnects: int = 0
    wanted: AbstractSet[str] = frozenset()  # the runner's live set (not copied per change)
    symbols: AbstractSet[str] = frozenset()  # a live view of ``_held`` once a connection holds
    rejected: dict[str, str] = field(default_factory=dict)
    last_error: str | None = None
    connections: dict[object, frozenset[str]] = field(default_factory=dict, repr=False)
    unattributed: dict[object, str] = field(default_factory=dict)
    _held: dict[str, int] = field(default_factory=dict, repr=False)  # symbol -> connections

    @property
    def last_frame_at(self) -> float | None:
        """Monotonic time (``time.monotonic()`` seconds) of the last frame, if any."""
        return None if self.last_frame_ns is None else self.last_frame_ns / 1e9

    def last_frame_age_s(self) -> float | None:
        """Seconds since the last frame, or ``None`` if none arrived yet."""
        if self.last_frame_ns is None:
            return None
        return (time.monotonic_ns() - self.last_frame_ns) / 1e9

    def mark_connected(self) -> None:
        """Record that a connection is up (``since`` keeps the first of overlapping ones)."""
        if not self.connected:
            self.connected = True
            self.since = time.time()

    def mark_disconnected(self, error: str | None = None) -> None:
        """Record that no connection is up; ``error`` is why, when it failed."""
        self.connected = False
        self.since = None
        if error is not None:
            self.last_error = error

    def connection_up(self, key: object) -> None:
        """Record a connection that came up (nothing subscribed on it yet)."""
        self.connections[key] = frozenset()
        self._recount()

    def connection_holds(self, key: object, symbols: frozenset[str]) -> None:
        """Record what connection ``key`` has subscribed now (ignored once it is down)."""
        if key in self.connections:
            self._count(self.connections[key], symbols)
            self.connections[key] = symbols
            self._recount()

    def connection_down(self, key: object) -> None:
        """Record that connection ``key`` is gone, with its unattributed rejection."""
        self._count(self.connections.pop(key, frozenset()), frozenset())
        self.unattributed.pop(key, None)
        self._recount()

    def reject(self, symbols: tuple[str, ...], reason: str) -> None:
        """Record ``symbols`` as refused by the exchange for ``reason``."""
        for symbol in symbols:
            self.rejected[symbol] = reason

    def reject_unattributed(self, key: object, reason: str) -> None:
        """Record a rejection on connection ``key`` that names no symbols the runner can map."""
        if key in self.connections:
            self.unattributed[key] = reason

    def _count(self, old: frozenset[str], new: frozenset[str]) -> None:
        """Count one connection's change from ``old`` to ``new``: O(the two), not O(every
        symbol of the feed) (at 150,000 symbols a union per subscription blocked the loop)."""
        held = self._held
        for symbol in old - new:
            if held[symbol] == 1:
                del held[symbol]
            else:
                held[symbol] -= 1
        for symbol in new - old:
            held[symbol] = held.get(symbol, 0) + 1

    def _recount(self) -> None:
        self.symbols = self._held.keys()
        if self.connections:
            self.mark_connected()
        else:
            self.mark_disconnected()

    def ready_reason(self) -> str | None:
        """``None`` when the feed is ready, else why not.

        A feed with nothing to subscribe is idle and ready; one with symbols to subscribe is
        ready once connected and while no rejection it could not attribute stands. Rejected
        symbols do not make a feed unready (one bad symbol in one alert must not take the whole
        engine out of a load balancer); they are listed in :meth:`as_dict` for ``/readyz``.
        """
        if not self.wanted:
            return None
        if not self.connected:
            detail = f": {self.last_error}" if self.last_error else ""
            return f"not connected{detail}"
        if self.unattributed:
            reason = next(iter(self.unattributed.values()))
            return f"a subscription was rejected without naming its symbols: {reason}"
        return None

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready view for ``/readyz``."""
        age = self.last_frame_age_s()
        return {
            "connected": self.connected,
            "since": self.since,
            "last_frame_age_s": None if age is None else round(age, 3),
            "reconnects": self.reconnects,
            "symbols": sorted(self.symbols),
            "rejected": dict(sorted(self.rejected.items())),
            "unattributed_rejections": sorted(set(self.unattributed.values())),
            "last_error": self.last_error,
        }


class FeedStates:
    """Every feed's :class:`FeedState` by feed name; created by the engine, passed to the actors."""

    def __init__(self) -> None:
        self._states: dict[str, FeedState] = {}

    def get(self, name: str) -> FeedState:
        """The state of feed ``name``, created on first use."""
        state = self._states.get(name)
        if state is None:
            state = self._states[name] = FeedState(name)
        return state

    def items(self) -> Iterator[tuple[str, FeedState]]:
        """``(name, state)`` pairs in name order."""
        return iter(sorted(self._states.items()))

    def __contains__(self, name: object) -> bool:
        return name in self._states

    def rejection(self, exchange: str, symbol: str) -> str | None:
        """The exchange's own reason for refusing to subscribe ``symbol`` (its spelling, as
        alerts store it), or None when it did not refuse it. Kept while the symbol has live
        triggers; forgotten once demand drops it (a later subscribe may succeed)."""
        state = self._states.get(exchange)
        return None if state is None else state.rejected.get(symbol)

    def ready(self) -> tuple[bool, dict[str, str]]:
        """Whether every feed is ready, and the reason for each one that is not."""
        reasons = {}
        for name, state in self.items():
            reason = state.ready_reason()
            if reason is not None:
                reasons[name] = reason
        return not reasons, reasons

    def export_to(self, metrics: Metrics) -> None:
        """Add gauges to ``metrics`` that read these states when ``/metrics`` is rendered.

        Idempotent: a second call replaces the gauges (``Metrics.add`` keys them by name).
        """
        metrics.add(
            Gauge(
                "triggerbook_feed_connected",
                "1 while the feed has a live connection.",
                ["exchange"],
                callback=lambda: {(n,): float(s.connected) for n, s in self.items()},
            )
        )
        metrics.add(
            Gauge(
                "triggerbook_feed_symbols",
                "Symbols subscribed per feed.",
                ["exchange"],
                callback=lambda: {(n,): float(len(s.symbols)) for n, s in self.items()},
            )
        )
        metrics.add(
            Gauge(
                "triggerbook_feed_last_frame_age_seconds",
                "Seconds since the feed's last frame.",
                ["exchange"],
                callback=lambda: {
                    (n,): age for n, s in self.items() if (age := s.last_frame_age_s()) is not None
                },
            )
        )
