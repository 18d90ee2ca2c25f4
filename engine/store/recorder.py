"""The fire recorder: the actor between the book and the database.

It receives :class:`Fire`\\ s, takes everything else already queued (up to a cap) and commits the
lot with one :meth:`Store.record_fires`, so a burst costs one round trip rather than one per
fire. A batch is never dropped: while the database is away it is retried with capped
exponential backoff and jitter, and the book keeps running (the channel's buffer absorbs the
backlog, then back-pressure reaches the book).

Recording is idempotent: only alerts still ``created`` change, so a batch retried after an
ambiguous failure (the commit happened but the answer was lost) adds no second outbox row.
A fire lost before its commit (the process killed) is safe too: the alert is still ``created``,
so the next start puts it back in the book.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence

import trio

from engine.errors import StoreUnavailable
from engine.metrics import Metrics
from engine.model import Fire
from engine.store.store import Store

log = logging.getLogger(__name__)

MAX_BATCH = 4096  # fires per commit; a tick rarely fires more than a handful
GRACE_S = 10.0  # at shutdown, how long the final flush may take
BACKOFF_FIRST_S = 0.05
BACKOFF_CAP_S = 5.0


async def run_fire_recorder(
    store: Store,
    fires: trio.MemoryReceiveChannel[Fire],
    channels: Sequence[str],
    metrics: Metrics,
    *,
    max_batch: int = MAX_BATCH,
    grace_s: float = GRACE_S,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Record fires until ``fires`` is closed by its senders (then flush and return) or the
    task is cancelled (then flush what it holds and what is queued, shielded, for at most
    ``grace_s``; fires still unrecorded after that stay ``created`` in the database).

    Raises whatever :meth:`Store.record_fires` raises other than :class:`StoreUnavailable`
    (a bug, not an outage), after which the engine stops.
    """
    channels = list(channels)
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
                await _commit(store, batch, channels, metrics)
                batch.clear()
        finally:
            _drain(fires, batch, limit=None)
            if batch:
                await _flush(store, batch, channels, metrics, grace_s)


async def _flush(
    store: Store, batch: list[Fire], channels: list[str], metrics: Metrics, grace_s: float
) -> None:
    """The final commit at shutdown: shielded, bounded by ``grace_s``."""
    with trio.move_on_after(grace_s, shield=True) as scope:
        await _commit(store, batch, channels, metrics)
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


async def _commit(
    store: Store, batch: list[Fire], channels: list[str], metrics: Metrics
) -> list[int]:
    """One ``record_fires`` for the batch, retried until it succeeds (or we are cancelled)."""
    delay = BACKOFF_FIRST_S
    attempt = 0
    while True:
        attempt += 1
        try:
            marked = await store.record_fires(batch, channels)
        except StoreUnavailable as exc:
            pause = random.uniform(delay / 2, delay)
            metrics.store_retries.inc()
            log.warning(
                "recording %d fires failed (attempt %d: %s); retrying in %.2f s",
                len(batch),
                attempt,
                exc,
                pause,
            )
            await trio.sleep(pause)
            delay = min(delay * 2, BACKOFF_CAP_S)
            continue
        metrics.fires_recorded.inc(len(marked))
        return marked
