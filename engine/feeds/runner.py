"""The shared feed runner: one actor per enabled feed, every socket concern in one place.

``run_feeds`` starts, in its own nursery, an :class:`ExchangeFeed` per enabled WebSocket exchange
(driven by the exchange's pure description) and the ``run`` of each enabled
:class:`~engine.plugins.source.FeedSource`. Each gets its own clone of the tick channel.

An ``ExchangeFeed`` keeps ``demand.symbols(exchange)`` subscribed and nothing else. The symbols are
spread over *slots* of at most ``max_streams_per_connection``; each slot keeps one connection up:

- subscriptions follow demand live: a diff, batched ``symbols_per_message`` per frame, paced at
  ``max_messages_per_second`` per connection (heartbeats included);
- staleness is a cancel scope around the receive loop whose deadline each frame pushes to
  ``stale_after_s`` (plus a slack of at most 1 s) ahead while subscribed; expiry is
  :class:`FeedStale` and a reconnect. Waiting on a full book is not staleness;
- the reconnect loop catches the named set :data:`RECONNECT_ERRORS` only, sleeps
  ``uniform(0, min(cap, base * 2**attempt))`` (full jitter, ``engine.backoff``), resets the
  attempt count once a connection stayed up ``healthy_after_s``, logs one line per attempt with
  the real cause (:func:`failure_reason`; the traceback at debug level);
  anything else propagates and stops the engine (a bug must not become a silent reconnect loop);
- a documented forced disconnect (``forced_disconnect_after_s``, Binance's 24 h) is preempted:
  ``handover_lead_s`` before it, the slot opens the next connection, subscribes, waits for its
  first frame (the subscribe ack on Binance), and only ``handover_overlap_s`` later closes the old
  one. During the overlap both deliver the same trades; ticks are deduplicated on
  ``(symbol, exchange_time_ms, price)``. Dropping a genuine repeat of the same price at the same
  millisecond cannot lose a crossing: the first copy already fired every trigger it crosses;
- a bad frame (:class:`BadFrame`) is counted in ``frames_skipped``, logged once per kind with a
  sample, and skipped; an error reply (:class:`SubscriptionRejected`) records the symbols in
  ``FeedState.rejected`` (shown on ``/readyz``); neither drops the connection;
- a tick out of ``engine.limits`` (``limits.tick_problem``: a price of ``1e30``, a time past the
  year 9999) never reaches the book: counted as a skipped frame of kind ``out-of-range``, logged
  once, skipped (``engine.feeds.bounds``). Sources get a channel that does the same;
- with a symbol directory (``engine.feeds.symbols``), the demand is filtered through it first: a
  symbol the exchange's list says it does not trade, or one it cannot spell, is never
  subscribed (invented symbols must not open connections that the exchange then bans).

The per-frame path is: ``get_message``, ``time.monotonic_ns()``, ``exchange.parse``, the range
check, the ticks held until the socket is drained, then ``ticks.send_nowait`` per tick (see
:meth:`_Session.receive` and ``engine.feeds.connection``).
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import trio
import trio_websocket

from engine.backoff import Backoff
from engine.config import Config
from engine.errors import (
    BadFrame,
    FeedClosed,
    FeedError,
    FeedStale,
    PluginError,
    SubscriptionRejected,
)
from engine.feeds.bounds import OUT_OF_RANGE, BoundedTicks, describe, tick_refusal
from engine.feeds.connection import DrainSignalStream, open_feed_connection
from engine.feeds.status import FeedState, FeedStates
from engine.limits import MAX_PRICE, MIN_PRICE, TICK_TIME_MAX_MS
from engine.metrics import Metrics
from engine.model import Tick
from engine.plugins.exchange import Exchange
from engine.plugins.registry import FeedRegistry
from engine.plugins.source import FeedSource

if TYPE_CHECKING:
    from engine.feeds.symbols import SymbolDirectory

log = logging.getLogger(__name__)

RECONNECT_ERRORS: tuple[type[Exception], ...] = (
    trio_websocket.HandshakeError,  # includes ConnectionRejected and ConnectionTimeout
    trio_websocket.ConnectionClosed,
    OSError,
    trio.TooSlowError,
    FeedClosed,
    FeedStale,
)
DEDUPE_LIMIT = 1 << 16  # keys kept during a handover overlap before starting afresh
HOLD_MAX = 16  # ticks held for the book before it is woken even if the socket is not drained


async def run_feeds(
    config: Config,
    registry: FeedRegistry,
    ticks: trio.MemorySendChannel[Tick],
    demand: Any,
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
    demand: Any,
    state: FeedState,
    metrics: Metrics,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    channel: Any = ticks if source.checks_ticks else BoundedTicks(ticks, source.name, metrics)
    async with ticks:
        await source.run(channel, demand, state, metrics, task_status=task_status)


def first_leaf(group: BaseExceptionGroup[Any]) -> BaseException:
    """The first plain exception in a (possibly nested) exception group."""
    exc: BaseException = group
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc


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


class ExchangeFeed:
    """The actor of one WebSocket exchange: demand -> slots -> connections -> ticks."""

    def __init__(self, exchange: Exchange, demand: Any, state: FeedState, metrics: Metrics) -> None:
        self.exchange = exchange
        self.name = exchange.name
        self.demand = demand
        self.state = state
        self.metrics = metrics
        self.slots: list[_Slot] = []
        self.live_sessions: set[_Session] = set()
        self.ticks: trio.MemorySendChannel[Tick] | None = None
        self._logged_kinds: set[str] = set()
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
            seen = self.demand.version(self.name)
            await self._apply(self.demand.symbols(self.name))
            task_status.started()
            while True:
                seen = await self.demand.wait_changed(self.name, seen)
                await self._apply(self.demand.symbols(self.name))

    async def _apply(self, wanted: frozenset[str]) -> None:
        """Spread ``wanted`` over the slots; start new slots, retire empty ones."""
        state = self.state
        state.wanted = frozenset(wanted)
        for symbol in [s for s in state.rejected if s not in wanted]:
            del state.rejected[symbol]
        held = set().union(*(slot.want for slot in self.slots))
        removed = held - wanted
        added = sorted(wanted - held)
        cap = self.exchange.max_streams_per_connection
        touched: set[_Slot] = set()
        for slot in self.slots:
            if slot.want & removed:
                slot.want -= removed
                touched.add(slot)
        fresh: list[_Slot] = []
        for symbol in added:
            slot = next((s for s in self.slots if len(s.want) < cap), None)
            if slot is None:
                slot = _Slot(self)
                self.slots.append(slot)
                fresh.append(slot)
            slot.want.add(symbol)
            touched.add(slot)
        for slot in [s for s in self.slots if not s.want]:
            slot.retired = True
            self.slots.remove(slot)
        for slot in touched:
            slot.wake()
        assert self._nursery is not None
        for slot in fresh:
            if not slot.retired:
                await self._nursery.start(slot.run)
        self.refresh()

    def refresh(self) -> None:
        """Recompute ``state.symbols`` and ``state.connected`` from the live sessions."""
        sessions = self.live_sessions
        self.state.symbols = frozenset().union(*(s.subscribed for s in sessions))
        if sessions:
            self.state.mark_connected()
        else:
            self.state.mark_disconnected()

    def bad_frame(self, exc: BadFrame) -> None:
        """Count a skipped frame; log the first of each kind with its sample."""
        self.metrics.frames_skipped.inc(exchange=self.name, kind=exc.kind)
        if exc.kind not in self._logged_kinds:
            self._logged_kinds.add(exc.kind)
            log.warning(
                "%s: skipping a bad frame (%s; further ones of this kind are only counted): %s",
                self.name,
                exc.kind,
                exc.sample,
            )

    def in_range(self, ticks: list[Tick]) -> list[Tick]:
        """``ticks`` without those out of ``engine.limits``, each counted and logged as a
        skipped ``out-of-range`` frame (the slow path of the check in :meth:`_Session.receive`)."""
        kept = []
        for tick in ticks:
            reason = tick_refusal(tick)
            if reason is None:
                kept.append(tick)
            else:
                self.bad_frame(BadFrame(OUT_OF_RANGE, describe(tick, reason)))
        return kept

    def rejected(self, exc: SubscriptionRejected, session: _Session) -> None:
        """Record the symbols an exchange refused; they are not asked for again until demand
        drops and re-adds them."""
        log.warning("%s: %s", self.name, exc)
        self.state.last_error = str(exc)
        for symbol in exc.symbols:
            self.state.rejected[symbol] = exc.reason
            for other in session.slot.sessions:
                other.subscribed.discard(symbol)
        self.refresh()

    def failed(self, exc: BaseException, delay: float) -> None:
        """Account for a lost or failed connection before backing off ``delay`` seconds."""
        self.state.reconnects += 1
        self.state.last_error = failure_reason(exc)
        self.metrics.feed_reconnects.inc(exchange=self.name)
        # One line per attempt with the real cause; the traceback only at debug level (an
        # exchange that is down for an hour must not fill the log with tracebacks).
        log.warning(
            "%s: connection failed (%s); reconnecting in %.2fs",
            self.name,
            self.state.last_error,
            delay,
        )
        log.debug("%s: the failed connection's traceback", self.name, exc_info=exc)


class _Slot:
    """Up to ``max_streams_per_connection`` symbols, kept subscribed over one connection (two
    during a handover)."""

    def __init__(self, feed: ExchangeFeed) -> None:
        self.feed = feed
        self.want: set[str] = set()
        self.retired = False
        self.sessions: list[_Session] = []
        self.dedupe: dict[tuple[str, int, Any], None] | None = None
        self._handovers = 0

    def wake(self) -> None:
        for session in self.sessions:
            session.changed.set()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Keep a connection up until retired (its symbols all gone)."""
        ex = self.feed.exchange
        backoff = Backoff(ex.backoff_base_s, ex.backoff_cap_s, healthy_after_s=ex.healthy_after_s)
        current: _Session | None = None
        async with trio.open_nursery() as nursery:
            task_status.started()
            while not self.retired:
                handover = current is not None and not current.ended.is_set()
                if handover:
                    self._handovers += 1
                    self.dedupe = {}
                error: BaseException | None = None
                try:
                    new: _Session = await nursery.start(self._session)
                except* RECONNECT_ERRORS as group:
                    error = first_leaf(group)
                if error is not None:
                    if handover:
                        self._handover_done()
                    delay = backoff.next_delay()
                    self.feed.failed(error, delay)
                    await trio.sleep(delay)
                    continue
                if handover and current is not None:
                    nursery.start_soon(self._retire, current)
                current = new
                forced = ex.forced_disconnect_after_s
                deadline = new.opened_at + forced - ex.handover_lead_s if forced else math.inf
                with trio.move_on_at(deadline):
                    await new.ended.wait()
                if not new.ended.is_set():
                    continue  # time to hand over: the next iteration opens the next connection
                current = None
                backoff.succeeded(trio.current_time() - new.opened_at)
                if new.error is not None:
                    delay = backoff.next_delay()
                    self.feed.failed(new.error, delay)
                    await trio.sleep(delay)

    async def _retire(self, old: _Session) -> None:
        """Close ``old`` once the overlap has passed (the new session is live)."""
        await trio.sleep(self.feed.exchange.handover_overlap_s)
        old.scope.cancel()
        await old.ended.wait()
        self._handover_done()

    def _handover_done(self) -> None:
        self._handovers -= 1
        if self._handovers == 0:
            self.dedupe = None

    async def _session(self, *, task_status: trio.TaskStatus[_Session]) -> None:
        """One connection: open, subscribe, first frame, ``started``; then run until it fails,
        is retired, or is cancelled. Errors before ``started`` propagate to the slot's loop;
        reconnectable ones after it are recorded in ``session.error``."""
        ex = self.feed.exchange
        session = _Session(self)
        try:
            async with open_feed_connection(
                ex.connect_url(), connect_timeout=ex.connect_timeout_s, on_drained=session.release
            ) as (ws, stream):
                session.ws = ws
                session.stream = stream
                session.opened()
                await session.sync()
                await session.first_frame()
                task_status.started(session)
                session.started = True
                with session.scope:
                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(session.follow_demand)
                        if ex.heartbeat_interval_s:
                            nursery.start_soon(session.heartbeat, ex.heartbeat_interval_s)
                        await session.receive()
        except* RECONNECT_ERRORS as group:
            if not session.started:
                raise
            session.error = first_leaf(group)
        finally:
            session.closed()


