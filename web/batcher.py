"""Group commit for alert creates, and grouped reads for alert lists: one statement per batch.

Every store call is a round trip to Postgres and a Trio/asyncio bridge crossing, and every create
a commit (an fsync); under load those dominate a request's cost. A :class:`Batcher` is a small
actor: requests put their item on its channel and wait; the actor takes whatever has queued up
(at most ``max_batch``), runs the whole batch as one store call, and answers each request.
An idle server runs a lone request at once: nothing waits for a batch to fill.

:class:`CreateBatcher`: the batch is one INSERT (:meth:`Store.create_alerts`), then each trigger
is sent to the book, and only then is each request answered. So the write-through contract
holds: a request gets its alert (and its 201) only once the row is committed and the trigger is
on its way to the book. :class:`ListBatcher`: unfiltered pages of many owners in one SELECT
(:meth:`Store.list_alert_pages`); a page reflects every create answered before it was asked for.

Per-request answers: ``run_batch`` may answer an item with an exception instead of a result
(a create the store refused: its owner is gone, or a per-user limit), and only that request
raises it. A batch the database refuses as a whole (:class:`StoreRefused`: a value it cannot
hold, whichever row it is in) is retried one item at a time, so one bad item never fails its
neighbours. Any other exception (the store unavailable, or a bug) goes to every request of
the batch, which re-raises it: a 503, or a logged 500.

Cancellation: a batch and its follow-up (the book sends) run shielded (a committed alert must
reach the book). A caller that is cancelled while waiting loses only its answer. Cancelling
:meth:`Batcher.run` fails the requests still queued with :class:`ShuttingDown` (503, nothing
written).

Shutdown (the order is ``engine/app.py``'s): :meth:`Batcher.stop_taking` is the web's first
step; from then on a create gets :class:`ShuttingDown` (503 with ``Retry-After``) without being
written, while those already queued are still committed and answered. A committed alert is
never answered with an error because the book is gone: the book is told on the way
(``to_book``), and if its command channel is already closed (the book stopped first, which the
engine's order avoids) the alert is still answered 201; it is ``created`` in the database, so
the next start loads it into the book.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import trio

from engine.config import LimitsConfig
from engine.errors import LimitReached, ShuttingDown, StoreRefused, Unauthorized
from engine.model import AddTrigger, Alert, BookCommand, Direction
from engine.store.store import Refusal

if TYPE_CHECKING:
    from engine.store import Store

# (owner, exchange, symbol, target, direction, name, channels: None for the defaults)
Row = tuple[int, str, str, Decimal, Direction, str, tuple[str, ...] | None]
Page = tuple[int, list[Alert]]
log = logging.getLogger(__name__)

MAX_BATCH = 256
QUEUE_SIZE = 1024
Item = TypeVar("Item")
Result = TypeVar("Result")


@dataclass(eq=False, slots=True)
class _Pending(Generic[Item, Result]):
    item: Item
    done: trio.Event = field(default_factory=trio.Event)
    result: Result | None = None
    error: BaseException | None = None


class Batcher(Generic[Item, Result]):
    """Runs concurrent :meth:`submit` calls as batches of ``run_batch``; run :meth:`run`.

    ``run_batch(items)`` returns one result per item, in order, or an exception instance for
    an item that request alone raises; ``follow_up(result)``, when given, runs for each result
    (in order) before its request is answered.
    """

    def __init__(
        self,
        run_batch: Callable[[Sequence[Item]], Awaitable[list[Result | Exception]]],
        follow_up: Callable[[Result], Awaitable[None]] | None = None,
        max_batch: int = MAX_BATCH,
    ) -> None:
        self._run_batch = run_batch
        self._follow_up = follow_up
        self._max_batch = max_batch
        self._send, self._receive = trio.open_memory_channel[_Pending[Item, Result]](QUEUE_SIZE)

    async def submit(self, item: Item) -> Result:
        """``item``'s result. Raises what the store call raised for it, and
        :class:`ShuttingDown` when the batcher has stopped taking items (nothing is run)."""
        pending: _Pending[Item, Result] = _Pending(item)
        try:
            await self._send.send(pending)
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            raise ShuttingDown() from None
        await pending.done.wait()
        if pending.error is not None:
            raise pending.error
        return pending.result  # type: ignore[return-value]  # set with done when no error

    def stop_taking(self) -> None:
        """Refuse new items from now on (:class:`ShuttingDown`, also for a caller waiting for
        room in a full queue); the items already queued still run. :meth:`run` returns once they
        have. Idempotent."""
        self._send.close()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run batches until cancelled; then fail whatever is still queued."""
        task_status.started()
        try:
            async for first in self._receive:
                batch = [first]
                while len(batch) < self._max_batch:
                    try:
                        batch.append(self._receive.receive_nowait())
                    except (trio.WouldBlock, trio.EndOfChannel):  # EndOfChannel: stop_taking
                        break
                with trio.CancelScope(shield=True):
                    await self._run(batch)
        finally:
            self._send.close()
            while True:
                try:
                    left = self._receive.receive_nowait()
                except (trio.WouldBlock, trio.EndOfChannel):
                    break
                left.error = ShuttingDown()
                left.done.set()

    async def _run(self, batch: list[_Pending[Item, Result]]) -> None:
        # Any error is handed to the request(s) it belongs to, which re-raise it (a 503 or a
        # logged 500, as without batching): nothing is swallowed here.
        try:
            results = await self._run_batch([p.item for p in batch])
        except StoreRefused as exc:
            if len(batch) == 1:
                _fail(batch, exc)
            else:  # find the refused item(s): the others are written
                for pending in batch:
                    await self._run([pending])
            return
        except Exception as exc:  # delivered to the requests, re-raised there
            _fail(batch, exc)
            return
        for pending, result in zip(batch, results, strict=True):
            if isinstance(result, Exception):  # this request's own refusal
                _fail([pending], result)
                continue
            if self._follow_up is not None:
                try:
                    await self._follow_up(result)
                except Exception as exc:  # e.g. the book's channel closed: this request's error
                    pending.error = exc
                    pending.done.set()
                    continue
            pending.result = result
            pending.done.set()


