"""The delivery loops: every committed notification reaches its sink, at least once.

One :class:`ChannelLoop` per enabled sink, all owned by :class:`Delivery` (started by
``engine/app.py``). A loop works through its channel's rows of the outbox
(``engine/store/outbox.py``), which is the queue: nothing lives only in memory, so a crash, a
restart or a mail server that is down for hours loses nothing.

- **Claim.** Up to ``CLAIM_ROWS`` due rows at a time, leased for longer than they can take
  (``SKIP LOCKED`` and the lease keep two claimers, in one process or several, from delivering
  a row twice at once). The fire recorder wakes every loop after each commit
  (:meth:`Delivery.wake`), so an idle loop delivers at once; otherwise a loop sleeps until its
  next row is due, at most ``POLL_S`` (the fallback, for rows queued by another process).
- **Deliver.** ``concurrency`` workers per sink, each delivery under its own deadline
  (``timeout_s``, a cancel scope): one sink hanging or failing never slows another sink, the
  recorder or the book, which share no lock or channel with it.
- **Settle.** Outcomes are recorded in batches, one statement each, as fast as the database
  takes them (a settle in flight lets the next outcomes gather behind it). A failure is retried
  after ``engine.backoff``'s full-jitter delay for the row's count of attempts (5 s doubling up
  to 6 h: about three hours over the default 12 attempts, much like the Standard Webhooks
  schedule), or after the receiver's ``Retry-After`` when later; after ``max_attempts`` the row
  is dead with its last error. A refusal is dead at once; a destination gone (a webhook's 410)
  is disabled too.
- **Shutdown.** Cancelling stops the claims; deliveries in flight get ``GRACE_S`` to finish
  (shielded), then what was settled is written, shielded and bounded too. A delivery cut short
  stays leased and undelivered, and is delivered again after the lease (here or by the next
  start): at least once, never lost.

``Delivery.send_now`` delivers one message outside the outbox, through a running loop's sink
(``POST /api/destinations/{id}/test``, an email confirmation code), and says what happened.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import msgspec
import trio

from engine.backoff import Backoff
from engine.errors import (
    DeliveryError,
    DeliveryFailed,
    DeliveryRefused,
    DestinationGone,
    SinkUnavailable,
    StoreUnavailable,
)
from engine.metrics import Counter, Metrics
from engine.model import FireChannels, Notification
from engine.plugins.sink import Sink
from engine.store.outbox import Claimed, Outbox, Outcomes

log = logging.getLogger(__name__)

POLL_S = 5.0  # the longest an idle loop sleeps without being woken
GRACE_S = 5.0  # at shutdown: how long deliveries in flight, then the last settle, may take
RETRY_BASE_S = 5.0
RETRY_CAP_S = 6 * 3600.0
STORE_BACKOFF = (0.1, 5.0)  # while the database is away: claims and settles wait like this
SETTLE_MAX = 512  # outcomes per settle statement
# Rows per claim: one statement per 256 rather than per 2 * concurrency took a 5,000-fire burst
# from 608 to 1,054 console notifications/s (``triggerbook bench sinks``).
CLAIM_ROWS = 256
BACKLOG_EVERY_S = 5.0  # how often the queue depth and age gauges are refreshed


class Outcome(msgspec.Struct, frozen=True):
    """What :meth:`Delivery.send_now` did: ``delivered``, ``failed`` (would be retried) or
    ``refused`` (would be dead), with the reason when not delivered."""

    state: str
    reason: str | None = None


class ChannelLoop:
    """One sink's claims, workers and settles (module docstring)."""

    def __init__(
        self,
        sink: Sink,
        outbox: Outbox,
        metrics: Metrics,
        retry_base_s: float = RETRY_BASE_S,
        retry_cap_s: float = RETRY_CAP_S,
    ) -> None:
        self.sink = sink
        self.name = sink.name
        self.outbox = outbox
        self.metrics = metrics
        self.concurrency = max(1, int(sink.config["concurrency"]))
        self.timeout_s = float(sink.config["timeout_s"])
        self.max_attempts = max(1, int(sink.config["max_attempts"]))
        self.batch = max(CLAIM_ROWS, 2 * self.concurrency)
        # A claimed row waits for at most batch/concurrency deliveries ahead of it, then takes
        # its own (a sole engine takes its leases back at start, so only several engines on one
        # database ever wait one out).
        self.lease_s = self.timeout_s * (math.ceil(self.batch / self.concurrency) + 1) + 30.0
        self.problem: str | None = None  # the channel is down (SinkUnavailable), for /readyz
        self.running = False
        self._wake = trio.Event()
        self._outcomes = Outcomes()
        self._outcomes_ready = trio.Event()
        self._disable: list[tuple[int, str]] = []  # destinations gone, to disable when settling
        self._in_flight: set[trio.CancelScope] = set()
        self._retry = Backoff(retry_base_s, retry_cap_s)
        self._retry_cap_s = retry_cap_s

    def wake(self) -> None:
        """Claim now: rows were just committed."""
        self._wake.set()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Deliver until cancelled; ``task_status.started()`` once the sink is open."""
        async with self.sink.open():
            send, receive = trio.open_memory_channel[Claimed](self.concurrency)
            try:
                async with trio.open_nursery() as nursery:
                    for _ in range(self.concurrency):
                        nursery.start_soon(self._worker, receive.clone())
                    nursery.start_soon(self._settler)
                    self.running = True
                    task_status.started()
                    await self._claimer(send)
            finally:
                self.running = False
                with trio.move_on_after(GRACE_S, shield=True):
                    await self._settle_all()

    # --- claims -------------------------------------------------------------------------

    async def _claimer(self, send: trio.MemorySendChannel[Claimed]) -> None:
        backoff = Backoff(*STORE_BACKOFF)
        try:
            async with send:
                while True:
                    self._wake = trio.Event()
                    try:
                        claimed = await self.outbox.claim(self.name, self.batch, self.lease_s)
                    except StoreUnavailable as exc:
                        pause = backoff.next_delay()
                        log.warning(
                            "%s: claiming failed (%s); retrying in %.2f s", self.name, exc, pause
                        )
                        await trio.sleep(pause)
                        continue
                    backoff.succeeded()
                    for item in claimed:
                        if item.dead_reason is not None:
                            self._record_dead(item.note, item.dead_reason)
                        else:
                            await send.send(item)
                    if len(claimed) < self.batch:
                        await self._idle()
        except trio.Cancelled:
            # Shutdown: deliveries in flight get GRACE_S more, not their whole timeout.
            deadline = trio.current_time() + GRACE_S
            for scope in self._in_flight:
                scope.deadline = min(scope.deadline, deadline)
            raise

    async def _idle(self) -> None:
        """Sleep until woken, until the next row is due, or ``POLL_S``, whichever is first."""
        try:
            due = await self.outbox.next_due(self.name)
        except StoreUnavailable:
            due = None
        pause = POLL_S
        if due is not None:
            pause = min(POLL_S, max(0.0, (due - datetime.now(UTC)).total_seconds()))
        if pause > 0:
            with trio.move_on_after(pause):
                await self._wake.wait()

    # --- deliveries ---------------------------------------------------------------------

    async def _worker(self, receive: trio.MemoryReceiveChannel[Claimed]) -> None:
        async with receive:
            async for item in receive:
                await self._deliver(item.note)

    async def _deliver(self, note: Notification) -> None:
        scope = trio.CancelScope(shield=True, deadline=trio.current_time() + self.timeout_s)
        self._in_flight.add(scope)
        try:
            with scope:
                error = await self._attempt(note)
        finally:
            self._in_flight.discard(scope)
        if scope.cancelled_caught:
            error = DeliveryFailed(f"timed out after {self.timeout_s:g} s")
        self._record(note, error)

    async def _attempt(self, note: Notification) -> DeliveryError | None:
        """One ``deliver``; the error it raised (None: delivered). A plugin's bug (anything
        but a delivery error) is logged with its traceback and retried like a failure: one
        broken sink must not stop the engine or lose the notification."""
        try:
            await self.sink.deliver(note)
        except DeliveryError as exc:
            return exc
        except Exception as exc:
            log.exception(
                "%s: deliver raised %s (a bug in the sink)", self.name, type(exc).__name__
            )
            return DeliveryFailed(f"the sink failed: {type(exc).__name__}")
        return None

    def _record(self, note: Notification, error: DeliveryError | None) -> None:
        if error is None:
            self.problem = None
            self._outcomes.delivered.append(note.id)
        elif isinstance(error, DeliveryRefused):
            if isinstance(error, DestinationGone) and note.destination is not None:
                self._disable.append((note.destination.id, error.reason))
            self._record_dead(note, error.reason)
            return
        else:
            assert isinstance(error, DeliveryFailed)
            if isinstance(error, SinkUnavailable):
                if self.problem != error.reason:
                    log.error("%s is unavailable: %s", self.name, error.reason)
                self.problem = error.reason
            attempts = note.attempts + 1
            self._count(self.metrics.delivery_failures)
            if attempts >= self.max_attempts:
                self._record_dead(note, f"gave up after {attempts} attempts: {error.reason}")
                return
            pause = self._retry.delay_after(attempts)
            if error.retry_after_s is not None and math.isfinite(error.retry_after_s):
                pause = max(pause, min(error.retry_after_s, self._retry_cap_s))
            due = datetime.now(UTC) + timedelta(seconds=pause)
            self._outcomes.retry.append((note.id, error.reason, due))
            log.info(
                "%s: notification %s failed (%s); retry in %.0f s",
                self.name,
                note.id,
                error.reason,
                pause,
            )
        self._outcomes_ready.set()

    def _record_dead(self, note: Notification, reason: str) -> None:
        log.warning("%s: notification %s is dead: %s", self.name, note.id, reason)
        self._outcomes.dead.append((note.id, reason))
        self._outcomes_ready.set()

    def _count(self, counter: Counter, amount: int = 1) -> None:
        counter.inc(amount, channel=self.name)

    # --- settles ------------------------------------------------------------------------

    async def _settler(self) -> None:
        backoff = Backoff(*STORE_BACKOFF)
        while True:
            await self._outcomes_ready.wait()
            self._outcomes_ready = trio.Event()
            try:
                await self._settle_all()
            except StoreUnavailable as exc:
                pause = backoff.next_delay()
                log.warning("%s: settling failed (%s); retrying in %.2f s", self.name, exc, pause)
                self._outcomes_ready.set()
                await trio.sleep(pause)
                continue
            backoff.succeeded()

    async def _settle_all(self) -> None:
        """Write every gathered outcome (in statements of at most ``SETTLE_MAX``); what could
        not be written stays gathered for the next call."""
        while self._disable:
            destination_id, reason = self._disable[0]
            await self.outbox.disable_destination(destination_id, reason)
            self._disable.pop(0)
        while self._outcomes:
            chunk = _take(self._outcomes, SETTLE_MAX)
            try:
                delivered, _retried, dead = await self.outbox.settle(chunk)
            except BaseException:
                _put_back(self._outcomes, chunk)
                raise
            if chunk.retry:
                self.wake()  # the claimer's idle sleep was sized before these were due
            if delivered:
                self._count(self.metrics.deliveries, delivered)
            if dead:
                self._count(self.metrics.notifications_dead, dead)


def _take(outcomes: Outcomes, limit: int) -> Outcomes:
    """Up to ``limit`` of ``outcomes``, removed from it."""
    chunk = Outcomes()
    for mine, theirs in (
        (chunk.delivered, outcomes.delivered),
        (chunk.retry, outcomes.retry),
        (chunk.dead, outcomes.dead),
    ):
        room = limit - len(chunk)
        mine.extend(theirs[:room])
        del theirs[:room]
    return chunk


def _put_back(outcomes: Outcomes, chunk: Outcomes) -> None:
    outcomes.delivered[:0] = chunk.delivered
    outcomes.retry[:0] = chunk.retry
    outcomes.dead[:0] = chunk.dead


class Delivery:
    """Every enabled sink's loop; what the recorder wakes and the web asks.

    ``sinks`` are configured instances by name (``FeedRegistry.sink``); ``retry_base_s`` and
    ``retry_cap_s`` the retries' first and largest ceilings (``[delivery]``). ``sole_engine``:
    no other engine delivers from this database (the default), so the start takes back every
    lease (:meth:`Outbox.release_leases`) and what a killed process had in flight goes out at
    once instead of after its lease.
    """

    def __init__(
        self,
        sinks: Mapping[str, Sink],
        outbox: Outbox,
        metrics: Metrics,
        *,
        retry_base_s: float = RETRY_BASE_S,
        retry_cap_s: float = RETRY_CAP_S,
        sole_engine: bool = True,
    ) -> None:
        self.sole_engine = sole_engine
        self.sinks = dict(sinks)
        # The channels an alert may name, in name order: the sinks that reach the account or
        # take destinations (fixed for the engine's life, so worked out once: every alert shown
        # over the API names them).
        self.kinds: tuple[str, ...] = tuple(
            sorted(n for n, s in self.sinks.items() if s.reaches_account or s.takes_destinations)
        )
        # The kinds a destination may have: the sinks that take destinations.
        self.destination_kinds: tuple[str, ...] = tuple(
            sorted(n for n, s in self.sinks.items() if s.takes_destinations)
        )
        self.outbox = outbox
        self.metrics = metrics
        self.loops = {
            name: ChannelLoop(sink, outbox, metrics, retry_base_s, retry_cap_s)
            for name, sink in self.sinks.items()
        }

    def fire_channels(self) -> FireChannels:
        """Which rows a fire queues, from the enabled sinks' kinds (``FireChannels``)."""
        names = sorted(self.sinks)
        return FireChannels(
            account=tuple(n for n in names if self.sinks[n].reaches_account),
            confirmed_account=tuple(
                n
                for n in names
                if self.sinks[n].reaches_account and self.sinks[n].config.get("confirm_account")
            ),
            destinations=self.destination_kinds,
        )

    def wake(self) -> None:
        """Every loop claims now (the fire recorder calls this after each commit)."""
        for loop in self.loops.values():
            loop.wake()

    def problems(self) -> dict[str, str]:
        """The channels that are down, with why (``/readyz``)."""
        return {name: loop.problem for name, loop in self.loops.items() if loop.problem}

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run every loop until cancelled; started once every sink is open."""
        if self.sole_engine:
            try:
                released = await self.outbox.release_leases()
            except StoreUnavailable as exc:
                log.warning("could not take back the outbox's leases (%s): they run out", exc)
            else:
                if released:
                    log.info("%d notifications were in flight at the last stop: due now", released)
        async with trio.open_nursery() as nursery:
            for loop in self.loops.values():
                await nursery.start(loop.run)
            nursery.start_soon(self._watch_backlog)
            task_status.started()

    async def send_now(self, note: Notification) -> Outcome:
        """Deliver ``note`` once, now, through its channel's running sink, outside the outbox
        (a test, a confirmation code); bounded by the sink's ``timeout_s``."""
        loop = self.loops.get(note.channel)
        if loop is None or not loop.running:
            return Outcome("failed", f"the {note.channel} sink is not running")
        error: DeliveryError | None = None
        with trio.move_on_after(loop.timeout_s) as scope:
            error = await loop._attempt(note)
        if scope.cancelled_caught:
            error = DeliveryFailed(f"timed out after {loop.timeout_s:g} s")
        if error is None:
            return Outcome("delivered")
        state = "refused" if isinstance(error, DeliveryRefused) else "failed"
        return Outcome(state, error.reason)

    async def _watch_backlog(self) -> None:
        """Refresh the queue depth and the oldest pending age per channel every
        ``BACKLOG_EVERY_S``: one grouped query on the pending index, so that a scrape of
        ``/metrics`` does no work of its own."""
        while True:
            try:
                backlog = await self.outbox.backlog()
            except StoreUnavailable:
                backlog = None
            if backlog is not None:
                now = datetime.now(UTC)
                for name in self.loops:
                    count, oldest = backlog.get(name, (0, now))
                    self.metrics.outbox_pending.set(count, channel=name)
                    age = max(0.0, (now - oldest).total_seconds())
                    self.metrics.outbox_oldest_age.set(age, channel=name)
            await trio.sleep(BACKLOG_EVERY_S)
