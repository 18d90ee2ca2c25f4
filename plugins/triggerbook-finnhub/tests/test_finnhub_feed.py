"""Finnhub through the real feed runner, against a local server speaking its protocol."""

from __future__ import annotations

import json
import math
from decimal import Decimal
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import trio
from triggerbook_finnhub import Finnhub

from engine.feeds.runner import ExchangeFeed
from engine.feeds.status import FeedStates
from engine.feeds.testing import (
    ManualDemand,
    Request,
    check_heartbeat,
    check_rejection,
    check_symbols_per_message,
    load_frames,
    run_conformance,
    serve_exchange,
)
from engine.metrics import Metrics
from engine.model import Tick

RECORDING = Path(__file__).parent / "data" / "finnhub.jsonl"
FRAMES = [f for f in load_frames(RECORDING) if json.loads(f)["type"] != "error"]
CONFIG = {"enabled": True, "token": "test-token"}


def read_request(message: str) -> Request | None:
    """The server side of Finnhub: (un)subscribe one symbol, answered by a ``ping`` frame (Finnhub
    sends no ack; the ping gives the runner a first frame)."""
    msg = json.loads(message)
    return Request(msg["type"], (msg["symbol"],), ('{"type":"ping"}',))


def _split_by_symbol(frames: list[str]) -> list[str]:
    """One frame per symbol: the kit groups a frame under its first tick's symbol."""
    out = []
    for frame in frames:
        msg = json.loads(frame)
        for symbol in dict.fromkeys(t["s"] for t in msg.get("data", ())):
            data = [t for t in msg["data"] if t["s"] == symbol]
            out.append(json.dumps({"data": data, "type": "trade"}))
    return out


async def test_conversation_through_the_runner() -> None:
    with trio.fail_after(10):
        report = await run_conformance(
            Finnhub, _split_by_symbol(FRAMES), read_request, config=CONFIG
        )
    prices = {(t.symbol, str(t.price)) for t in report.ticks}
    assert prices == {
        ("BINANCE:BTCUSDT", "7296.89"),
        ("TSLA", "122.1"),
        ("AAPL", "129.58"),
        ("AAPL", "129.575"),
    }
    subscribes = [json.loads(m) for m in report.received if '"subscribe"' in m]
    assert len(subscribes) == 3 and all(set(m) == {"type", "symbol"} for m in subscribes)


async def test_token_in_the_url_and_a_second_connection_past_fifty_symbols() -> None:
    class Fast(Finnhub):
        max_messages_per_second = 10_000.0

    symbols = {f"SYM{i:02d}" for i in range(60)}
    demand = ManualDemand()
    states = FeedStates()
    metrics = Metrics()
    send, recv = trio.open_memory_channel[Tick](math.inf)
    with trio.fail_after(10):
        async with serve_exchange(read_request, {}) as server:
            exchange = Fast({**CONFIG, "url": server.url})
            feed = ExchangeFeed(exchange, demand, states.get("finnhub"), metrics)
            async with trio.open_nursery() as nursery:
                await nursery.start(feed.run, send)
                demand.set("finnhub", symbols)
                await server.wait_until(lambda: server.subscribed() == symbols)
                assert sorted(len(c.subscribed) for c in server.live) == [10, 50]
                for conn in server.connections:
                    assert parse_qs(urlsplit(conn.path).query) == {"token": ["test-token"]}

                await server.send_for("SYM07", FRAMES[0].replace("BINANCE:BTCUSDT", "SYM07"))
                tick = await recv.receive()
                assert (tick.symbol, tick.price) == ("SYM07", Decimal("7296.89"))
                assert dict(metrics.frames_skipped.values) == {}
                nursery.cancel_scope.cancel()


async def test_an_error_frame_is_logged_and_the_feed_stays_up() -> None:
    demand = ManualDemand()
    states = FeedStates()
    send, recv = trio.open_memory_channel[Tick](math.inf)
    with trio.fail_after(10):
        async with serve_exchange(read_request, {}) as server:
            exchange = Finnhub({**CONFIG, "url": server.url})
            feed = ExchangeFeed(exchange, demand, states.get("finnhub"), Metrics())
            async with trio.open_nursery() as nursery:
                await nursery.start(feed.run, send)
                demand.set("finnhub", {"AAPL"})
                await server.wait_until(lambda: server.subscribed() == {"AAPL"})
                await server.send('{"msg":"Subscribing to too many symbols","type":"error"}')
                await server.send(FRAMES[2])
                assert (await recv.receive()).symbol == "TSLA"
                state = states.get("finnhub")
                assert state.last_error is not None and "too many symbols" in state.last_error
                assert state.connected and len(server.connections) == 1
                nursery.cancel_scope.cancel()


def test_one_symbol_per_message() -> None:
    requests = check_symbols_per_message(Finnhub(CONFIG), read_request)
    assert {len(r.symbols) for r in requests} == {1}


def test_no_heartbeat_to_send_finnhub_pings_us() -> None:
    assert check_heartbeat(Finnhub(CONFIG)) is None


def _too_many(message: str) -> Request | None:
    return Request("subscribe", (), ('{"msg":"Subscribing to too many symbols","type":"error"}',))


def test_an_error_names_neither_request_nor_symbol() -> None:
    # Finnhub echoes no id and names no symbol: the kit can only see the rejection.
    [rejected] = check_rejection(Finnhub(CONFIG), _too_many, ["AAPL"], anonymous=True)
    assert (rejected.request_id, rejected.symbols) == (None, ())
