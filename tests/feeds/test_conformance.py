"""engine/feeds/testing.py: the conformance kit passes Binance and catches a broken exchange."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

import pytest
import trio

from engine.feeds.binance import Binance
from engine.feeds.testing import ManualDemand, read_binance_request, run_conformance

from .conftest import DATA


async def test_binance_passes_the_conversation() -> None:
    with trio.fail_after(20):
        report = await run_conformance(Binance, DATA / "binance.jsonl", read_binance_request)
    assert sorted((t.symbol, t.price) for t in report.ticks) == [
        ("BNBBTC", Decimal("0.001")),
        ("BNBBTC", Decimal("0.001")),
        ("BNBBTC", Decimal("0.0025")),
        ("BNBUSDT", Decimal("25.35855000")),
    ]
    ops = [(r.op, set(r.symbols)) for r in report.requests]
    assert ops[0] == ("subscribe", {"BNBBTC", "BNBUSDT"})
    assert ("unsubscribe", {"BNBBTC"}) in ops and ("unsubscribe", {"BNBUSDT"}) in ops


class NeverUnsubscribes(Binance):
    def unsubscribe_frames(self, symbols: Sequence[str]) -> list[str]:
        return []


async def test_a_broken_exchange_does_not_pass() -> None:
    with pytest.raises(trio.TooSlowError), trio.fail_after(3):
        await run_conformance(NeverUnsubscribes, DATA / "binance.jsonl", read_binance_request)


def test_manual_demand_fixture_is_provided_by_the_kit(manual_demand: ManualDemand) -> None:
    manual_demand.set("binance", ["BTCUSDT"])
    assert manual_demand.symbols("binance") == {"BTCUSDT"}
    assert manual_demand.version("binance") == 1 and manual_demand.version("kraken") == 0


def test_frames_by_symbol_drops_control_and_error_frames(binance_frames: list[str]) -> None:
    from engine.feeds.testing import frames_by_symbol

    error = '{"error":{"code":2,"msg":"Invalid request"},"id":1}'
    grouped = frames_by_symbol(Binance(), [*binance_frames, error, "not json"])
    assert sorted(grouped) == ["BNBBTC", "BNBUSDT"]
    assert len(grouped["BNBBTC"]) == 3 and len(grouped["BNBUSDT"]) == 1
