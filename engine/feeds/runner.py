"""The shared feed runner: one actor per enabled feed, every socket concern under it.

``run_feeds`` starts, in its own nursery, an :class:`ExchangeFeed` per enabled WebSocket exchange
(driven by the exchange's pure description) and the ``run`` of each enabled
:class:`~engine.plugins.source.FeedSource`. Each gets its own clone of the tick channel.

An ``ExchangeFeed`` keeps ``demand.symbols(exchange)`` subscribed and nothing else, following
it by differences (``demand.changes_since``): a change of demand costs the feed O(change), not
O(symbols), at 150,000 symbols as at 10 (issue 15). The pieces, each in its own module, report
by return values and through the feed's ``FeedState``, never through a reference back up:

- ``engine.feeds.plan`` (pure): the symbols spread over *slots* of at most
  ``max_streams_per_connection`` (``Placement``, by differences); the subscription diff of a
  connection cut into numbered requests of at most ``symbols_per_message`` symbols; pacing at
  ``max_messages_per_second`` per connection (heartbeats included); the bounded memory of a
  connection's requests;
- ``engine.feeds.slot``: keeps one connection of a slot up, and the forced-disconnect handover
  (``forced_disconnect_after_s``, Binance's 24 h: the next connection opens ``handover_lead_s``
  ahead, both deliver for ``handover_overlap_s``, ticks deduplicated on
  ``(symbol, exchange_time_ms, price)``);
- ``engine.feeds.session``: one connection: subscribe through ``Exchange.subscribe_request`` /
  ``unsubscribe_request`` with a request id unique on the connection, staleness, the one
  per-frame path, ticks held until the socket is drained (``engine.feeds.connection``);
- here: ``run_feeds``, the feed (demand -> slots) and the reconnect policy (:class:`Reconnects`).

Rules the pieces keep together:

- staleness is a cancel scope around the receive loop whose deadline each frame pushes to
  ``stale_after_s`` (plus a slack of at most 1 s) ahead while subscribed; expiry is
  :class:`FeedStale` and a reconnect. Waiting on a full book is not staleness;
- the reconnect loop catches the named set :data:`RECONNECT_ERRORS` only, sleeps
  ``uniform(0, min(cap, base * 2**attempt))`` (full jitter, ``engine.backoff``), resets the
  attempt count once a connection stayed up ``healthy_after_s``, logs one line per attempt with
  the real cause (:func:`failure_reason`; the traceback at debug level);
  anything else propagates and stops the engine (a bug must not become a silent reconnect loop);
- a bad frame (:class:`BadFrame`) is counted in ``frames_skipped``, logged once per kind with a
  sample, and skipped; neither it nor an error reply drops the connection;
- an error reply (:class:`SubscriptionRejected`) is mapped to symbols: those it names, else those
  of the request whose id it carries (each connection remembers its last
  ``engine.feeds.plan.SENT_LIMIT`` requests). They go to ``FeedState.rejected`` (shown on
  ``/readyz``), stop counting as subscribed and are not asked for again until demand drops and
  re-adds them. A reply that names neither is recorded on its connection as an unattributed
  rejection: the feed is not ready, with the exchange's reason, until that connection ends (the
  slot's next connection subscribes afresh) or nothing is wanted. A refused unsubscribe is
  only logged;
- a tick out of ``engine.limits`` (``limits.tick_problem``: a price of ``1e30``, a time past the
  year 9999) never reaches the book: counted as a skipped frame of kind ``out-of-range``, logged
  once, skipped (``engine.feeds.bounds``). Sources get a channel that does the same;
- with a symbol directory (``engine.feeds.symbols``), the demand is filtered through it first: a
  symbol the exchange's list says it does not trade, or one it cannot spell, is never
  subscribed (invented symbols must not open connections that the exchange then bans).

The per-frame path is: ``get_message``, ``time.monotonic_ns()``, ``Session.frame_ticks`` (the
exchange's ``parse``, the range check, the handover dedupe), the ticks held until the socket is
drained, then ``ticks.send_nowait`` per tick (``Session.receive``).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import trio
import trio_websocket

from engine.backoff import Backoff
from engine.book.demand import Changes, DemandView
from engine.config import Config
from engine.errors import FeedClosed, FeedStale, PluginError
from engine.feeds.bounds import BoundedTicks
from engine.feeds.plan import Placement
from engine.feeds.session import DEDUPE_LIMIT, HOLD_MAX, SkippedFrames
from engine.feeds.slot import Slot, first_leaf
from engine.feeds.status import FeedState, FeedStates
from engine.metrics import Metrics
from engine.model import Tick
from engine.plugins.exchange import Exchange
from engine.plugins.registry import FeedRegistry
from engine.plugins.source import FeedSource

if TYPE_CHECKING:
    from engine.feeds.symbols import SymbolDirectory

__all__ = [
    "DEDUPE_LIMIT",
    "HOLD_MAX",
    "RECONNECT_ERRORS",
    "ExchangeFeed",
    "Reconnects",
    "failure_reason",
    "first_leaf",
    "run_feeds",
]

log = logging.getLogger(__name__)

RECONNECT_ERRORS: tuple[type[Exception], ...] = (
    trio_websocket.HandshakeError,  # includes ConnectionRejected and ConnectionTimeout
    trio_websocket.ConnectionClosed,
    OSError,
    trio.TooSlowError,
    FeedClosed,
    FeedStale,
)


async def run_feeds(
    config: Config,
    registry: FeedRegistry,
    ticks: trio.MemorySendChannel[Tick],
    demand: DemandView,
    feed_states: FeedStates,
    metrics: Metrics,
    *,
    directory: SymbolDirectory | None = None,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run one actor per enabled feed until cancelled; ``task_status.started()`` once all started.

    Each actor gets ``ticks.clone()`` and closes it when it ends; this function closes ``ticks``
    itself once the clones exist. With a ``directory``, every feed sees the demand filtered
    through it (:meth:`SymbolDirectory.filtered`). Raises :class:`PluginError` before starting
    anything if an enabled feed has no plugin, and propagates whatever a feed cannot handle (see
    module doc).
    """
    if directory is not None:
        demand = directory.filtered(demand)
    feeds: list[ExchangeFeed | FeedSource] = []
    for name in config.enabled_feeds():
        table = config.feeds[name]
        if registry.is_exchange(name):
            exchange = registry.exchange(name, table)
            feeds.append(ExchangeFeed(exchange, demand, feed_states.get(name), metrics))
        elif name in registry.sources:
            feeds.append(registry.source(name, table))
        else:
            raise PluginError(f"feed {name!r} is enabled but no plugin provides it")
    feed_states.export_to(metrics)
    async with ticks, trio.open_nursery() as nursery:
        for feed in feeds:
            if isinstance(feed, ExchangeFeed):
                await nursery.start(feed.run, ticks.clone())
            else:
                state = feed_states.get(feed.name)
                await nursery.start(_run_source, feed, ticks.clone(), demand, state, metrics)
        await ticks.aclose()
        task_status.started()


