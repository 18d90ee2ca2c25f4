"""The book's tick loop drains bursts: order kept, others still get turns, back-pressure kept."""

from __future__ import annotations

from decimal import Decimal

import pytest
import trio
import trio.testing

import engine.book.actor as actor
from engine.book.actor import Demand, LastPrices, run_book
from engine.book.book import TriggerBook
from engine.metrics import Metrics
from engine.model import BookCommand, Direction, Fire, Tick, Trigger


def trig(tid: int, target: str) -> Trigger:
    return Trigger(tid, "binance", "BTCUSDT", Direction.ABOVE, Decimal(target))


def tick(price: int) -> Tick:
    return Tick("binance", "BTCUSDT", Decimal(price), price, received_ns=1)


class Book:
    """run_book with a tick buffer large enough to queue a whole burst before it runs."""

    def __init__(self, triggers: list[Trigger], fire_buffer: int) -> None:
        self.book = TriggerBook()
        self.book.bulk_load(triggers)
        self.ticks_in, self.ticks_out = trio.open_memory_channel[Tick](1024)
        self.commands_in, self.commands_out = trio.open_memory_channel[BookCommand](1)
        self.fires_in, self.fires_out = trio.open_memory_channel[Fire](fire_buffer)
        self.prices = LastPrices()
        self.metrics = Metrics()

    async def start(self, nursery: trio.Nursery) -> None:
        await nursery.start(
            run_book,
            self.book,
            self.ticks_out,
            self.commands_out,
            self.fires_in,
            self.prices,
            Demand(),
            self.metrics,
        )

    def seen(self) -> float:
        return self.metrics.ticks.get(exchange="binance")


async def test_a_queued_burst_is_applied_in_order_and_ends_with_the_channel() -> None:
    b = Book([trig(i, str(i)) for i in range(1, 21)], fire_buffer=64)
    for price in range(1, 21):
        b.ticks_in.send_nowait(tick(price))
    await b.ticks_in.aclose()  # closed with the burst still queued: all of it is applied
    await b.commands_in.aclose()
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            await b.start(nursery)
        fires = [f async for f in b.fires_out]
    assert [f.tick.price for f in fires] == [Decimal(p) for p in range(1, 21)]
    assert [f.triggers for f in fires] == [(trig(p, str(p)),) for p in range(1, 21)]
    assert b.seen() == 20
    assert b.prices.get("binance", "BTCUSDT") == tick(20)


async def test_a_long_burst_yields_every_drain_max_ticks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(actor, "DRAIN_MAX", 4)
    b = Book([], fire_buffer=1)
    for price in range(1, 13):
        b.ticks_in.send_nowait(tick(price))
    observed: list[float] = []

    async def observer() -> None:
        while b.seen() < 12:
            observed.append(b.seen())
            await trio.lowlevel.checkpoint()

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            await b.start(nursery)
            nursery.start_soon(observer)
            await trio.testing.wait_all_tasks_blocked()
            assert b.seen() == 12
            await b.ticks_in.aclose()
            await b.commands_in.aclose()
    # Another task ran between the slices of the burst: it saw the book part-way through,
    # and only ever at a slice boundary.
    assert any(0 < n < 12 for n in observed)
    assert all(n % 4 == 0 for n in observed)


async def test_a_full_fire_channel_makes_the_loop_wait_without_losing_ticks() -> None:
    b = Book([trig(i, str(i)) for i in range(1, 11)], fire_buffer=0)
    for price in range(1, 11):
        b.ticks_in.send_nowait(tick(price))
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            await b.start(nursery)
            await trio.testing.wait_all_tasks_blocked()
            assert b.seen() == 1  # the first fire waits for a reader: back-pressure
            fires = [await b.fires_out.receive() for _ in range(10)]
            await b.ticks_in.aclose()
            await b.commands_in.aclose()
    assert [f.tick.price for f in fires] == [Decimal(p) for p in range(1, 11)]
    assert b.seen() == 10
