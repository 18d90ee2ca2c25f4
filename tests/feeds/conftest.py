"""Fixtures of the feed tests.

Local WebSocket servers speak each exchange's recorded frames (``engine.feeds.testing``); the
demand is set by hand (``ManualDemand``). Tests of backoff, staleness and the forced-disconnect
handover use ``net_clock``: trio's autojump clock with a small real-time threshold, because with
threshold 0 the clock would also jump while a task waits on a local socket that is about to answer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import trio
import trio.testing

from engine.feeds.binance import Binance
from engine.feeds.runner import ExchangeFeed
from engine.feeds.status import FeedStates
from engine.feeds.testing import (
    ExchangeServer,
    ManualDemand,
    frames_by_symbol,
    load_frames,
    read_binance_request,
    serve_exchange,
)
from engine.metrics import Metrics
from engine.model import Tick

DATA = Path(__file__).resolve().parent.parent / "data"


@pytest.fixture
def net_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0.05)


@pytest.fixture
def binance_frames() -> list[str]:
    return load_frames(DATA / "binance.jsonl")


def trade(symbol: str, price: str, time_ms: int, trade_id: int = 1) -> str:
    """A Binance combined-stream trade frame, shaped like the documented sample."""
    return (
        f'{{"stream":"{symbol.lower()}@trade","data":{{"e":"trade","E":{time_ms},"s":"{symbol}",'
        f'"t":{trade_id},"p":"{price}","q":"1","T":{time_ms},"m":true,"M":true}}}}'
    )


class Harness:
    """A Binance-speaking server and an ExchangeFeed pointed at it, with their observables."""

    def __init__(self, server: ExchangeServer, exchange: Binance) -> None:
        self.server = server
        self.exchange = exchange
        self.demand = ManualDemand()
        self.states = FeedStates()
        self.state = self.states.get(exchange.name)
        self.metrics = Metrics()
        self.send, self.recv = trio.open_memory_channel[Tick](1000)
        self.feed = ExchangeFeed(exchange, self.demand, self.state, self.metrics)

    def want(self, *symbols: str) -> None:
        self.demand.set(self.exchange.name, symbols)

    async def ticks(self, n: int) -> list[Tick]:
        return [await self.recv.receive() for _ in range(n)]


async def start_harness(
    nursery: trio.Nursery,
    exchange_cls: type[Binance] = Binance,
    frames: list[str] | None = None,
    **server_kwargs: object,
) -> Harness:
    server = await nursery.start(
        ExchangeServer(
            read_binance_request,
            frames_by_symbol(Binance(), frames or []),
            **server_kwargs,  # type: ignore[arg-type]
        ).run
    )
    harness = Harness(server, exchange_cls({"url": server.url}))
    await nursery.start(harness.feed.run, harness.send)
    return harness


@pytest.fixture
async def binance_server() -> AsyncIterator[ExchangeServer]:
    async with serve_exchange(read_binance_request) as server:
        yield server


async def eventually(condition: Callable[[], bool], poll_s: float = 0.005) -> None:
    """Wait until ``condition()`` holds (for state the server cannot signal); callers bound it
    with ``trio.fail_after``."""
    for _ in range(100_000):
        if condition():
            return
        await trio.sleep(poll_s)
    raise AssertionError("condition never held")
