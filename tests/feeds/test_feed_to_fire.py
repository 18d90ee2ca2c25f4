"""The feed runner and the real book actor: a trigger's demand subscribes it, a frame fires it."""

from __future__ import annotations

from decimal import Decimal

import trio

from engine.book.actor import Demand, LastPrices, run_book
from engine.book.book import TriggerBook
from engine.feeds.binance import Binance
from engine.feeds.runner import ExchangeFeed
from engine.feeds.status import FeedStates
from engine.feeds.testing import read_binance_request, serve_exchange
from engine.metrics import Metrics
from engine.model import AddTrigger, BookCommand, Direction, Fire, RemoveTrigger, Tick, Trigger
from engine.quarantine import Quarantine

from .conftest import trade


async def test_a_trigger_subscribes_its_symbol_and_a_frame_fires_it() -> None:
    demand, metrics, states = Demand(), Metrics(), FeedStates()
    ticks_send, ticks_recv = trio.open_memory_channel[Tick](100)
    commands_send, commands_recv = trio.open_memory_channel[BookCommand](10)
    fires_send, fires_recv = trio.open_memory_channel[Fire](10)
    with trio.fail_after(10):
        async with serve_exchange(read_binance_request) as server, trio.open_nursery() as nursery:
            await nursery.start(
                run_book,
                TriggerBook(),
                ticks_recv,
                commands_recv,
                fires_send,
                LastPrices(),
                demand,
                metrics,
                Quarantine(metrics),
            )
            feed = ExchangeFeed(
                Binance({"url": server.url}), demand, states.get("binance"), metrics
            )
            await nursery.start(feed.run, ticks_send)
            target = Decimal("70000.10")
            trigger = Trigger(7, "binance", "BTCUSDT", Direction.ABOVE, target)
            await commands_send.send(AddTrigger(trigger))
            await commands_send.send(
                AddTrigger(Trigger(8, "binance", "ETHUSDT", Direction.BELOW, Decimal(1)))
            )
            await server.wait_until(lambda: server.subscribed() == {"BTCUSDT", "ETHUSDT"})
            await server.send_for("BTCUSDT", trade("BTCUSDT", "70000.09", 1))
            await server.send_for("BTCUSDT", trade("BTCUSDT", "70000.10", 2))  # equal fires
            fire = await fires_recv.receive()
            assert fire.triggers == (trigger,)
            assert fire.tick.price == target and fire.tick.exchange_time_ms == 2
            assert fire.fired_ns >= fire.tick.received_ns > 0
            # BTCUSDT has no live trigger left: the feed unsubscribes it; delete the other one.
            await server.wait_until(lambda: server.subscribed() == {"ETHUSDT"})
            await commands_send.send(RemoveTrigger(8))
            await server.wait_until(lambda: not server.live)
            assert metrics.tick_to_fire.count == 1
            nursery.cancel_scope.cancel()