class _Session:
    """One WebSocket connection of a slot, with what it has subscribed."""

    def __init__(self, slot: _Slot) -> None:
        self.slot = slot
        self.feed = slot.feed
        self.ws: trio_websocket.WebSocketConnection | None = None
        self.stream: DrainSignalStream | None = None
        self.pending: deque[Tick] = deque()  # parsed, not yet handed to the book
        self._releasing = False
        self.subscribed: set[str] = set()
        self.changed = trio.Event()
        self.ended = trio.Event()
        self.scope = trio.CancelScope()
        self.stale_scope = trio.CancelScope(deadline=math.inf)
        self.started = False
        self.error: BaseException | None = None
        self.opened_at = 0.0
        self._next_send_at = -math.inf

    def opened(self) -> None:
        self.opened_at = trio.current_time()
        self.slot.sessions.append(self)
        self.feed.live_sessions.add(self)
        self.feed.refresh()

    def closed(self) -> None:
        if self in self.slot.sessions:
            self.slot.sessions.remove(self)
        self.feed.live_sessions.discard(self)
        self.ended.set()
        self.feed.refresh()

    async def _send(self, frame: str) -> None:
        """Send one frame, no faster than ``max_messages_per_second`` on this connection."""
        assert self.ws is not None
        now = trio.current_time()
        if self._next_send_at > now:
            await trio.sleep_until(self._next_send_at)
            now = trio.current_time()
        self._next_send_at = now + 1.0 / self.feed.exchange.max_messages_per_second
        await self.ws.send_message(frame)

    async def sync(self) -> None:
        """Bring ``subscribed`` to the slot's ``want`` (minus rejected symbols)."""
        ex = self.feed.exchange
        rejected = self.feed.state.rejected
        want = {s for s in self.slot.want if s not in rejected}
        gone = sorted(self.subscribed - want)
        if gone:
            for frame in ex.unsubscribe_frames(gone):
                await self._send(frame)
            self.subscribed.difference_update(gone)
            self.feed.refresh()
        new = sorted(want - self.subscribed)
        if new:
            for frame in ex.subscribe_frames(new):
                await self._send(frame)
            was_idle = not self.subscribed
            self.subscribed.update(new)
            if was_idle:
                self.touch()
            self.feed.refresh()

    async def follow_demand(self) -> None:
        """Re-sync whenever the slot's symbols change; end the session once retired and empty."""
        while True:
            self.changed = trio.Event()
            await self.sync()
            if self.slot.retired and not self.subscribed:
                self.scope.cancel()
                return
            await self.changed.wait()

    async def heartbeat(self, interval: float) -> None:
        """Send the exchange's application-level ping every ``interval`` seconds."""
        frame = self.feed.exchange.heartbeat_frame()
        if frame is None:
            return
        while True:
            await trio.sleep(interval)
            await self._send(frame)

    async def first_frame(self) -> None:
        """Wait for the first frame after subscribing: the connection is then known live."""
        if not self.subscribed:
            return
        await self._handle(await self._get_message())

    async def _get_message(self) -> str | bytes:
        assert self.ws is not None
        stale = self.feed.exchange.stale_after_s if self.subscribed else math.inf
        try:
            with trio.fail_after(stale):
                return await self.ws.get_message()
        except trio.TooSlowError:
            raise FeedStale(f"{self.feed.name}: no frame for {stale:g}s while subscribed") from None

    async def _handle(self, frame: str | bytes) -> None:
        """Parse one frame and pass its ticks on (the slow path of :meth:`receive`)."""
        ticks = self._parse(frame, time.monotonic_ns())
        for tick in ticks:
            await self._deliver(tick)

    def _parse(self, frame: str | bytes, now: int) -> list[Tick]:
        """The frame's ticks (``[]`` for a bad frame or an error reply, each accounted for);
        :meth:`receive` inlines the same steps."""
        self.feed.state.last_frame_ns = now
        try:
            ticks = self.feed.exchange.parse(frame, now)
        except (BadFrame, SubscriptionRejected) as exc:
            self._refused(exc)
            return []
        return self._fresh(self.feed.in_range(ticks))

    def _refused(self, exc: BadFrame | SubscriptionRejected) -> None:
        if isinstance(exc, BadFrame):
            self.feed.bad_frame(exc)
        else:
            self.feed.rejected(exc, self)

    def _fresh(self, ticks: list[Tick]) -> list[Tick]:
        """``ticks`` not seen yet on this slot during a handover (see the module doc)."""
        dedupe = self.slot.dedupe
        if dedupe is None:
            return ticks
        fresh = []
        for tick in ticks:
            key = (tick.symbol, tick.exchange_time_ms, tick.price)
            if key not in dedupe:
                if len(dedupe) >= DEDUPE_LIMIT:
                    dedupe.clear()
                dedupe[key] = None
                fresh.append(tick)
        return fresh

    async def _deliver(self, tick: Tick) -> None:
        """Send with back-pressure; waiting on a full book does not count as staleness."""
        assert self.feed.ticks is not None
        self.stale_scope.deadline = math.inf
        await self.feed.ticks.send(tick)
        self.touch()  # the wait was the book's, not the exchange's: count from now

    def touch(self) -> None:
        """Push the staleness deadline: ``stale_after_s`` (+ the slack) from now while
        subscribed, none while not."""
        ex = self.feed.exchange
        stale = ex.stale_after_s
        if self.subscribed:
            self.stale_scope.deadline = trio.current_time() + stale + min(1.0, stale / 10)
        else:
            self.stale_scope.deadline = math.inf

    async def release(self) -> None:
        """Hand every held tick to the book, in order, waking it once for the lot.

        Called by the feed after a message when the reader is idle or ``HOLD_MAX`` ticks are
        held, and by the reader itself (``on_drained``) when it has handed over every message
        of the bytes it read. Only one call sends at a time; ticks held meanwhile go out with
        it. ``send_nowait`` does not yield, so the book wakes once per release; a full book
        falls back to a waiting send (:meth:`_deliver`). A closed tick channel is a
        :class:`FeedError`: from the reader task, trio-websocket would take a
        ``BrokenResourceError`` for a dead socket and reconnect.
        """
        pending = self.pending
        if self._releasing or not pending:
            return
        assert self.feed.ticks is not None
        send_nowait = self.feed.ticks.send_nowait
        self._releasing = True
        try:
            while pending:
                tick = pending.popleft()
                try:
                    send_nowait(tick)
                except trio.WouldBlock:
                    await self._deliver(tick)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise FeedError(f"{self.feed.name}: the book's tick channel is closed") from exc
        finally:
            self._releasing = False

    async def receive(self) -> None:
        """The per-frame loop; raises :class:`FeedStale` or a connection error to end it.

        Staleness is one cancel scope around the loop whose deadline is pushed on a frame at
        most every ``slack = min(1 s, stale_after_s / 10)``, so it fires between
        ``stale_after_s`` and ``stale_after_s + slack`` after the last frame. (A
        ``fail_after`` per ``get_message`` is the same contract but costs a scope per frame:
        measured, 15% of the whole feed path.)

        Ticks are held in ``pending`` while the reader still has messages to hand over, and
        released together (:meth:`release`) when it asks the socket for more bytes or after
        ``HOLD_MAX`` ticks, so the book wakes once per burst instead of once per frame (see
        ``engine.feeds.connection``). No tick waits for a later frame: whichever of the two
        tasks acts last on a burst releases it. A closing connection releases what it holds
        before the error ends the session.

        The range check is inline: a tick whose price is a Decimal within the limits (any
        precision) and whose time is in range passes at the cost of a few comparisons; anything
        else sends the frame's ticks through :meth:`ExchangeFeed.in_range`, which applies
        ``limits.tick_problem`` itself.
        """
        assert self.ws is not None and self.stream is not None
        get_message = self.ws.get_message
        parse = self.feed.exchange.parse
        state = self.feed.state
        slot = self.slot
        pending = self.pending
        stream = self.stream
        release = self.release
        stale = self.feed.exchange.stale_after_s
        slack_ns = int(min(1.0, stale / 10) * 1e9)
        pushed_ns = 0
        in_range = self.feed.in_range
        lo, hi, time_max = MIN_PRICE, MAX_PRICE, TICK_TIME_MAX_MS
        with self.stale_scope:
            self.touch()
            while True:
                try:
                    frame = await get_message()
                except trio_websocket.ConnectionClosed:
                    await release()
                    raise
                now = time.monotonic_ns()
                state.last_frame_ns = now
                if now - pushed_ns > slack_ns:
                    pushed_ns = now
                    self.touch()
                try:
                    ticks = parse(frame, now)
                except (BadFrame, SubscriptionRejected) as exc:
                    self._refused(exc)
                    continue
                for tick in ticks:
                    price = tick.price
                    try:
                        if (
                            type(price) is Decimal
                            and lo <= price <= hi
                            and 0 <= tick.exchange_time_ms <= time_max
                        ):
                            continue
                    except (ArithmeticError, TypeError):
                        pass
                    ticks = in_range(ticks)
                    break
                if slot.dedupe is not None:
                    ticks = self._fresh(ticks)
                if ticks:
                    pending.extend(ticks)
                    if stream.idle or len(pending) >= HOLD_MAX:
                        await release()
        raise FeedStale(f"{self.feed.name}: no frame for {stale:g}s while subscribed")
