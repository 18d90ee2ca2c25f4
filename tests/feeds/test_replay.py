"""engine/feeds/replay.py: JSON lines and CSV, pacing, loop, bad lines, configuration errors."""

from __future__ import annotations

import logging
from decimal import Decimal
from pathlib import Path

import pytest
import trio
import trio.testing

from engine.errors import BadFrame, ConfigError
from engine.feeds.replay import Replay, parse_csv_row, parse_json_line
from engine.feeds.status import FeedStates
from engine.feeds.testing import ManualDemand
from engine.metrics import Metrics
from engine.model import Tick

from .conftest import DATA


async def play(
    config: dict[str, object], count: int, metrics: Metrics | None = None
) -> tuple[list[Tick], list[float], FeedStates]:
    """Run the source until it emitted ``count`` ticks; returns them, their trio times, states."""
    states = FeedStates()
    send, recv = trio.open_memory_channel[Tick](0)
    ticks, times = [], []
    async with trio.open_nursery() as nursery:
        source = Replay(config)
        await nursery.start(
            source.run, send, ManualDemand(), states.get("replay"), metrics or Metrics()
        )
        for _ in range(count):
            ticks.append(await recv.receive())
            times.append(trio.current_time())
        nursery.cancel_scope.cancel()
    return ticks, times, states


@pytest.mark.parametrize("name", ["replay.jsonl", "replay.csv"])
async def test_recordings_play_exactly(name: str) -> None:
    with trio.fail_after(10):
        ticks, _, states = await play({"file": str(DATA / name), "speed": 0.0}, 240)
    assert ticks[0].exchange == "binance" and ticks[0].symbol == "ETHUSDT"
    assert str(ticks[0].price) == "2050.60" and ticks[0].exchange_time_ms == 1700000000457
    assert all(t.received_ns > 0 for t in ticks)
    assert states.get("replay").symbols == {"BTCUSDT", "ETHUSDT"}
    assert states.get("replay").connected


async def test_both_formats_agree() -> None:
    with trio.fail_after(10):
        a, _, _ = await play({"file": str(DATA / "replay.jsonl"), "speed": 0.0}, 240)
        b, _, _ = await play({"file": str(DATA / "replay.csv"), "speed": 0.0}, 240)
    key = [(t.symbol, t.price, t.exchange_time_ms) for t in a]
    assert key == [(t.symbol, t.price, t.exchange_time_ms) for t in b]


async def test_speed_scales_the_recorded_pace(net_clock: trio.testing.MockClock) -> None:
    with trio.fail_after(100):
        ticks, times, _ = await play({"file": str(DATA / "replay.jsonl"), "speed": 2.0}, 20)
    recorded = (ticks[-1].exchange_time_ms - ticks[0].exchange_time_ms) / 1000
    assert times[-1] - times[0] == pytest.approx(recorded / 2, abs=1e-6)


async def test_loop_starts_again(tmp_path: Path) -> None:
    path = tmp_path / "two.jsonl"
    path.write_text(
        '{"exchange":"binance","symbol":"btcusdt","price":"1.0","time":1}\n'
        '{"exchange":"binance","symbol":"BTCUSDT","price":2.25,"time":2}'  # no final newline
    )
    with trio.fail_after(10):
        ticks, _, _ = await play({"file": str(path), "speed": 0.0, "loop": True}, 5)
    assert [str(t.price) for t in ticks] == ["1.0", "2.25", "1.0", "2.25", "1.0"]
    assert {t.symbol for t in ticks} == {"BTCUSDT"}


async def test_bad_lines_are_counted_logged_once_and_skipped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="engine.feeds.replay")
    path = tmp_path / "bad.jsonl"
    path.write_text(
        "not json\n"
        '{"exchange":"binance","symbol":"X","price":"abc","time":1}\n'
        '{"exchange":"binance","symbol":"X","price":"-1","time":1}\n'
        '{"exchange":"binance","price":"1","time":1}\n'
        "also not json\n"
        "\n"
        '{"exchange":"binance","symbol":"X","price":"3","time":1}\n'
    )
    metrics = Metrics()
    with trio.fail_after(10):
        ticks, _, _ = await play({"file": str(path), "speed": 0.0}, 1, metrics)
    assert ticks[0].price == Decimal("3")
    skipped = metrics.frames_skipped
    assert skipped.get(exchange="replay", kind="not-json") == 2
    assert skipped.get(exchange="replay", kind="bad-price") == 2
    assert skipped.get(exchange="replay", kind="bad-field") == 1
    assert len([r for r in caplog.records if "bad line" in r.getMessage()]) == 3


@pytest.mark.parametrize(
    ("row", "kind"),
    [
        (["binance", "X", "1"], "bad-field"),
        (["binance", "X", "one", "1"], "bad-price"),
        (["binance", "X", "0", "1"], "bad-price"),
        (["binance", "X", "1", "noon"], "bad-field"),
        (["", "X", "1", "1"], "bad-field"),
    ],
)
def test_bad_csv_rows(row: list[str], kind: str) -> None:
    with pytest.raises(BadFrame) as info:
        parse_csv_row(row)
    assert info.value.kind == kind


def test_csv_time_is_optional_and_json_numbers_stay_exact() -> None:
    assert parse_csv_row(["kraken", "btc/usd", "1.10", ""]).exchange_time_ms == 0
    tick = parse_json_line(b'{"exchange":"binance","symbol":"X","price":70000.10,"time":5}')
    assert str(tick.price) == "70000.10"


async def test_configuration_errors() -> None:
    with pytest.raises(ConfigError, match="speed"):
        Replay({"file": "x", "speed": -1.0})
    states, metrics = FeedStates(), Metrics()
    send, _ = trio.open_memory_channel[Tick](0)
    with pytest.raises(ConfigError, match="must name a recording"):
        await Replay({}).run(send, ManualDemand(), states.get("replay"), metrics)
    with pytest.raises(ConfigError, match="does not exist"):
        await Replay({"file": "/no/such/file.jsonl"}).run(
            send, ManualDemand(), states.get("replay"), metrics
        )


async def test_a_recording_with_nothing_playable_does_not_spin(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_text("exchange,symbol,price,time\nbinance,X,zero,1\n")
    states, metrics = FeedStates(), Metrics()
    send, _ = trio.open_memory_channel[Tick](1)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            source = Replay({"file": str(path), "loop": True, "speed": 0.0})
            await nursery.start(source.run, send, ManualDemand(), states.get("replay"), metrics)
            await trio.testing.wait_all_tasks_blocked()
            await trio.sleep(0.1)  # a looping source would have re-read the file many times
            assert metrics.frames_skipped.get(exchange="replay", kind="bad-price") == 1
            nursery.cancel_scope.cancel()
