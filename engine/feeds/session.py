"""One WebSocket connection of an exchange feed: subscribe, receive, hand ticks to the book.

A :class:`Session` is given everything it works with (the exchange, the feed's
:class:`~engine.feeds.status.FeedState`, the tick channel, the feed's :class:`SkippedFrames`, its
slot's :class:`Dedupe` and :class:`Wanted`) and knows nothing of the slot or feed above it: it
reports what it holds through the ``FeedState`` (``connection_up``/``holds``/``down``,
``reject``) and its outcome through its slot's wrapper (``engine.feeds.slot``).

Subscriptions follow :class:`Wanted` through the pure plan (``engine.feeds.plan``): numbered
batches of at most ``symbols_per_message`` symbols sent with ``Exchange.subscribe_request`` /
``unsubscribe_request``, paced at ``max_messages_per_second`` (heartbeats included). A batch's
symbols count as subscribed from the moment it is sent; an error reply takes them out again.

Every frame takes one path, ``Session.frame_ticks``: parse, the range check (inline
comparisons; the slow path is :meth:`SkippedFrames.in_range`), the handover dedupe.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import trio
import trio_websocket

from engine.errors import BadFrame, FeedError, FeedStale, SubscriptionRejected
from engine.feeds.bounds import OUT_OF_RANGE, describe, tick_refusal
from engine.feeds.connection import DrainSignalStream, open_feed_connection
from engine.feeds.plan import Pacer, SentRequests, requests
from engine.feeds.status import FeedState
from engine.limits import MAX_PRICE, MIN_PRICE, TICK_TIME_MAX_MS
from engine.metrics import Metrics
from engine.model import Tick
from engine.plugins.exchange import Exchange

__all__ = ["DEDUPE_LIMIT", "HOLD_MAX", "Dedupe", "Session", "SkippedFrames", "Wanted"]

log = logging.getLogger(__name__)

DEDUPE_LIMIT = 1 << 16  # keys kept during a handover overlap before starting afresh
HOLD_MAX = 16  # ticks held for the book before it is woken even if the socket is not drained


class SkippedFrames:
    """A feed's skipped frames: counted in ``frames_skipped``, the first of each kind logged."""

    def __init__(self, name: str, metrics: Metrics) -> None:
        self.name = name
        self.metrics = metrics
        self._logged_kinds: set[str] = set()

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
        skipped ``out-of-range`` frame (the slow path of ``Session.frame_ticks``)."""
        kept = []
        for tick in ticks:
            reason = tick_refusal(tick)
            if reason is None:
                kept.append(tick)
            else:
                self.bad_frame(BadFrame(OUT_OF_RANGE, describe(tick, reason)))
        return kept


class Dedupe:
    """A slot's tick keys during a handover, when two connections deliver the same trades.

    Ticks are deduplicated on ``(symbol, exchange_time_ms, price)`` while :attr:`active`
    (dropping a genuine repeat of one price at one millisecond cannot lose a crossing: the first
    copy already fired every trigger it crosses).
    """

    def __init__(self) -> None:
        self.active = False
        self._keys: dict[tuple[str, int, Any], None] = {}
        self._handovers = 0

    def begin(self) -> None:
        """A handover starts: deduplicate from now on."""
        self._handovers += 1
        if self._handovers == 1:
            self._keys = {}
        self.active = True

    def end(self) -> None:
        """A handover is over (or failed): stop once none is left."""
        self._handovers -= 1
        if self._handovers == 0:
            self.active = False
            self._keys = {}

    def fresh(self, ticks: list[Tick]) -> list[Tick]:
        """``ticks`` not seen yet during this handover."""
        keys = self._keys
        fresh = []
        for tick in ticks:
            key = (tick.symbol, tick.exchange_time_ms, tick.price)
            if key not in keys:
                if len(keys) >= DEDUPE_LIMIT:
                    keys.clear()
                keys[key] = None
                fresh.append(tick)
        return fresh


class Wanted:
    """The symbols one slot's connections should hold; set by the feed, followed by sessions."""

    def __init__(self) -> None:
        self.symbols: frozenset[str] = frozenset()
        self.retired = False
        self.changed = trio.Event()  # set and replaced on every change

    def set(self, symbols: frozenset[str]) -> None:
        """Make ``symbols`` the slot's set and wake its sessions."""
        self.symbols = symbols
        self.wake()

    def retire(self) -> None:
        """The slot holds nothing more: its sessions unsubscribe and end."""
        self.symbols = frozenset()
        self.retired = True
        self.wake()

    def wake(self) -> None:
        """Make every session look again (a change here, or a rejection in the feed's state)."""
        self.changed.set()
        self.changed = trio.Event()


