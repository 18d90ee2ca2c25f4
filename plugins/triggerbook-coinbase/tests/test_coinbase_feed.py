"""Coinbase through the real feed runner, against a local server speaking its protocol."""

from __future__ import annotations

import json
import math
from decimal import Decimal
from pathlib import Path

import trio
import trio.testing
from triggerbook_coinbase import Coinbase

from engine.feeds.runner import ExchangeFeed
from engine.feeds.status import FeedStates
from engine.feeds.testing import (
    ManualDemand,
    Request,
    check_bad_frames,
    check_heartbeat,
    check_parse,
    check_rejection,
    check_symbols_per_message,
    frames_by_symbol,
    load_frames,
    run_conformance,
    serve_exchange,
)
from engine.metrics import Metrics
from engine.model import Tick

RECORDING = Path(__file__).parent / "data" / "coinbase.jsonl"
# The recording without its error reply (which raises rather than giving ticks).
FRAMES = [f for f in load_frames(RECORDING) if json.loads(f)["type"] != "error"]
UNKNOWN = "FOO-BAR"


def read_request(message: str) -> Request | None:
    """The server side of Coinbase's subscribe/unsubscribe: a ``subscriptions`` reply listing
    the products, and an ``error`` reply first if one of them is :data:`UNKNOWN`."""
    msg = json.loads(message)
    products = tuple(msg["product_ids"])
    replies = []
    if UNKNOWN in products and msg["type"] == "subscribe":
        error = {
            "type": "error",
            "message": "Failed to subscribe",
            "reason": f"{UNKNOWN} is not a valid product",
        }
        replies.append(json.dumps(error))
        products = tuple(p for p in products if p != UNKNOWN)
    channels = [{"name": c, "product_ids": list(products)} for c in msg["channels"]]
    replies.append(json.dumps({"type": "subscriptions", "channels": channels}))
    return Request(msg["type"], products, tuple(replies))


def test_the_kit_agrees_with_the_recording() -> None:
    check_parse(
        Coinbase(),
        FRAMES,
        [
            ("ETH-USD", "1285.22", 1666222102061),
            ("BTC-USD", "400.23", 1415348367028),
            ("BTC-USD", "400.23", 1415348367028),
        ],
    )
    assert check_bad_frames(Coinbase(), ["nope", '{"type": "l2update"}']) == [
        "not-json",
        "unknown-event",
    ]


async def test_conversation_through_the_runner() -> None:
    with trio.fail_after(10):
        report = await run_conformance(Coinbase, FRAMES, read_request)
    subscribes = [json.loads(m) for m in report.received if '"subscribe"' in m]
    assert all(m["channels"] == ["matches", "heartbeat"] for m in subscribes)
    assert {t.symbol for t in report.ticks} == {"BTC-USD", "ETH-USD"}


async def test_conversation_on_the_ticker_channel() -> None:
    with trio.fail_after(10):
        report = await run_conformance(Coinbase, FRAMES, read_request, config={"channel": "ticker"})
    assert all('"ticker"' in m for m in report.received)


async def _next_price(recv: trio.MemoryReceiveChannel[Tick], price: str) -> Tick:
    """Skip ticks until one with ``price``: every frame before it has been handled."""
    while (tick := await recv.receive()).price != Decimal(price):
        pass
    return tick


def _match(price: str, time: str) -> str:
    return json.dumps({**json.loads(FRAMES[3]), "price": price, "time": time})


async def test_rejected_product_and_garbage_leave_the_connection_up() -> None:
    demand = ManualDemand()
    states = FeedStates()
    metrics = Metrics()
    send, recv = trio.open_memory_channel[Tick](math.inf)
    by_symbol = frames_by_symbol(Coinbase(), FRAMES)
    with trio.fail_after(10):
        async with serve_exchange(read_request, by_symbol) as server:
            feed = ExchangeFeed(
                Coinbase({"url": server.url}), demand, states.get("coinbase"), metrics
            )
            async with trio.open_nursery() as nursery:
                await nursery.start(feed.run, send)
                demand.set("coinbase", {"BTC-USD", UNKNOWN})
                await server.wait_until(lambda: server.subscribed() == {"BTC-USD"})
                # the error reply came before this frame, so it has been handled once this ticks
                await server.send_for("BTC-USD", _match("400.5", "2014-11-07T08:19:29Z"))
                await _next_price(recv, "400.5")
                state = states.get("coinbase")
                assert "not a valid product" in state.rejected[UNKNOWN]
                assert state.connected and state.symbols == {"BTC-USD"}

                await server.garbage()
                await server.send_for("BTC-USD", _match("401.5", "2014-11-07T08:19:30Z"))
                tick = await _next_price(recv, "401.5")
                assert tick.exchange_time_ms == 1415348370000
                assert metrics.frames_skipped.get(exchange="coinbase", kind="not-json") == 1
                assert metrics.frames_skipped.get(exchange="coinbase", kind="unknown-event") == 2
                assert len(server.connections) == 1 and state.reconnects == 0

                # the rejected product leaves demand: it is forgotten, nothing is sent for it
                demand.set("coinbase", {"BTC-USD"})
                await trio.testing.wait_all_tasks_blocked()
                assert UNKNOWN not in state.rejected
                assert all(UNKNOWN not in r.symbols for r in server.requests[1:])
                nursery.cancel_scope.cancel()


async def test_a_dropped_connection_resubscribes_what_is_live() -> None:
    demand = ManualDemand()
    states = FeedStates()
    send, _recv = trio.open_memory_channel[Tick](math.inf)
    with trio.fail_after(10):
        async with serve_exchange(read_request, {}) as server:
            feed = ExchangeFeed(
                Coinbase({"url": server.url}), demand, states.get("coinbase"), Metrics()
            )
            async with trio.open_nursery() as nursery:
                await nursery.start(feed.run, send)
                demand.set("coinbase", {"BTC-USD", "ETH-USD"})
                await server.wait_until(lambda: server.subscribed() == {"BTC-USD", "ETH-USD"})
                await server.close()
                await server.wait_until(
                    lambda: len(server.live) == 1 and len(server.connections) == 2
                )
                await server.wait_until(lambda: server.subscribed() == {"BTC-USD", "ETH-USD"})
                assert states.get("coinbase").reconnects == 1
                nursery.cancel_scope.cancel()


def test_no_request_names_more_than_symbols_per_message() -> None:
    requests = check_symbols_per_message(Coinbase(), read_request)
    assert max(len(r.symbols) for r in requests) == Coinbase.symbols_per_message == 100


def test_no_heartbeat_to_send_the_heartbeat_channel_keeps_it_fresh() -> None:
    assert check_heartbeat(Coinbase()) is None


def test_an_error_names_the_refused_product() -> None:
    # Coinbase echoes no request id: the product in the reason is what maps it back.
    [rejected] = check_rejection(Coinbase(), read_request, ["BTC-USD", UNKNOWN])
    assert (rejected.request_id, rejected.symbols) == (None, (UNKNOWN,))
