"""No tick out of engine/limits.py gets past a feed (issue 12 case 2, feed side).

A tick of ``"time": 10000000000000000`` (year 318,857) or a price of ``1e30`` once fired an alert
whose fire the database refused, and the engine exited. Each feed path (the shared runner over a
real local WebSocket server, the real replay source, any other source through ``run_feeds``)
now skips such a tick as an ``out-of-range`` frame, counts it, logs once, and keeps going.
"""

from __future__ import annotations

import logging
import types
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

import pytest
import trio
import trio.testing

from engine.feeds.bounds import BoundedTicks, tick_refusal
from engine.feeds.replay import Replay
from engine.feeds.runner import run_feeds
from engine.feeds.status import FeedStates
from engine.feeds.testing import ManualDemand
from engine.limits import MAX_PRICE, MIN_PRICE, TICK_TIME_MAX_MS
from engine.metrics import Metrics
from engine.model import Tick
from engine.plugins import FeedSource, hookimpl
from engine.plugins.registry import load_registry

from .conftest import start_harness, trade

FAR_TIME = 10_000_000_000_000_000  # the issue's replayed tick


def skipped(metrics: Metrics, exchange: str) -> float:
    return metrics.frames_skipped.get(exchange=exchange, kind="out-of-range")


@pytest.mark.parametrize(
    ("price", "time_ms", "usable"),
    [
        (Decimal("70000.10"), 1_700_000_000_000, True),
        (MIN_PRICE, 0, True),
        (MAX_PRICE, TICK_TIME_MAX_MS, True),
        (Decimal("12345678901.123456789"), 1, True),  # more digits than the fast check's context
        (Decimal("1E+30"), 1, False),
        (Decimal("1E-19"), 1, False),
        (Decimal("0.0000000000000000001"), 1, False),
        (Decimal("1.0000000000000000001"), 1, True),  # any precision in range (a mid price)
        (Decimal("NaN"), 1, False),
        (Decimal("-1"), 1, False),
        (Decimal(1), FAR_TIME, False),
        (Decimal(1), -1, False),
        (1.5, 1, False),  # a plugin's bug: a float price
        (Decimal(1), "1", False),  # or a time that is not an int
    ],
)
def test_tick_refusal_follows_the_limits(price: Any, time_ms: Any, usable: bool) -> None:
    assert (tick_refusal(Tick("x", "S", price, time_ms)) is None) is usable


# --- the shared runner over a real WebSocket server ---------------------------------------------