async def _run_source(
    source: FeedSource,
    ticks: trio.MemorySendChannel[Tick],
    demand: DemandView,
    state: FeedState,
    metrics: Metrics,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    channel: Any = ticks if source.checks_ticks else BoundedTicks(ticks, source.name, metrics)
    async with ticks:
        await source.run(channel, demand, state, metrics, task_status=task_status)


def failure_reason(exc: BaseException) -> str:
    """One line saying what really failed: the error's type and words, followed by those of
    what caused it (trio-websocket's ``HandshakeError`` has no words of its own and wraps an
    ``OSError`` that wraps the group of each address's ``ConnectionRefusedError``)."""
    words: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, BaseExceptionGroup):
            words.append("; ".join(failure_reason(leaf) for leaf in current.exceptions))
            break
        text = str(current).strip()
        if current is not exc:
            text = f"{type(current).__name__}: {text}" if text else ""
        if text and not any(text in known for known in words):
            words.append(text)
        current = current.__cause__ or (
            None if current.__suppress_context__ else current.__context__
        )
    return ": ".join([type(exc).__name__, *words])


class Reconnects:
    """The reconnect policy of one exchange feed: which errors call for a new connection
    (:data:`RECONNECT_ERRORS`), the backoff of each slot (``engine.backoff`` with the exchange's
    numbers), and the accounting of each failure (``reconnects``, ``last_error``, the metric,
    one log line)."""

    errors = RECONNECT_ERRORS

    def __init__(self, exchange: Exchange, state: FeedState, metrics: Metrics) -> None:
        self.exchange = exchange
        self.state = state
        self.metrics = metrics

    def backoff(self) -> Backoff:
        """A fresh backoff for one slot, with the exchange's numbers."""
        ex = self.exchange
        return Backoff(ex.backoff_base_s, ex.backoff_cap_s, healthy_after_s=ex.healthy_after_s)

    def failed(self, exc: BaseException, delay: float) -> None:
        """Account for a lost or failed connection before backing off ``delay`` seconds."""
        name = self.exchange.name
        self.state.reconnects += 1
        self.state.last_error = failure_reason(exc)
        self.metrics.feed_reconnects.inc(exchange=name)
        # One line per attempt with the real cause; the traceback only at debug level (an
        # exchange that is down for an hour must not fill the log with tracebacks).
        log.warning(
            "%s: connection failed (%s); reconnecting in %.2fs", name, self.state.last_error, delay
        )
        log.debug("%s: the failed connection's traceback", name, exc_info=exc)


