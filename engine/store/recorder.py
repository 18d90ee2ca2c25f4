"""The fire recorder: the actor between the book and the database.

It receives :class:`Fire`\\ s, takes everything else already queued (up to a cap) and commits the
lot with one :meth:`Store.record_fires`, so a burst costs one round trip rather than one per
fire. A batch is never dropped: while the database is away it is retried with capped
exponential backoff and full jitter (``engine.backoff``: ceilings from 0.05 s doubling up to
5 s, afresh for each batch), and the book keeps running (the channel's buffer absorbs the
backlog, then back-pressure reaches the book).

Recording is idempotent: only alerts still ``created`` change, so a batch retried after an
ambiguous failure (the commit happened but the answer was lost) adds no second outbox row.
A fire lost before its commit (the process killed) is safe too: the alert is still ``created``,
so the next start puts it back in the book.

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
from collections.abc import Callable, Sequence

import msgspec
import trio

from engine.backoff import Backoff
from engine.errors import StoreRefused, StoreUnavailable
from engine.metrics import Metrics
from engine.model import Fire, FireChannels
from engine.quarantine import Quarantine
from engine.store.store import Store

log = logging.getLogger(__name__)

MAX_BATCH = 4096  # fires per commit; a tick rarely fires more than a handful
GRACE_S = 10.0  # at shutdown, how long the final flush may take
BACKOFF_FIRST_S = 0.05
BACKOFF_CAP_S = 5.0


async def run_fire_recorder(
    store: Store,
    fires: trio.MemoryReceiveChannel[Fire],
    channels: FireChannels | Sequence[str],
    metrics: Metrics,
    quarantine: Quarantine,
    *,
    committed: Callable[[], None] | None = None,
    max_batch: int = MAX_BATCH,
    grace_s: float = GRACE_S,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Record fires until ``fires`` is closed by its senders (then flush and return) or the
    task is cancelled (then flush what it holds and what is queued, shielded, for at most
    ``grace_s``; fires still unrecorded after that stay ``created`` in the database).

    ``channels`` says which outbox rows a fire queues (``Store.record_fires``); ``committed`` is
    called after each batch that queued any (the delivery loops' wake-up, so a notification
    waits for no poll). A fire the database refuses goes to ``quarantine`` (see the module
    docstring). Raises
    whatever :meth:`Store.record_fires` raises other than :class:`StoreUnavailable` and
    :class:`StoreRefused` (a bug, not an outage or a value), after which the engine stops.
    """
    if not isinstance(channels, FireChannels):
        channels = FireChannels(account=tuple(dict.fromkeys(channels)))
    recorder = _Recorder(store, channels, metrics, quarantine, committed)
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
                await recorder.commit(batch)
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
            "shutdown: %d fires not recorded within %.1f s; their alerts stay "
            "'created' and return to the book at the next start",
            len(batch),
            grace_s,
        )


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
    ) -> None:
        self.store = store
        self.channels = channels
        self.committed = committed
        self.metrics = metrics
        self.quarantine = quarantine

    async def commit(self, batch: list[Fire]) -> None:
        """Record ``batch``; what the database refuses is isolated and quarantined."""
        try:
            await self.record(batch)
        except StoreRefused as refusal:
            units = [
                fire if len(fire.triggers) == 1 else msgspec.structs.replace(fire, triggers=(t,))
                for fire in batch
                for t in fire.triggers
            ]
            await self._isolate(units, refusal)

    async def record(self, fires: list[Fire]) -> list[int]:
        """One ``record_fires`` for ``fires``, retried while the database is away (until it
        succeeds or we are cancelled). Raises :class:`StoreRefused` at once."""
        backoff = Backoff(BACKOFF_FIRST_S, BACKOFF_CAP_S)
        while True:
            try:
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
                await trio.sleep(pause)
                continue
            self.metrics.fires_recorded.inc(len(marked))
            if marked and self.committed is not None:
                self.committed()
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


def _sample(fire: Fire) -> str:
    tick = fire.tick
    return f"{tick.exchange} {tick.symbol} price={tick.price} time_ms={tick.exchange_time_ms}"
