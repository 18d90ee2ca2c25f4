"""``triggerbook plugins serve``'s server, in process: each plugin's real feed runner against it.

The server learns each protocol from the plugin's own requests and makes new trades from its
recorded frames, so an operator can try a plugin without writing a fake exchange. Here the real
runner subscribes a recorded symbol and one the recording never saw, and both must tick, parsed
by the plugin itself, at prices that move.
"""

from __future__ import annotations

import math
from functools import partial
from pathlib import Path

import pytest
import triggerbook_coinbase
import triggerbook_finnhub
import triggerbook_kraken
import triggerbook_okx
import trio

from engine.feeds.testing import (
    ExchangeFeed,
    FeedStates,
    ManualDemand,
    Metrics,
    Tick,
    find_frames,
    load_frames,
    serve_plugin,
)
from engine.plugins import Exchange

HERE = Path(__file__).parent.parent
CASES: list[tuple[type[Exchange], dict[str, object], str, str]] = [
    (triggerbook_coinbase.Coinbase, {}, "BTC-USD", "SOL-USD"),
    (triggerbook_kraken.Kraken, {}, "MATIC/USD", "SOL/USD"),
    (triggerbook_okx.Okx, {}, "BTC-USDT", "SOL-USDT"),
    (triggerbook_finnhub.Finnhub, {"enabled": True, "token": "t"}, "BINANCE:BTCUSDT", "AAPL"),
]


@pytest.mark.parametrize(("cls", "config", "recorded", "unseen"), CASES)
async def test_the_real_runner_gets_ticks_from_the_served_plugin(
    cls: type[Exchange], config: dict[str, object], recorded: str, unseen: str
) -> None:
    exchange = cls(config)
    path = find_frames(exchange)
    assert (
        path == HERE / f"triggerbook-{exchange.name}" / "tests" / "data" / f"{exchange.name}.jsonl"
    )
    demand = ManualDemand()
    states = FeedStates()
    metrics = Metrics()
    send, recv = trio.open_memory_channel[Tick](math.inf)
    prices: dict[str, set[object]] = {recorded: set(), unseen: set()}
    with trio.fail_after(20):
        async with trio.open_nursery() as outer:
            serve = partial(serve_plugin, exchange, load_frames(path), interval_s=0.02)
            server = await outer.start(serve)
            feed = ExchangeFeed(
                cls({**config, "url": server.url}), demand, states.get(cls.name), metrics
            )
            async with trio.open_nursery() as nursery:
                await nursery.start(feed.run, send)
                demand.set(cls.name, [recorded, unseen])
                while min(len(p) for p in prices.values()) < 3:
                    tick = await recv.receive()
                    assert tick.exchange == cls.name and tick.symbol in prices
                    prices[tick.symbol].add(tick.price)
                nursery.cancel_scope.cancel()
            await server.wait_until(lambda: not server.live)  # the runner's connection closed
            outer.cancel_scope.cancel()
    assert dict(metrics.frames_skipped.values) == {}