class Session:
    """One WebSocket connection of a slot, with what it has subscribed.

    ``started`` once subscribed and the first frame arrived (the connection is known live);
    ``error`` and ``ended`` are set by the slot that ran it (``engine.feeds.slot``).
    """

    def __init__(
        self,
        exchange: Exchange,
        state: FeedState,
        ticks: trio.MemorySendChannel[Tick],
        skipped: SkippedFrames,
        dedupe: Dedupe,
        wanted: Wanted,
    ) -> None:
        self.exchange = exchange
        self.state = state
        self.ticks = ticks
        self.skipped = skipped
        self.dedupe = dedupe
        self.wanted = wanted
        self.ws: trio_websocket.WebSocketConnection | None = None
        self.stream: DrainSignalStream | None = None
        self.pending: deque[Tick] = deque()  # parsed, not yet handed to the book
        self._releasing = False
        self.subscribed: set[str] = set()
        self.sent = SentRequests()
        # An exchange on the default subscribe_request puts no id of ours in its frames: an id
        # in its error replies is its own, and must not be read as one of ours.
        self.numbered = type(exchange).subscribe_request is not Exchange.subscribe_request
        self.pacer = Pacer(exchange.max_messages_per_second)
        self.ended = trio.Event()
        self.scope = trio.CancelScope()
        self.stale_scope = trio.CancelScope(deadline=math.inf)
        self.started = False
        self.error: BaseException | None = None
        self.opened_at = 0.0
        self.frame_ticks = self._frame_path()

    async def run(self, *, task_status: trio.TaskStatus[Session]) -> None:
        """Open, subscribe, wait for the first frame, ``started``; then receive until the
        connection fails (the error propagates), the session is retired and empty, or it is
        cancelled. Reported on the state as up from the handshake until the end."""
        ex = self.exchange
        try:
            async with open_feed_connection(
                ex.connect_url(), connect_timeout=ex.connect_timeout_s, on_drained=self.release
            ) as (ws, stream):
                self.ws = ws
                self.stream = stream
                self.opened_at = trio.current_time()
                self.state.connection_up(self)
                await self.sync()
                await self.first_frame()
                task_status.started(self)
                self.started = True
                with self.scope:
                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(self.follow)
                        if ex.heartbeat_interval_s:
                            nursery.start_soon(self.heartbeat, ex.heartbeat_interval_s)
                        await self.receive()
        finally:
            self.state.connection_down(self)

    # --- subscriptions ---------------------------------------------------------------------

    async def _send(self, frame: str) -> None:
        """Send one frame at the time the pacer books for it."""
        assert self.ws is not None
        at = self.pacer.reserve(trio.current_time())
        if at > trio.current_time():
            await trio.sleep_until(at)
        await self.ws.send_message(frame)

    async def sync(self) -> None:
        """Bring ``subscribed`` to the slot's symbols less the rejected ones, in numbered
        batches (``engine.feeds.plan.requests``)."""
        ex = self.exchange
        rejected = self.state.rejected
        want = {s for s in self.wanted.symbols if s not in rejected}
        batch = requests(self.subscribed, want, ex.symbols_per_message, self.sent.next_id)
        for request in batch:
            self.sent.record((request,))
            was_idle = not self.subscribed
            if request.op == "subscribe":
                frames = ex.subscribe_request(request.symbols, request.request_id)
                self.subscribed.update(request.symbols)  # before sending: a reply may be quick
                if was_idle:
                    self.touch()
            else:
                frames = ex.unsubscribe_request(request.symbols, request.request_id)
                self.subscribed.difference_update(request.symbols)
            self.state.connection_holds(self, frozenset(self.subscribed))
            for frame in frames:
                await self._send(frame)

    async def follow(self) -> None:
        """Re-sync whenever the slot's symbols change; end the session once retired and empty."""
        while True:
            changed = self.wanted.changed
            await self.sync()
            if self.wanted.retired and not self.subscribed:
                self.scope.cancel()
                return
            await changed.wait()

    async def heartbeat(self, interval: float) -> None:
        """Send the exchange's application-level ping every ``interval`` seconds."""
        frame = self.exchange.heartbeat_frame()
        if frame is None:
            return
        while True:
            await trio.sleep(interval)
            await self._send(frame)

    def rejected(self, exc: SubscriptionRejected) -> None:
        """Account for an error reply: the symbols it names, else those of the request whose
        number it carries (when the exchange takes our numbers), are recorded as rejected and
        no longer count as subscribed; a refused unsubscribe is only logged (its symbols are
        not wanted any more). A rejection that names neither is recorded as unattributed on
        this connection: the feed is not ready while it stands (see ``FeedState``)."""
        log.warning("%s: %s", self.exchange.name, exc)
        state = self.state
        state.last_error = str(exc)
        request = self.sent.take(exc.request_id) if self.numbered else None
        if request is not None and request.op == "unsubscribe" and not exc.symbols:
            return
        symbols = exc.symbols or (request.symbols if request is not None else ())
        if not symbols:
            state.reject_unattributed(self, exc.reason)
            return
        state.reject(symbols, exc.reason)
        self.subscribed.difference_update(symbols)
        state.connection_holds(self, frozenset(self.subscribed))
        self.wanted.wake()  # a handover's other connection drops them too

    # --- frames ----------------------------------------------------------------------------

    async def first_frame(self) -> None:
        """Wait for the first frame after subscribing: the connection is then known live."""
        if not self.subscribed:
            return
        assert self.ws is not None
        stale = self.exchange.stale_after_s
        try:
            with trio.fail_after(stale):
                frame = await self.ws.get_message()
        except trio.TooSlowError:
            name = self.exchange.name
            raise FeedStale(f"{name}: no frame for {stale:g}s while subscribed") from None
        for tick in self.frame_ticks(frame, time.monotonic_ns()):
            await self._deliver(tick)

    def _frame_path(self) -> Callable[[str | bytes, int], list[Tick]]:
        """Build :attr:`frame_ticks`, the ticks of one frame for the book (``[]`` for a bad
        frame or an error reply, each accounted for): the one path of every frame, the first
        one's and :meth:`receive`'s.

        A closure over what it uses, built once per connection: it runs on every frame, and
        attribute look-ups there are a measurable part of the feed path (``bench feed``). The
        range check is inline: a tick whose price is a Decimal within the limits (any precision)
        and whose time is in range passes at the cost of a few comparisons; anything else sends
        the frame's ticks through :meth:`SkippedFrames.in_range`, which applies
        ``limits.tick_problem`` itself.
        """
        state = self.state
        parse = self.exchange.parse
        skipped = self.skipped
        dedupe = self.dedupe
        rejected = self.rejected
        lo, hi, time_max = MIN_PRICE, MAX_PRICE, TICK_TIME_MAX_MS

        def frame_ticks(frame: str | bytes, now: int) -> list[Tick]:
            state.last_frame_ns = now
            try:
                ticks = parse(frame, now)
            except BadFrame as exc:
                skipped.bad_frame(exc)
                return []
            except SubscriptionRejected as exc:
                rejected(exc)
                return []
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
                ticks = skipped.in_range(ticks)
                break
            if dedupe.active:
                ticks = dedupe.fresh(ticks)
            return ticks

        return frame_ticks

    async def _deliver(self, tick: Tick) -> None:
        """Send with back-pressure; waiting on a full book does not count as staleness."""
        self.stale_scope.deadline = math.inf
        await self.ticks.send(tick)
        self.touch()  # the wait was the book's, not the exchange's: count from now

    def touch(self) -> None:
        """Push the staleness deadline: ``stale_after_s`` (+ the slack) from now while
        subscribed, none while not."""
        stale = self.exchange.stale_after_s
        if self.subscribed:
            self.stale_scope.deadline = trio.current_time() + stale + min(1.0, stale / 10)
        else:
            self.stale_scope.deadline = math.inf

    async def release(self) -> None:
        """Hand every held tick to the book, in order, waking it once for the lot.

        Called by the session after a message when the reader is idle or ``HOLD_MAX`` ticks
        are held, and by the reader itself (``on_drained``) when it has handed over every
        message of the bytes it read. Only one call sends at a time; ticks held meanwhile go out
        with it. ``send_nowait`` does not yield, so the book wakes once per release; a full book
        falls back to a waiting send (:meth:`_deliver`). A closed tick channel is a
        :class:`FeedError`: from the reader task, trio-websocket would take a
        ``BrokenResourceError`` for a dead socket and reconnect.
        """
        pending = self.pending
        if self._releasing or not pending:
            return
        send_nowait = self.ticks.send_nowait
        self._releasing = True
        try:
            while pending:
                tick = pending.popleft()
                try:
                    send_nowait(tick)
                except trio.WouldBlock:
                    await self._deliver(tick)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise FeedError(f"{self.exchange.name}: the book's tick channel is closed") from exc
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
        """
        assert self.ws is not None and self.stream is not None
        get_message = self.ws.get_message
        frame_ticks = self.frame_ticks
        pending = self.pending
        stream = self.stream
        release = self.release
        stale = self.exchange.stale_after_s
        slack_ns = int(min(1.0, stale / 10) * 1e9)
        pushed_ns = 0
        with self.stale_scope:
            self.touch()
            while True:
                try:
                    frame = await get_message()
                except trio_websocket.ConnectionClosed:
                    await release()
                    raise
                now = time.monotonic_ns()
                if now - pushed_ns > slack_ns:
                    pushed_ns = now
                    self.touch()
                ticks = frame_ticks(frame, now)
                if ticks:
                    pending.extend(ticks)
                    if stream.idle or len(pending) >= HOLD_MAX:
                        await release()
        raise FeedStale(f"{self.exchange.name}: no frame for {stale:g}s while subscribed")