class ExchangeFeed:
    """The actor of one WebSocket exchange: demand -> slots (``engine.feeds.plan.Placement``) ->
    connections -> ticks."""

    def __init__(
        self, exchange: Exchange, demand: DemandView, state: FeedState, metrics: Metrics
    ) -> None:
        self.exchange = exchange
        self.name = exchange.name
        self.demand = demand
        self.state = state
        self.metrics = metrics
        self.skipped = SkippedFrames(exchange.name, metrics)
        self.reconnects = Reconnects(exchange, state, metrics)
        self.slots: dict[int, Slot] = {}  # by the placement's slot id
        self.placement = Placement(exchange.max_streams_per_connection)
        self.wanted: set[str] = set()  # demand's symbols as of the last change applied
        self.ticks: trio.MemorySendChannel[Tick] | None = None
        self._nursery: trio.Nursery | None = None

    async def run(
        self,
        ticks: trio.MemorySendChannel[Tick],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Follow demand until cancelled; closes ``ticks`` on the way out."""
        self.ticks = ticks
        async with ticks, trio.open_nursery() as nursery:
            self._nursery = nursery
            changes = self.demand.changes_since(self.name, 0)
            await self._apply(changes)
            task_status.started()
            while True:
                seen = await self.demand.wait_changed(self.name, changes.version)
                changes = self.demand.changes_since(self.name, changes.version)
                assert changes.version >= seen
                await self._apply(changes)

    async def _apply(self, changes: Changes) -> None:
        """Apply a change of demand: place its symbols; start new slots, retire empty ones.

        A symbol that leaves demand or comes (back) into it loses its rejection: it is asked
        for again once demand drops and re-adds it. Runtime: O(change) (a snapshot, for a feed
        that fell behind the demand's log, is diffed against what the feed holds: O(n)).
        """
        state = self.state
        added, removed = changes.added, changes.removed
        if changes.snapshot:
            added, removed = added - self.wanted, self.wanted - added
        for symbol in removed:
            self.wanted.discard(symbol)
            state.rejected.pop(symbol, None)
        for symbol in added:
            self.wanted.add(symbol)
            state.rejected.pop(symbol, None)
        state.wanted = self.wanted
        changed, retired = self.placement.change(added, removed)
        fresh: list[Slot] = []
        for slot_id in sorted(changed):
            slot = self.slots.get(slot_id)
            if slot is None:
                assert self.ticks is not None
                slot = Slot(self.exchange, state, self.ticks, self.skipped, self.reconnects)
                self.slots[slot_id] = slot
                fresh.append(slot)
            slot.wanted.set(frozenset(self.placement.slots[slot_id]))  # O(cap)
        for slot_id in retired:
            old = self.slots.pop(slot_id, None)
            if old is not None:
                old.wanted.retire()
        assert self._nursery is not None
        for slot in fresh:
            await self._nursery.start(slot.run)
