"""The book actor: the one task that owns the trigger book.

    feeds --ticks--> run_book --fires--> fire recorder
    web --commands--^    |  \\
                         |   +-- LastPrices (read by the web for direction inference, /api/prices)
                         +------ Demand (read by the feeds: which symbols to subscribe)

``Demand`` (``engine.book.demand``) and ``LastPrices`` (``engine.book.prices``) live in modules
of their own and are re-exported here.

Two loops share the book in one nursery: ticks and commands. Each handles one message without
awaiting between reading and changing the book, so the book is never seen half-changed. The
per-tick path does no logging and allocates nothing but the ``Fire`` it sends.
"""

from __future__ import annotations

import logging
import time

import trio

from engine.book.book import TriggerBook
from engine.book.demand import Demand
from engine.book.prices import LastPrices
from engine.errors import BookError, DuplicateTrigger, PriceOutOfRange
from engine.metrics import Metrics
from engine.model import AddTrigger, BookCommand, Fire, Tick, Trigger
from engine.quarantine import Quarantine

__all__ = ["Demand", "LastPrices", "run_book"]

log = logging.getLogger(__name__)

DRAIN_MAX = 256  # ticks applied per wake before a checkpoint lets other tasks run


async def run_book(
    book: TriggerBook,
    ticks: trio.MemoryReceiveChannel[Tick],
    commands: trio.MemoryReceiveChannel[BookCommand],
    fires: trio.MemorySendChannel[Fire],
    prices: LastPrices,
    demand: Demand,
    metrics: Metrics,
    quarantine: Quarantine,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Own ``book``: apply ticks, send fires, apply commands, until both inputs are closed.

    ``demand`` is first set from the book's contents (it may have been bulk-loaded), then kept
    in step as symbols gain their first or lose their last trigger. An ``AddTrigger`` of an id
    the book holds already is a replay, logged and skipped; one the book cannot hold (a target
    out of its range, which the API should have refused) goes to ``quarantine`` under its
    alert id, so its owner and the operator see it. A tick the book rejects (a non-finite
    price) is counted as a tick and dropped. ``fires`` is closed when both loops have ended, or
    on cancellation.
    """
    for exchange in book.sizes():
        demand.set(exchange, book.symbols(exchange))
    metrics.book_size.callback = lambda: _sizes(book)

    async with fires, trio.open_nursery() as nursery:
        nursery.start_soon(_tick_loop, book, ticks, fires, prices, demand, metrics)
        nursery.start_soon(_command_loop, book, commands, demand, quarantine)
        task_status.started()


def _sizes(book: TriggerBook) -> dict[tuple[str, ...], float]:
    """The book-size gauge at a scrape: O(exchanges), from the counts the book keeps (a walk
    of every symbol blocked the loop for each scrape at 150,000 symbols)."""
    return {(exchange,): float(n) for exchange, n in book.sizes().items()}


async def _tick_loop(
    book: TriggerBook,
    ticks: trio.MemoryReceiveChannel[Tick],
    fires: trio.MemorySendChannel[Fire],
    prices: LastPrices,
    demand: Demand,
    metrics: Metrics,
) -> None:
    """Apply ticks in bursts: one ``await`` per burst, not per tick.

    Each wake takes every tick already queued with ``receive_nowait`` (at most ``DRAIN_MAX``
    before the next ``await``, so a feed that never stops cannot starve other tasks), then
    parks in ``receive`` until the next tick. A fire goes out with ``send_nowait``; only a full
    fire channel makes the loop wait (back-pressure, and a checkpoint). The price history's
    second is read from the wall clock once per wake (and after each wait), not per tick.
    """
    apply = book.apply
    receive = ticks.receive
    receive_nowait = ticks.receive_nowait
    send_fire = fires.send_nowait
    last = prices.update
    record = prices.history.record
    clock = time.time
    counted = metrics.ticks.values  # updated in place: Counter.inc would build a key per tick
    keys: dict[str, tuple[str]] = {}
    async with ticks:
        while True:
            try:
                tick = await receive()
            except trio.EndOfChannel:
                return
            burst = 0
            second = int(clock())  # the history's second: read once per wake, not per tick
            while True:
                last(tick)
                record(tick, second)
                key = keys.get(tick.exchange)
                if key is None:
                    key = keys[tick.exchange] = (tick.exchange,)
                counted[key] = counted.get(key, 0) + 1
                try:
                    fired = apply(tick)
                except PriceOutOfRange:
                    fired = None  # a non-finite price: the feed's parser should have dropped it
                if fired:
                    fire = _fired(book, tick, fired, demand, metrics)
                    try:
                        send_fire(fire)
                    except trio.WouldBlock:
                        await fires.send(fire)
                        second = int(clock())
                burst += 1
                if burst >= DRAIN_MAX:  # let others run, then take the next tick
                    burst = 0
                    await trio.lowlevel.checkpoint()
                    second = int(clock())
                try:
                    tick = receive_nowait()
                except (trio.WouldBlock, trio.EndOfChannel):
                    break  # the next ``receive`` parks, or ends the loop once closed


def _fired(
    book: TriggerBook, tick: Tick, fired: list[Trigger], demand: Demand, metrics: Metrics
) -> Fire:
    """Book-keeping for a tick that fired: demand (one discard, O(1), when the symbol's last
    trigger fired), metrics, and the ``Fire`` to send.

    The fire is dated by the wall clock here, once for all the triggers the tick fired: that
    is the alerts' ``triggered_at``, whatever time the exchange put on the tick (a replay's
    ticks are years old)."""
    now = time.monotonic_ns()
    if not book.has_symbol(tick.exchange, tick.symbol):
        demand.discard(tick.exchange, tick.symbol)
    metrics.fires.inc(len(fired), exchange=tick.exchange)
    if tick.received_ns:
        metrics.tick_to_fire.observe((now - tick.received_ns) / 1e9)
    return Fire(tick, tuple(fired), fired_ns=now, fired_at_ms=time.time_ns() // 1_000_000)


async def _command_loop(
    book: TriggerBook,
    commands: trio.MemoryReceiveChannel[BookCommand],
    demand: Demand,
    quarantine: Quarantine,
) -> None:
    async with commands:
        async for command in commands:
            if isinstance(command, AddTrigger):
                trigger = command.trigger
                try:
                    book.add(trigger)
                except DuplicateTrigger:
                    log.debug("trigger %s is in the book already (a replay)", trigger.id)
                    continue
                except BookError as exc:
                    quarantine.add(
                        "command",
                        f"the book cannot hold this alert: {exc}",
                        alert_id=trigger.id,
                        sample=f"{trigger.exchange} {trigger.symbol} {trigger.direction}",
                    )
                    continue
                demand.add(trigger.exchange, trigger.symbol)  # O(1); a no-op if live already
            else:
                removed = book.remove(command.trigger_id)
                if removed is not None and not book.has_symbol(removed.exchange, removed.symbol):
                    demand.discard(removed.exchange, removed.symbol)