async def test_the_runner_skips_ticks_out_of_range_and_keeps_going(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            h = await start_harness(nursery)
            h.want("BTCUSDT")
            await h.server.wait_until(lambda: h.server.subscribed() == {"BTCUSDT"})
            frames = [
                trade("BTCUSDT", "70000.10", 1_700_000_000_000, 1),
                trade("BTCUSDT", "70000.20", FAR_TIME, 2),  # time out of range
                trade("BTCUSDT", "1e30", 1_700_000_000_001, 3),  # price out of range
                trade("BTCUSDT", "0.0000000000000000001", 1_700_000_000_002, 4),  # 19 digits
                trade("BTCUSDT", "12345678901.5", 1_700_000_000_003, 5),  # big, in range
                trade("BTCUSDT", "70000.30", 1_700_000_000_004, 6),
            ]
            for frame in frames:
                await h.server.send_for("BTCUSDT", frame)
            ticks = await h.ticks(3)
            assert [str(t.price) for t in ticks] == ["70000.10", "12345678901.5", "70000.30"]
            assert skipped(h.metrics, "binance") == 3
            # An all-market array with one bad element: the others pass.
            array = (
                '{"stream":"!miniTicker@arr","data":[{"s":"AAA","c":"1e30","E":1},'
                '{"s":"BBB","c":"2.5","E":2},{"s":"CCC","c":"3","E":' + str(FAR_TIME) + "}]}"
            )
            await h.server.send(array)
            [tick] = await h.ticks(1)
            assert (tick.symbol, tick.price) == ("BBB", Decimal("2.5"))
            assert skipped(h.metrics, "binance") == 5
            assert len(h.server.connections) == 1 and h.state.connected  # never reconnected
            nursery.cancel_scope.cancel()
    logged = [r for r in caplog.records if "out-of-range" in r.getMessage()]
    assert len(logged) == 1  # logged once per kind, then only counted


async def test_the_first_frame_after_subscribing_is_checked_too() -> None:
    # The first frame of a session is read before the receive loop starts (Session.frame_ticks
    # serves both): it is checked all the same.
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            h = await start_harness(nursery, frames=[trade("BTCUSDT", "1e30", 1, 1)])
            h.want("BTCUSDT")
            await h.server.wait_until(lambda: h.server.subscribed() == {"BTCUSDT"})
            await h.server.send_for("BTCUSDT", trade("BTCUSDT", "1e30", 2, 2))
            await h.server.send_for("BTCUSDT", trade("BTCUSDT", "5", 3, 3))
            [tick] = await h.ticks(1)
            assert tick.price == 5
            assert skipped(h.metrics, "binance") >= 1
            nursery.cancel_scope.cancel()


# --- the replay source --------------------------------------------------------------------------


def recording(tmp_path: Path) -> Path:
    path = tmp_path / "ticks.jsonl"
    lines = [
        '{"exchange":"binance","symbol":"BTCUSDT","price":"70000.10","time":1700000000000}',
        '{"exchange":"binance","symbol":"BTCUSDT","price":"70000.20","time":10000000000000000}',
        '{"exchange":"binance","symbol":"BTCUSDT","price":1e30,"time":1700000000500}',
        '{"exchange":"binance","symbol":"BTCUSDT","price":"70000.30","time":1700000001000}',
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


async def test_replay_skips_the_issues_ticks_and_plays_on(
    tmp_path: Path, net_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    metrics, states = Metrics(), FeedStates()
    send, recv = trio.open_memory_channel[Tick](0)
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            replay = Replay({"file": str(recording(tmp_path)), "speed": 1.0})
            await nursery.start(replay.run, send, ManualDemand(), states.get("replay"), metrics)
            first = await recv.receive()
            started = trio.current_time()
            second = await recv.receive()  # paced by the good ticks' times, not the far one
            waited = trio.current_time() - started
            nursery.cancel_scope.cancel()
    assert [first.price, second.price] == [Decimal("70000.10"), Decimal("70000.30")]
    assert 0.9 <= waited <= 1.5
    assert skipped(metrics, "replay") == 2
    logged = [r for r in caplog.records if "out-of-range" in r.getMessage()]
    assert len(logged) == 1


# --- any other source, through run_feeds --------------------------------------------------------


class Odd(FeedSource):
    """A source with a bug: it emits the issue's ticks between good ones."""

    name = "odd"
    options: ClassVar[dict[str, object]] = {}

    async def run(self, ticks, demand, state, metrics, *, task_status):  # type: ignore[no-untyped-def]
        state.mark_connected()
        task_status.started()
        await ticks.send(Tick("odd", "GOLD", Decimal("2300.5"), 1))
        await ticks.send(Tick("odd", "GOLD", Decimal("2300.6"), FAR_TIME))
        ticks.send_nowait(Tick("odd", "GOLD", Decimal("1e30"), 2))
        await ticks.send(Tick("odd", "GOLD", Decimal("2300.7"), 3))
        await trio.sleep_forever()


@hookimpl
def odd_sources() -> list[type[FeedSource]]:
    return [Odd]


async def test_other_sources_get_a_bounded_channel() -> None:
    plugin = types.SimpleNamespace(triggerbook_feed_sources=odd_sources)
    registry = load_registry([plugin], entry_points=False)
    environ = {"TRIGGERBOOK_FEEDS_BINANCE_ENABLED": "0", "TRIGGERBOOK_FEEDS_ODD_ENABLED": "1"}
    config = registry.load_config(environ=environ)
    metrics = Metrics()
    send, recv = trio.open_memory_channel[Tick](10)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(
                run_feeds, config, registry, send, ManualDemand(), FeedStates(), metrics
            )
            got = [await recv.receive(), await recv.receive()]
            nursery.cancel_scope.cancel()
    assert [t.price for t in got] == [Decimal("2300.5"), Decimal("2300.7")]
    assert skipped(metrics, "odd") == 2


async def test_a_bounded_channel_is_a_channel() -> None:
    metrics = Metrics()
    send, recv = trio.open_memory_channel[Tick](1)
    bounded = BoundedTicks(send, "odd", metrics)
    clone = bounded.clone()
    assert isinstance(clone, BoundedTicks)
    async with bounded:
        bounded.send_nowait(Tick("odd", "A", Decimal(1), 1))
        with pytest.raises(trio.WouldBlock):
            bounded.send_nowait(Tick("odd", "A", Decimal(2), 1))
        bounded.send_nowait(Tick("odd", "A", Decimal("1e30"), 1))  # dropped, never blocks
        assert bounded.statistics().current_buffer_used == 1  # the channel's own, delegated
    await clone.aclose()
    assert (await recv.receive()).price == 1
    with pytest.raises(trio.EndOfChannel):
        await recv.receive()
    assert skipped(metrics, "odd") == 1


def test_logging_is_quiet_for_good_ticks(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    assert tick_refusal(Tick("x", "S", Decimal("1.5"), 1)) is None
    assert not caplog.records
