"""The book actor with real trio channels: ticks in, fires out, commands, demand, prices."""

from __future__ import annotations

from decimal import Decimal

import trio
import trio.testing

from engine.book.actor import Demand, LastPrices
from engine.model import AddTrigger, Direction, RemoveTrigger, Tick, Trigger

from .conftest import Harness

A, B = Direction.ABOVE, Direction.BELOW


def trig(tid: int, target: str, direction: Direction = A, symbol: str = "BTCUSDT") -> Trigger:
    return Trigger(tid, "binance", symbol, direction, Decimal(target))


async def test_ticks_in_fires_out_and_clean_shutdown() -> None:
    h = Harness([trig(1, "100"), trig(2, "90", B), trig(3, "100", symbol="ETHUSDT")])
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            await h.start(nursery)
            assert h.demand.symbols("binance") == {"BTCUSDT", "ETHUSDT"}
            await h.ticks_in.send(Tick("binance", "BTCUSDT", Decimal("95"), received_ns=1))
            await h.ticks_in.send(Tick("binance", "BTCUSDT", Decimal("100.5"), received_ns=1))
            fire = await h.fires_out.receive()
            assert fire.tick.price == Decimal("100.5")
            assert fire.triggers == (trig(1, "100"),)
            assert fire.fired_ns > 0
            assert h.prices.get("binance", "BTCUSDT") == fire.tick
            await h.close_inputs()
        # the actor closed its output when its inputs closed
        assert [f async for f in h.fires_out] == []
    assert h.metrics.ticks.get(exchange="binance") == 2
    assert h.metrics.fires.get(exchange="binance") == 1
    assert h.metrics.tick_to_fire.count == 1
    assert 'triggerbook_book_triggers{exchange="binance"} 2' in h.metrics.render()


async def test_commands_add_remove_and_demand() -> None:
    h = Harness()
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            await h.start(nursery)
            assert h.demand.symbols("binance") == frozenset()
            seen = h.demand.version("binance")
            await h.commands_in.send(AddTrigger(trig(1, "100")))
            seen = await h.demand.wait_changed("binance", seen)
            assert h.demand.symbols("binance") == {"BTCUSDT"}
            await h.commands_in.send(AddTrigger(trig(2, "200")))  # same symbol: no change
            await h.commands_in.send(AddTrigger(trig(2, "300")))  # duplicate: logged, skipped
            await h.commands_in.send(AddTrigger(trig(3, "-1")))  # out of range: skipped
            await h.commands_in.send(RemoveTrigger(1))
            await h.commands_in.send(RemoveTrigger(99))  # unknown: a no-op
            await h.commands_in.send(AddTrigger(trig(4, "5", B, symbol="ETHUSDT")))
            seen = await h.demand.wait_changed("binance", seen)
            assert h.demand.symbols("binance") == {"BTCUSDT", "ETHUSDT"}
            assert h.book.snapshot() == [trig(2, "200"), trig(4, "5", B, symbol="ETHUSDT")]
            # the last trigger of a symbol fires: the feed may unsubscribe
            await h.ticks_in.send(Tick("binance", "ETHUSDT", Decimal("4")))
            fire = await h.fires_out.receive()
            assert [t.id for t in fire.triggers] == [4]
            seen = await h.demand.wait_changed("binance", seen)
            assert h.demand.symbols("binance") == {"BTCUSDT"}
            await h.commands_in.send(RemoveTrigger(2))
            await h.demand.wait_changed("binance", seen)
            assert h.demand.symbols("binance") == frozenset()
            await h.close_inputs()
    assert len(h.book) == 0


async def test_non_finite_tick_is_dropped() -> None:
    h = Harness()
    h.book.add(trig(1, "10"))
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            await h.start(nursery)
            await h.ticks_in.send(Tick("binance", "BTCUSDT", Decimal("NaN")))
            await h.ticks_in.send(Tick("binance", "BTCUSDT", Decimal("11")))
            fire = await h.fires_out.receive()
            assert [t.id for t in fire.triggers] == [1]
            assert fire.tick.received_ns == 0
            await h.close_inputs()
    assert h.metrics.tick_to_fire.count == 0  # no received_ns, no latency sample


async def test_wait_changed_returns_at_once_when_newer() -> None:
    demand = Demand()
    demand.add("binance", "BTCUSDT")
    with trio.fail_after(1):
        assert await demand.wait_changed("binance", 0) == 1
    demand.add("binance", "BTCUSDT")  # unchanged set: no new version
    assert demand.version("binance") == 1
    demand.discard("binance", "BTCUSDT")
    assert demand.version("binance") == 2
    assert demand.symbols("binance") == frozenset()


async def test_wait_changed_wakes_only_for_its_exchange() -> None:
    demand = Demand()
    woke: list[int] = []

    async def waiter() -> None:
        woke.append(await demand.wait_changed("binance", demand.version("binance")))

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(waiter)
            await trio.testing.wait_all_tasks_blocked()
            demand.add("kraken", "XBT/USD")
            await trio.testing.wait_all_tasks_blocked()
            assert woke == []
            demand.add("binance", "ETHUSDT")
    assert woke == [1]


def test_last_prices() -> None:
    prices = LastPrices()
    assert prices.get("binance", "BTCUSDT") is None
    first = Tick("binance", "BTCUSDT", Decimal("1"))
    prices.update(first)
    prices.update(Tick("binance", "AAA", Decimal("3")))
    latest = Tick("binance", "BTCUSDT", Decimal("2"))
    prices.update(latest)
    assert prices.get("binance", "BTCUSDT") == latest
    assert [t.symbol for t in prices.items()] == ["AAA", "BTCUSDT"]