def _fail(batch: Sequence[_Pending[Any, Any]], error: Exception) -> None:
    for pending in batch:
        pending.error = error
        pending.done.set()


class CreateBatcher(Batcher[Row, Alert]):
    """Alert creates, committed together, each trigger then sent to the book (see above).

    ``limits`` are decided by the store in the INSERT's own transaction, so they hold for
    creates of one owner in one batch, in concurrent batches, and across processes.
    """

    def __init__(
        self,
        store: Store,
        commands: trio.MemorySendChannel[BookCommand],
        max_batch: int = MAX_BATCH,
        limits: LimitsConfig | None = None,
    ) -> None:
        limits = limits or LimitsConfig()
        refusals = _refusal_errors(limits)

        async def to_book(alert: Alert) -> None:
            try:
                await commands.send(AddTrigger(alert.trigger()))
            except (trio.ClosedResourceError, trio.BrokenResourceError):
                # The book is stopping. The row is committed, so the answer is still the
                # alert (a 201, never an error a client would retry into a duplicate); the
                # next start loads it, ``created``, into the book.
                log.info(
                    "alert %d committed as the book stopped: in the book from the next start",
                    alert.id,
                )

        async def write(rows: Sequence[Row]) -> list[Alert | Exception]:
            written = await store.create_alerts(
                rows, max_live_alerts=limits.max_live_alerts, max_symbols=limits.max_symbols
            )
            return [refusals[w]() if isinstance(w, Refusal) else w for w in written]

        super().__init__(write, to_book, max_batch)

    async def create(
        self,
        owner_id: int,
        exchange: str,
        symbol: str,
        target_price: Decimal,
        direction: Direction,
        name: str = "",
        channels: tuple[str, ...] | None = None,
    ) -> Alert:
        """Insert a live alert and add its trigger to the book; the committed alert.
        ``channels``: the sinks it notifies (None: the defaults at fire time).

        Raises, for this request only: :class:`Unauthorized` when the owner no longer exists
        (a token outliving its account), :class:`LimitReached` when the owner is at a per-user
        limit (``field`` None for live alerts, ``"symbol"`` for distinct symbols; nothing is
        written), :class:`StoreRefused` for a value the database cannot hold. Raises
        :class:`StoreUnavailable` when the database cannot be reached (:class:`ShuttingDown`
        when the batcher has stopped taking creates: nothing written), and whatever else the
        batch's store call raised. Once its row is committed the alert is returned, even when
        the book has stopped (see the module docstring).
        """
        return await self.submit(
            (owner_id, exchange, symbol, target_price, direction, name, channels)
        )


def _refusal_errors(limits: LimitsConfig) -> dict[Refusal, Callable[[], Exception]]:
    """A fresh exception per refused request (an exception instance is raised once)."""
    alerts = (
        f"you have {limits.max_live_alerts} live alerts, the most an account may have; "
        "delete some (or wait for them to fire) to create more"
    )
    symbols = (
        f"your live alerts watch {limits.max_symbols} distinct symbols, the most an account "
        "may; create this one on a symbol you already watch, or delete the alerts of another"
    )
    return {
        Refusal.NO_OWNER: lambda: Unauthorized("the token's user no longer exists"),
        Refusal.ALERT_LIMIT: lambda: LimitReached(alerts),
        Refusal.SYMBOL_LIMIT: lambda: LimitReached(symbols, field="symbol"),
    }


class ListBatcher(Batcher[tuple[int, int, int], Page]):
    """Unfiltered alert pages of many owners, read together (see above)."""

    def __init__(self, store: Store, max_batch: int = MAX_BATCH) -> None:
        async def read(pages: Sequence[tuple[int, int, int]]) -> list[Page]:
            return await store.list_alert_pages(pages)

        super().__init__(read, None, max_batch)

    async def page(self, owner_id: int, limit: int, offset: int) -> Page:
        """As ``Store.list_alerts(owner_id, limit=limit, offset=offset)``: (count, page)."""
        return await self.submit((owner_id, limit, offset))
