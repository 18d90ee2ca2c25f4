"""Group commit for alert creates: concurrent creates share one INSERT, one commit, one bridge hop.

Every create is a round trip to Postgres, a commit (an fsync) and a Trio/asyncio bridge crossing;
under load those dominate a create's cost. :class:`CreateBatcher` is a small actor: requests put
their row on its channel and wait; the actor takes whatever has queued up (at most
``max_batch``), writes it with :meth:`Store.create_alerts`, sends each trigger to the book, and
only then answers each request. So the write-through contract holds: a request gets its alert
(and its 201) only once the row is committed and the trigger is on its way to the book. An idle
server writes a lone create at once: nothing waits for a batch to fill.

A batch that fails as a whole for a reason other than an unavailable store (a row the database
refuses, e.g. an owner that no longer exists) is retried one row at a time, so one bad row never
fails its neighbours; each request gets its own alert or its own error.

Cancellation: the write and the book sends of a batch run shielded (a committed alert must
reach the book). A caller that is cancelled while waiting loses only its answer. Cancelling
:meth:`run` fails the requests still queued with :class:`StoreUnavailable`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING

import trio

from engine.errors import StoreUnavailable
from engine.model import AddTrigger, Alert, BookCommand, Direction

if TYPE_CHECKING:
    from engine.store import Store

Row = tuple[int, str, str, Decimal, Direction, str]
MAX_BATCH = 256
QUEUE_SIZE = 1024


@dataclass(eq=False, slots=True)
class _Pending:
    row: Row
    done: trio.Event = field(default_factory=trio.Event)
    alert: Alert | None = None
    error: BaseException | None = None


class CreateBatcher:
    """Batches concurrent :meth:`create` calls into one store write each; run :meth:`run`."""

    def __init__(
        self,
        store: Store,
        commands: trio.MemorySendChannel[BookCommand],
        max_batch: int = MAX_BATCH,
    ) -> None:
        self._store = store
        self._commands = commands
        self._max_batch = max_batch
        self._send, self._receive = trio.open_memory_channel[_Pending](QUEUE_SIZE)

    async def create(
        self,
        owner_id: int,
        exchange: str,
        symbol: str,
        target_price: Decimal,
        direction: Direction,
        name: str = "",
    ) -> Alert:
        """Insert a live alert and add its trigger to the book; the committed alert.

        Raises what :meth:`Store.create_alert` raises for this row (:class:`StoreUnavailable`
        when the database cannot be reached, the driver's error for a row it refuses), and
        :class:`StoreUnavailable` when the batcher has stopped.
        """
        pending = _Pending((owner_id, exchange, symbol, target_price, direction, name))
        try:
            await self._send.send(pending)
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            raise StoreUnavailable("the server is shutting down") from None
        await pending.done.wait()
        if pending.error is not None:
            raise pending.error
        assert pending.alert is not None
        return pending.alert

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Write batches until cancelled; then fail whatever is still queued."""
        task_status.started()
        try:
            async for first in self._receive:
                batch = [first]
                while len(batch) < self._max_batch:
                    try:
                        batch.append(self._receive.receive_nowait())
                    except trio.WouldBlock:
                        break
                with trio.CancelScope(shield=True):
                    await self._write(batch)
        finally:
            self._send.close()
            while True:
                try:
                    left = self._receive.receive_nowait()
                except (trio.WouldBlock, trio.EndOfChannel):
                    break
                left.error = StoreUnavailable("the server is shutting down")
                left.done.set()

    async def _write(self, batch: list[_Pending]) -> None:
        # Any error is handed to the request(s) it belongs to, which re-raise it (a 503 or a
        # logged 500, as for a create that is not batched): nothing is swallowed here.
        try:
            alerts = await self._store.create_alerts([p.row for p in batch])
        except Exception as exc:  # delivered to the requests, re-raised there
            if len(batch) == 1 or isinstance(exc, StoreUnavailable):
                self._fail(batch, exc)
                return
            for pending in batch:
                await self._write([pending])
            return
        await self._deliver(batch, alerts)

    async def _deliver(self, batch: list[_Pending], alerts: list[Alert]) -> None:
        for pending, alert in zip(batch, alerts, strict=True):
            await self._commands.send(AddTrigger(alert.trigger()))
            pending.alert = alert
            pending.done.set()

    @staticmethod
    def _fail(batch: list[_Pending], exc: BaseException) -> None:
        for pending in batch:
            pending.error = exc
            pending.done.set()
