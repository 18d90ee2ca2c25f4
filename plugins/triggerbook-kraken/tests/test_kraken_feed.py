"""Kraken v2 through the real feed runner, against a local server speaking its protocol."""

from __future__ import annotations

import json
import math
from decimal import Decimal
from pathlib import Path

import trio
import trio.testing
from triggerbook_kraken import Kraken

from engine.feeds.runner import ExchangeFeed
from engine.feeds.status import FeedStates
from engine.feeds.testing import (
    ManualDemand,
    Request,
    check_heartbeat,
    check_parse,
    check_rejection,
    check_symbols_per_message,
    load_frames,
    run_conformance,
    run_heartbeat_check,
    serve_exchange,
)
from engine.metrics import Metrics
from engine.model import Tick

RECORDING = Path(__file__).parent / "data" / "kraken.jsonl"
FRAMES = [f for f in load_frames(RECORDING) if json.loads(f).get("success") is not False]
STATUS = FRAMES[0]
UNKNOWN = "FOO/USD"


def read_request(message: str) -> Request | None:
    """The server side of Kraken v2: one ack per symbol (``success: false`` for
    :data:`UNKNOWN`), each echoing the request's ``req_id``, and ``pong`` for ``ping``."""
    msg = json.loads(message)
    method = msg["method"]
    if method == "ping":
        return Request("ping", (), (json.dumps({"method": "pong", "time_in": "", "time_out": ""}),))
    params = msg["params"]
    replies = []
    symbols = []
    for symbol in params["symbol"]:
        ack: dict[str, object] = {"method": method, "success": symbol != UNKNOWN}
        if "req_id" in msg:
            ack["req_id"] = msg["req_id"]
        if symbol == UNKNOWN:
            ack.update(error=f"Currency pair not supported {symbol}", symbol=symbol)
        else:
            ack["result"] = {"channel": params["channel"], "symbol": symbol}
            symbols.append(symbol)
        replies.append(json.dumps(ack))
    return Request(method, tuple(symbols), tuple(replies))


def test_the_kit_agrees_with_the_recording() -> None:
    algo = ("ALGO/USD", "0.10035", 1695632671742)
    check_parse(Kraken(), FRAMES, [("MATIC/USD", "0.5117", 1695628177708), algo, algo])


async def test_conversation_through_the_runner() -> None:
    with trio.fail_after(10):
        report = await run_conformance(Kraken, FRAMES, read_request, greeting=[STATUS])
    subscribes = [json.loads(m) for m in report.received if '"subscribe"' in m]
    assert subscribes and all(m["params"]["snapshot"] is False for m in subscribes)
    assert {t.symbol for t in report.ticks} == {"ALGO/USD", "MATIC/USD"}


class FastPing(Kraken):
    """Kraken with its ping every 20 ms, to see the heartbeat without waiting 30 s."""

    heartbeat_interval_s = 0.02
    max_messages_per_second = 1000.0


async def test_ping_pong_and_a_rejected_pair_keep_the_connection_up() -> None:
    demand = ManualDemand()
    states = FeedStates()
    metrics = Metrics()
    send, recv = trio.open_memory_channel[Tick](math.inf)
    update = json.loads(FRAMES[3])
    with trio.fail_after(10):
        async with serve_exchange(read_request, {}, greeting=[STATUS]) as server:
            feed = ExchangeFeed(
                FastPing({"url": server.url}), demand, states.get("kraken"), metrics
            )
            async with trio.open_nursery() as nursery:
                await nursery.start(feed.run, send)
                demand.set("kraken", {"MATIC/USD", UNKNOWN})
                await server.wait_until(lambda: sum('"ping"' in m for m in server.received) >= 3)
                update["data"][0]["price"] = 0.52
                await server.send_for("MATIC/USD", json.dumps(update))
                while (await recv.receive()).price != Decimal("0.52"):
                    pass
                state = states.get("kraken")
                assert state.rejected == {UNKNOWN: f"Currency pair not supported {UNKNOWN}"}
                assert state.symbols == {"MATIC/USD"} and state.connected
                assert dict(metrics.frames_skipped.values) == {}  # pongs and acks are control
                assert len(server.connections) == 1 and state.reconnects == 0
                nursery.cancel_scope.cancel()


async def test_silence_while_subscribed_is_stale_and_reconnects() -> None:
    class Impatient(Kraken):
        stale_after_s = 0.2
        backoff_base_s = 0.01

    demand = ManualDemand()
    states = FeedStates()
    send, _recv = trio.open_memory_channel[Tick](math.inf)
    with trio.fail_after(10):
        async with serve_exchange(read_request, {}) as server:
            feed = ExchangeFeed(
                Impatient({"url": server.url}), demand, states.get("kraken"), Metrics()
            )
            async with trio.open_nursery() as nursery:
                await nursery.start(feed.run, send)
                demand.set("kraken", {"BTC/USD"})
                # the server sends nothing after the ack: no heartbeat, so the feed goes stale
                await server.wait_until(lambda: len(server.connections) >= 2)
                await server.wait_until(lambda: server.subscribed() == {"BTC/USD"})
                await trio.testing.wait_all_tasks_blocked()
                assert "FeedStale" in (states.get("kraken").last_error or "")
                nursery.cancel_scope.cancel()


def test_no_request_names_more_than_symbols_per_message() -> None:
    requests = check_symbols_per_message(Kraken(), read_request)
    assert max(len(r.symbols) for r in requests) == Kraken.symbols_per_message == 50


def test_the_ping_and_its_pong() -> None:
    # The ping keeps Kraken from closing the connection; the heartbeat channel's frame every
    # second is what keeps it fresh within stale_after_s.
    pong = '{"method":"pong","req_id":101}'
    assert check_heartbeat(Kraken(), [pong], exchange_sends_every_s=1.0) == '{"method":"ping"}'


def test_a_failed_ack_maps_to_the_request_id_and_its_pair() -> None:
    [rejected] = check_rejection(Kraken(), read_request, ["BTC/USD", UNKNOWN], request_id=69)
    assert (rejected.request_id, rejected.symbols) == (69, (UNKNOWN,))


async def test_pongs_keep_a_quiet_connection_fresh() -> None:
    with trio.fail_after(10):
        await run_heartbeat_check(Kraken, read_request, "BTC/USD")
