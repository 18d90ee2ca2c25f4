"""engine/feeds/status.py: readiness reasons and the exported gauges."""

from __future__ import annotations

import time

from engine.feeds.status import FeedStates
from engine.metrics import Metrics


def test_ready_reasons() -> None:
    states = FeedStates()
    idle = states.get("kraken")
    assert states.ready() == (True, {})
    binance = states.get("binance")
    binance.wanted = frozenset({"BTCUSDT"})
    binance.last_error = "ConnectionClosed: 1006"
    assert states.ready() == (False, {"binance": "not connected: ConnectionClosed: 1006"})
    binance.mark_connected()
    binance.rejected["NOPE"] = "code 2: invalid symbol"
    assert states.ready() == (True, {})
    assert binance.as_dict()["rejected"] == {"NOPE": "code 2: invalid symbol"}
    assert binance.since is not None and idle.since is None
    assert "binance" in states and [n for n, _ in states.items()] == ["binance", "kraken"]
    binance.mark_disconnected("FeedStale: no frame")
    assert binance.since is None and binance.last_error == "FeedStale: no frame"


def test_frame_age_and_gauges() -> None:
    states = FeedStates()
    state = states.get("binance")
    assert state.last_frame_age_s() is None and state.last_frame_at is None
    state.last_frame_ns = time.monotonic_ns() - 2_000_000_000
    assert 1.9 < state.last_frame_age_s() < 10  # type: ignore[operator]
    state.mark_connected()
    state.symbols = frozenset({"BTCUSDT", "ETHUSDT"})
    metrics = Metrics()
    states.export_to(metrics)
    text = metrics.render()
    assert 'triggerbook_feed_connected{exchange="binance"} 1' in text
    assert 'triggerbook_feed_symbols{exchange="binance"} 2' in text
    assert 'triggerbook_feed_last_frame_age_seconds{exchange="binance"}' in text
