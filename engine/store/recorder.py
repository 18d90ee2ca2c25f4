"""The fire recorder: the actor between the book and the database.

It receives :class:`Fire`\\ s, takes everything else already queued (up to a cap) and commits the
lot with one :meth:`Store.record_fires`, so a burst costs one round trip rather than one per
fire. A batch is never dropped: while the database is away it is retried with capped
exponential backoff and full jitter (``engine.backoff``: ceilings from 0.05 s doubling up to
5 s, afresh for each batch), and the book keeps running (the channel's buffer absorbs the
backlog, then back-pressure reaches the book).

Recording is idempotent: only alerts still ``created`` change, so a batch retried after an
ambiguous failure (the commit happened but the answer was lost) adds no second outbox row.

A fire not yet committed lives only in memory, and a ``kill -9`` loses it: its alert is still
``created``, so the next start puts it back in the book, where it fires again only on a new
crossing. In normal running that window is one commit (milliseconds). While the database is
away it lasts the whole outage (backoff pauses up to 5 s, for as long as it takes), and the
fire channel's buffer (4,096 fires in the engine) fills with more. With a
:class:`~engine.store.journal.FireJournal` that window is closed: a batch that fails is appended
to the journal (``fsync``, in a worker thread) before it is retried, and through each backoff
pause the recorder keeps taking the fires the book sends (up to ``HOLD_MAX`` in hand),
journalling each as it comes, so the book keeps running and what it fired is on disk within an
``fsync`` (milliseconds). The journal is emptied once they are committed, and replayed at the
next start otherwise (``engine.store.journal.replay``, before the book is loaded). What is left
in memory only: fires that arrive during a failing attempt itself (until it fails: at once for
a server that is down, up to the connection timeout for one that does not answer); past
``HOLD_MAX`` fires in one outage, the book is held back (back-pressure) and the channel's buffer;
and everything when the journal cannot be written (a full disk: logged, the fires kept in
memory as before).

A batch the database refuses (:class:`StoreRefused`: a tick time or price outside what it
holds) is never retried as it is, and never stops the recorder: it is bisected, one trigger per
fire, down to the refused fires, while everything else is recorded (k refused fires among n
cost about 2k log2(n) more statements). A refused fire whose tick carries an exchange time is
tried once more without it (the alert is then recorded with no ``tick_time``, and the tick time
quarantined); if it is still refused it is quarantined (``engine/quarantine.py``: counted,
logged, shown on the alert) and left ``created``, to be loaded again at the next start.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from functools import partial

import msgspec
import trio

from engine.backoff import Backoff
from engine.errors import StoreRefused, StoreUnavailable
from engine.events import FireEvent, FirePublisher
from engine.metrics import Metrics
from engine.model import Fire, FireChannels
from engine.quarantine import Quarantine
from engine.store.journal import FireJournal
from engine.store.store import Store

log = logging.getLogger(__name__)

MAX_BATCH = 4096  # fires per commit; a tick rarely fires more than a handful
GRACE_S = 10.0  # at shutdown, how long the final flush may take
BACKOFF_FIRST_S = 0.05
BACKOFF_CAP_S = 5.0
Take = Callable[[int], Awaitable[list[Fire]]]  # (limit) -> the next fires the book sends
HOLD_MAX = 65_536  # fires taken in and journalled while the database is away, before back-pressure


async def run_fire_recorder(
    store: Store,
    fires: trio.MemoryReceiveChannel[Fire],
    channels: FireChannels | Sequence[str],
    metrics: Metrics,
    quarantine: Quarantine,
    *,
    committed: Callable[[], None] | None = None,
    publisher: FirePublisher | None = None,
    journal: FireJournal | None = None,
    max_batch: int = MAX_BATCH,
    grace_s: float = GRACE_S,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Record fires until ``fires`` is closed by its senders (then flush and return) or the
    task is cancelled (then flush what it holds and what is queued, shielded, for at most
    ``grace_s``; fires still unrecorded after that stay ``created`` in the database, and are in
    ``journal`` when one is given).

    ``channels`` says which outbox rows a fire queues (``Store.record_fires``); ``committed`` is
    called after each batch that queued any (the delivery loops' wake-up, so a notification
    waits for no poll). ``publisher`` gets a :class:`FireEvent` per alert each commit marked,
    after that commit (never for a fire not recorded). ``journal`` keeps the fires of a batch
    that could not be committed until they are (see the module docstring). A fire the database
    refuses goes to ``quarantine``. Raises whatever :meth:`Store.record_fires` raises other
    than :class:`StoreUnavailable` and :class:`StoreRefused` (a bug, not an outage or a
    value), after which the engine stops.
    """
    if not isinstance(channels, FireChannels):
        channels = FireChannels(account=tuple(dict.fromkeys(channels)))
    recorder = _Recorder(store, channels, metrics, quarantine, committed, journal, publisher)
    batch: list[Fire] = []
    task_status.started()
    async with fires:  # closed only after the final drain below
        try:
            while True:
                if not batch:
                    try:
                        batch.append(await fires.receive())
                    except trio.EndOfChannel:
                        return
                _drain(fires, batch, max_batch)
                await recorder.commit(batch, partial(_take, fires))
                batch.clear()
        finally:
            _drain(fires, batch, limit=None)
            if batch:
                await _flush(recorder, batch, grace_s)


