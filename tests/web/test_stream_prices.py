"""The one task that sends every stream its prices (``web.stream.run_prices``) and the load
gauge that slows it while the engine is busy (``web.stream.Load``), on real streams, last
prices and channels, with trio's autojump clock for the rounds."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
import trio
import trio.testing

from engine.book.prices import LastPrices
from engine.model import Tick
from web import stream
from web.stream import Client, Load, Streams, run_prices

BTC = ("binance", "BTCUSDT")
ETH = ("binance", "ETHUSDT")


def _tick(key: tuple[str, str], price: str) -> Tick:
    return Tick(key[0], key[1], Decimal(price), 1_700_000_000_000)


def _client(streams: Streams, user_id: int, *symbols: tuple[str, str]) -> Any:
    send, receive = trio.open_memory_channel[bytes](64)
    client = Client(user_id, send, set(symbols))
    streams.add(client)
    return client, receive


def _read(receive: Any) -> list[dict[str, Any]]:
    out = []
    while True:
        try:
            out.append(json.loads(receive.receive_nowait()))
        except trio.WouldBlock:
            return out


async def test_a_round_sends_each_client_its_changed_prices_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    prices, streams = LastPrices(), Streams(per_user=5, total=10)
    alice, alice_in = _client(streams, 1, BTC, ETH)
    _bob, bob_in = _client(streams, 2, BTC)
    prices.update(_tick(BTC, "70000.10"))
    async with trio.open_nursery() as nursery:
        await nursery.start(run_prices, streams, prices, 0.25)
        await trio.sleep(0.3)
        first = _read(alice_in)
        assert [(m["symbol"], m["price"]) for m in first] == [("BTCUSDT", "70000.10")]
        assert _read(bob_in) == first  # one encoding, both clients
        await trio.sleep(1)  # nothing changed: nothing sent again
        assert _read(alice_in) == [] and _read(bob_in) == []

        prices.update(_tick(ETH, "3000"))
        prices.update(_tick(BTC, "70000.20"))
        prices.update(_tick(BTC, "70000.30"))  # the latest only
        await trio.sleep(0.25)
        got = sorted((m["symbol"], m["price"]) for m in _read(alice_in))
        assert got == [("BTCUSDT", "70000.30"), ("ETHUSDT", "3000")]
        assert [m["price"] for m in _read(bob_in)] == ["70000.30"]

        # Unsubscribed, then subscribed again: the price it has then comes, changed or not.
        alice.symbols.discard(ETH)
        alice.sent.pop(ETH)
        await trio.sleep(0.25)
        alice.symbols.add(ETH)
        await trio.sleep(0.25)
        assert [m["symbol"] for m in _read(alice_in)] == ["ETHUSDT"]
        nursery.cancel_scope.cancel()


async def test_a_full_client_is_dropped_and_the_others_still_get_theirs(
    autojump_clock: trio.testing.MockClock,
) -> None:
    prices, streams = LastPrices(), Streams(per_user=5, total=10)
    send, _never_read = trio.open_memory_channel[bytes](1)
    slow = Client(1, send, {BTC, ETH})
    streams.add(slow)
    _fast, fast_in = _client(streams, 2, BTC, ETH)
    prices.update(_tick(BTC, "1"))
    prices.update(_tick(ETH, "2"))
    async with trio.open_nursery() as nursery:
        await nursery.start(run_prices, streams, prices, 0.25)
        await trio.sleep(0.3)
        assert slow.dropped.is_set()  # two prices, room for one
        assert len(_read(fast_in)) == 2
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize(("busy", "rounds"), [(False, 40), (True, 10)])
async def test_rounds_slow_while_the_engine_is_busy(
    autojump_clock: trio.testing.MockClock,
    monkeypatch: pytest.MonkeyPatch,
    busy: bool,
    rounds: int,
) -> None:
    monkeypatch.setattr(Load, "busy", lambda self: busy)
    prices, streams = LastPrices(), Streams(per_user=5, total=10)
    _alice, alice_in = _client(streams, 1, BTC)
    sent = 0
    async with trio.open_nursery() as nursery:
        await nursery.start(run_prices, streams, prices, 0.25, 1.0)
        for i in range(400):  # a new price every 25 ms for 10 s
            prices.update(_tick(BTC, str(i + 1)))
            await trio.sleep(0.025)
            sent += len(_read(alice_in))
        nursery.cancel_scope.cancel()
    assert abs(sent - rounds) <= 1


def test_the_load_gauge_turns_busy_past_three_quarters_of_a_core_and_calm_under_half(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = {"cpu": 0.0, "wall": 0.0}
    monkeypatch.setattr(stream.time, "process_time", lambda: clock["cpu"])
    monkeypatch.setattr(stream.time, "perf_counter", lambda: clock["wall"])
    load = Load()

    def after(cpu_s: float) -> bool:
        clock["cpu"] += cpu_s
        clock["wall"] += 1.0
        return load.busy()

    assert after(0.7) is False  # under BUSY: calm
    assert after(0.8) is True  # past BUSY
    assert after(0.6) is True  # between CALM and BUSY: stays busy
    assert after(0.4) is False  # under CALM
    assert after(0.6) is False  # between: stays calm
