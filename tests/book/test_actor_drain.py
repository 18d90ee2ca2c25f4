"""The book's tick loop drains bursts: order kept, others still get turns, back-pressure kept."""

from __future__ import annotations

from decimal import Decimal

import pytest
import trio
import trio.testing

import engine.book.actor as actor
from engine.model import Direction, Tick, Trigger

from .conftest import Harness


def trig(tid: int, target: str) -> Trigger:
    return Trigger(tid, "binance", "BTCUSDT", Direction.ABOVE, Decimal(target))


def tick(price: int) -> Tick:
    return Tick("binance", "BTCUSDT", Decimal(price), price, received_ns=1)


async def test_a_queued_burst_is_applied_in_order_and_ends_with_the_channel() -> None:
    b = Harness([trig(i, str(i)) for i in range(1, 21)], tick_buffer=1024, fire_buffer=64)
    for price in range(1, 21):
        b.ticks_in.send_nowait(tick(price))
    await b.close_inputs()  # closed with the burst still queued: all of it is applied
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
    b = Harness(tick_buffer=1024, fire_buffer=1)
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
            await b.close_inputs()
    # Another task ran between the slices of the burst: it saw the book part-way through,
    # and only ever at a slice boundary.
    assert any(0 < n < 12 for n in observed)
    assert all(n % 4 == 0 for n in observed)


async def test_a_full_fire_channel_makes_the_loop_wait_without_losing_ticks() -> None:
    b = Harness([trig(i, str(i)) for i in range(1, 11)], tick_buffer=1024, fire_buffer=0)
    for price in range(1, 11):
        b.ticks_in.send_nowait(tick(price))
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            await b.start(nursery)
            await trio.testing.wait_all_tasks_blocked()
            assert b.seen() == 1  # the first fire waits for a reader: back-pressure
            fires = [await b.fires_out.receive() for _ in range(10)]
            await b.close_inputs()
    assert [f.tick.price for f in fires] == [Decimal(p) for p in range(1, 11)]
    assert b.seen() == 10