async def _flush(recorder: _Recorder, batch: list[Fire], grace_s: float) -> None:
    """The final commit at shutdown: shielded, bounded by ``grace_s``."""
    with trio.move_on_after(grace_s, shield=True) as scope:
        await recorder.commit(batch)
    if scope.cancelled_caught:
        log.error(
            "shutdown: %d fires not recorded within %.1f s; their alerts stay 'created': %s",
            len(batch),
            grace_s,
            "recorded from the journal at the next start"
            if recorder.journal is not None
            else "back in the book at the next start",
        )


async def _take(fires: trio.MemoryReceiveChannel[Fire], limit: int) -> list[Fire]:
    """Wait for a fire, then take what is queued: at most ``limit`` (none once the channel is
    closed). Nothing is lost to a cancellation: a memory channel's ``receive`` then takes
    nothing, and nothing awaits after it."""
    taken: list[Fire] = []
    try:
        taken.append(await fires.receive())
    except trio.EndOfChannel:
        return taken
    _drain(fires, taken, limit)
    return taken


def _drain(fires: trio.MemoryReceiveChannel[Fire], batch: list[Fire], limit: int | None) -> None:
    """Move what is already queued into ``batch`` without waiting, up to ``limit`` in all."""
    while limit is None or len(batch) < limit:
        try:
            batch.append(fires.receive_nowait())
        except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
            return


