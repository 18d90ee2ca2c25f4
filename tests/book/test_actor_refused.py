"""The book actor: an AddTrigger the book cannot hold is quarantined (not only logged), and each
fire carries the wall-clock time the engine fired it."""

from __future__ import annotations

import time
from decimal import Decimal

import trio

from engine.model import AddTrigger, Direction, Tick, Trigger

from .conftest import Harness

TICK_2023_MS = 1_677_663_000_000  # 2023-03-01


def trig(tid: int, target: str, symbol: str = "BTCUSDT") -> Trigger:
    return Trigger(tid, "binance", symbol, Direction.ABOVE, Decimal(target))


async def test_a_refused_add_is_quarantined_with_its_alert_id() -> None:
    h = Harness()
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            await h.start(nursery)
            await h.commands_in.send(AddTrigger(trig(1, "396212846246294800000")))
            await h.commands_in.send(AddTrigger(trig(2, "NaN")))
            await h.commands_in.send(AddTrigger(trig(3, "100")))
            await h.commands_in.send(AddTrigger(trig(3, "100")))  # a replay: already held
            await h.commands_in.send(AddTrigger(trig(4, "5", symbol="ETHUSDT")))
            while True:  # commands apply in order: once 4 is in, every one before it is done
                if 4 in h.book:
                    break
                await trio.sleep(0.001)
            await h.close_inputs()
    assert sorted(t.id for t in h.book.snapshot()) == [3, 4]
    assert h.quarantine.counts == {"command": 2}
    assert "below 10" in (h.quarantine.reason_for(1) or "")
    assert "finite" in (h.quarantine.reason_for(2) or "")
    assert h.quarantine.reason_for(3) is None  # a duplicate is a replay, not a problem
    assert h.metrics.quarantined.get(kind="command") == 2
    assert h.demand.symbols("binance") == {"BTCUSDT", "ETHUSDT"}


async def test_a_fire_is_dated_by_the_wall_clock_not_the_tick() -> None:
    h = Harness([trig(1, "100"), trig(2, "101")])
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            await h.start(nursery)
            before = time.time_ns() // 1_000_000
            tick = Tick("binance", "BTCUSDT", Decimal(102), exchange_time_ms=TICK_2023_MS)
            await h.ticks_in.send(tick)
            fire = await h.fires_out.receive()
            after = time.time_ns() // 1_000_000
            await h.close_inputs()
    assert len(fire.triggers) == 2
    assert before <= fire.fired_at_ms <= after
    assert fire.tick.exchange_time_ms == TICK_2023_MS