class _Recorder:
    """What one recorder commits with: the store, the channels, where counts and refusals go."""

    def __init__(
        self,
        store: Store,
        channels: FireChannels,
        metrics: Metrics,
        quarantine: Quarantine,
        committed: Callable[[], None] | None,
        journal: FireJournal | None = None,
        publisher: FirePublisher | None = None,
    ) -> None:
        self.journal = journal
        self.publisher = publisher
        self.journalled = False  # the journal holds fires not yet recorded
        self.store = store
        self.channels = channels
        self.committed = committed
        self.metrics = metrics
        self.quarantine = quarantine

    async def commit(self, batch: list[Fire], take_more: Take | None = None) -> None:
        """Record ``batch``; what the database refuses is isolated and quarantined. While the
        database is away, the fires ``take_more(limit)`` brings during each backoff pause
        join ``batch`` (journalled, then recorded with it). The journal is emptied once
        ``batch`` is done."""
        try:
            await self.record(batch, take_more)
        except StoreRefused as refusal:
            units = [
                fire if len(fire.triggers) == 1 else msgspec.structs.replace(fire, triggers=(t,))
                for fire in batch
                for t in fire.triggers
            ]
            await self._isolate(units, refusal)
        if self.journalled and self.journal is not None:
            await self._journal(self.journal.clear)
            self.journalled = False

    async def record(self, fires: list[Fire], take_more: Take | None = None) -> list[int]:
        """One ``record_fires`` for ``fires``, retried while the database is away (until it
        succeeds or we are cancelled); with a journal, the fires are journalled before the
        first retry, and those ``take_more`` brings during a pause as they come. Raises
        :class:`StoreRefused` at once."""
        backoff = Backoff(BACKOFF_FIRST_S, BACKOFF_CAP_S)
        journalled = 0 if self.journal is not None else len(fires)
        while True:
            publishing = self.publisher is not None and self.publisher.wanted
            owners: dict[int, int] = {}
            try:
                if publishing:  # asked only then: the recorder's test doubles take two arguments
                    marked = await self.store.record_fires(fires, self.channels, owners)
                else:
                    marked = await self.store.record_fires(fires, self.channels)
            except StoreUnavailable as exc:
                pause = backoff.next_delay()
                self.metrics.store_retries.inc()
                log.warning(
                    "recording %d fires failed (attempt %d: %s); retrying in %.2f s",
                    len(fires),
                    backoff.attempt,
                    exc,
                    pause,
                )
                deadline = trio.current_time() + pause
                while self.journal is not None:  # journal what is held, then what comes
                    if journalled < len(fires):
                        if await self._journal(partial(self.journal.append, fires[journalled:])):
                            self.journalled = True
                        journalled = len(fires)
                    left, room = deadline - trio.current_time(), HOLD_MAX - len(fires)
                    if take_more is None or left <= 0 or room <= 0:
                        break
                    more: list[Fire] = []
                    with trio.move_on_after(left):
                        more = await take_more(room)
                    if not more:  # the pause is over (or the book has stopped)
                        break
                    fires.extend(more)
                await trio.sleep_until(deadline)
                continue
            self.metrics.fires_recorded.inc(len(marked))
            if marked and self.committed is not None:
                self.committed()
            if owners and self.publisher is not None:
                self.publisher.publish(_events(fires, owners))
            return marked

    async def _isolate(self, units: list[Fire], refusal: StoreRefused) -> None:
        """Record what can be of ``units`` (one trigger each), which the database refused as a
        whole with ``refusal``.

        Halves are tried in turn; when the first half is recorded, the refusal lies in the
        second, which is split again without being tried whole (so a single refused unit is
        reached with the refusal that names it).
        """
        if len(units) == 1:
            await self._set_aside(units[0], refusal)
            return
        half = len(units) // 2
        first, second = units[:half], units[half:]
        try:
            await self.record(first)
        except StoreRefused as exc:
            await self._isolate(first, exc)
        else:
            await self._isolate(second, refusal)
            return
        try:
            await self.record(second)
        except StoreRefused as exc:
            await self._isolate(second, exc)

    async def _set_aside(self, fire: Fire, refusal: StoreRefused) -> None:
        """One refused fire of one trigger: tried once more without its tick time (when it has
        one), else quarantined. Never retried again: its alert stays ``created``, out of the
        book until the next start loads it again."""
        trigger, tick = fire.triggers[0], fire.tick
        if tick.exchange_time_ms:
            untimed = msgspec.structs.replace(
                fire, tick=msgspec.structs.replace(tick, exchange_time_ms=0)
            )
            try:
                await self.record([untimed])
            except StoreRefused as exc:
                refusal = exc
            else:
                self.quarantine.add(
                    "tick",
                    f"the exchange's tick time ({tick.exchange_time_ms} ms) was refused by the "
                    f"database ({refusal}); the fire is recorded without it",
                    alert_id=trigger.id,
                    sample=_sample(fire),
                )
                return
        self.quarantine.add(
            "fire",
            f"the alert fired but the fire was not recorded ({refusal}); "
            f"it is live again from the next start",
            alert_id=trigger.id,
            sample=_sample(fire),
        )

    async def _journal(self, write: Callable[[], Awaitable[None]]) -> bool:
        """Run one journal write; a failure (a full disk) is logged, not raised: the fires are
        still held and retried in memory."""
        try:
            await write()
        except OSError:
            log.error("the fire journal cannot be written; fires wait in memory", exc_info=True)
            return False
        return True


def _events(fires: list[Fire], owners: dict[int, int]) -> list[FireEvent]:
    """One event per trigger the commit marked (``owners``: its id -> its owner), once each."""
    events: list[FireEvent] = []
    for fire in fires:
        tick = fire.tick
        fired_at_ms = fire.fired_at_ms or int(time.time() * 1000)
        for trigger in fire.triggers:
            owner = owners.pop(trigger.id, None)
            if owner is not None:
                events.append(
                    FireEvent(
                        trigger.id,
                        owner,
                        tick.exchange,
                        tick.symbol,
                        str(trigger.direction),
                        trigger.target,
                        tick.price,
                        fired_at_ms,
                    )
                )
    return events


def _sample(fire: Fire) -> str:
    tick = fire.tick
    return f"{tick.exchange} {tick.symbol} price={tick.price} time_ms={tick.exchange_time_ms}"
