"""OKX v5 through the real feed runner, against a local server speaking its protocol."""

from __future__ import annotations

import json
import math
from decimal import Decimal
from pathlib import Path

import trio
from triggerbook_okx import Okx

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
    run_heartbeat_check,
    serve_exchange,
)
from engine.metrics import Metrics
from engine.model import Tick

RECORDING = Path(__file__).parent / "data" / "okx.jsonl"
FRAMES = [f for f in load_frames(RECORDING) if json.loads(f).get("event") != "error"]
UNKNOWN = "FOO-USDT"


class FastOkx(Okx):
    """OKX paced for a test: the real 480 requests an hour would space messages 7.5 s apart."""

    max_messages_per_second = 1000.0


def read_request(message: str) -> Request | None:
    """The server side of OKX v5: ``pong`` for ``ping``; one reply per argument, an ``error``
    (code 60018) for :data:`UNKNOWN`; each reply echoes the request's ``id``."""
    if message == "ping":
        return Request("ping", (), ("pong",))
    msg = json.loads(message)
    echo = {"id": msg["id"]} if "id" in msg else {}
    replies = []
    symbols = []
    for arg in msg["args"]:
        if arg["instId"] == UNKNOWN:
            text = f"Wrong URL or channel:{arg['channel']},instId:{UNKNOWN} doesn't exist."
            error = {**echo, "event": "error", "code": "60018", "msg": text}
            replies.append(json.dumps(error))
        else:
            ack = {**echo, "event": msg["op"], "arg": arg, "connId": "a4d3ae55"}
            replies.append(json.dumps(ack))
            symbols.append(arg["instId"])
    return Request(msg["op"], tuple(symbols), tuple(replies))


async def test_conversation_through_the_runner() -> None:
    with trio.fail_after(10):
        report = await run_conformance(FastOkx, FRAMES, read_request)
    assert [(t.symbol, t.price) for t in report.ticks] == [
        ("BTC-USDT", Decimal("42219.9")),
        ("BTC-USDT", Decimal("9999.99")),
    ]
    ops = [json.loads(m)["op"] for m in report.received if m != "ping"]
    assert ops == ["subscribe", "unsubscribe"]


async def test_text_ping_pong_notice_and_a_rejected_instrument() -> None:
    class FastPing(FastOkx):
        heartbeat_interval_s = 0.02

    demand = ManualDemand()
    states = FeedStates()
    metrics = Metrics()
    send, recv = trio.open_memory_channel[Tick](math.inf)
    trade = json.loads(FRAMES[1])
    trade["data"][0]["px"] = "43000.10"
    with trio.fail_after(10):
        async with serve_exchange(read_request, {}) as server:
            feed = ExchangeFeed(FastPing({"url": server.url}), demand, states.get("okx"), metrics)
            async with trio.open_nursery() as nursery:
                await nursery.start(feed.run, send)
                demand.set("okx", {"BTC-USDT", UNKNOWN})
                await server.wait_until(lambda: server.received.count("ping") >= 3)
                await server.send(FRAMES[4])  # notice 64008: a control frame
                await server.send_for("BTC-USDT", json.dumps(trade))
                tick = await recv.receive()
                assert (tick.symbol, str(tick.price)) == ("BTC-USDT", "43000.10")
                state = states.get("okx")
                assert list(state.rejected) == [UNKNOWN]
                assert state.rejected[UNKNOWN].startswith("60018 ")
                assert state.symbols == {"BTC-USDT"} and state.connected
                assert dict(metrics.frames_skipped.values) == {}
                assert len(server.connections) == 1
                nursery.cancel_scope.cancel()


async def test_subscription_changes_are_paced_by_the_request_limit(autojump_clock: object) -> None:
    """At 480 requests an hour, the second request goes out 7.5 s after the first."""
    sent_at: list[float] = []

    def timed(message: str) -> Request | None:
        sent_at.append(trio.current_time())
        return read_request(message)

    class Quiet(Okx):
        stale_after_s = math.inf

    demand = ManualDemand()
    send, _recv = trio.open_memory_channel[Tick](math.inf)
    with trio.fail_after(60):
        async with serve_exchange(timed, {}) as server:
            feed = ExchangeFeed(
                Quiet({"url": server.url}), demand, FeedStates().get("okx"), Metrics()
            )
            async with trio.open_nursery() as nursery:
                await nursery.start(feed.run, send)
                demand.set("okx", {"BTC-USDT"})
                await server.wait_until(lambda: server.subscribed() == {"BTC-USDT"})
                demand.set("okx", {"BTC-USDT", "ETH-USDT"})
                await server.wait_until(lambda: server.subscribed() == {"BTC-USDT", "ETH-USDT"})
                nursery.cancel_scope.cancel()
    requests = [t for t, m in zip(sent_at, server.received, strict=True) if m != "ping"]
    assert requests[1] - requests[0] >= 3600 / 480


def test_no_request_names_more_than_symbols_per_message() -> None:
    requests = check_symbols_per_message(Okx(), read_request)
    assert max(len(r.symbols) for r in requests) == Okx.symbols_per_message == 100


def test_the_text_ping_and_its_pong() -> None:
    assert check_heartbeat(Okx(), ["pong"]) == "ping"


def test_an_error_reply_maps_to_the_request_id() -> None:
    [rejected] = check_rejection(Okx(), read_request, ["BTC-USDT", UNKNOWN], request_id=12)
    assert (rejected.request_id, rejected.symbols) == (12, (UNKNOWN,))


def _refuse_anonymously(message: str) -> Request | None:
    """OKX's ``60012 Invalid request`` for the whole request: the words name no instrument."""
    msg = json.loads(message)
    error = {"id": msg["id"], "event": "error", "code": "60012", "msg": "Invalid request"}
    return Request(msg["op"], (), (json.dumps(error),))


def test_an_error_naming_no_instrument_still_maps_to_its_request() -> None:
    [rejected] = check_rejection(Okx(), _refuse_anonymously, ["BTC-USDT"], request_id=3)
    assert (rejected.request_id, rejected.symbols) == (3, ())


async def test_pongs_keep_a_quiet_connection_fresh() -> None:
    with trio.fail_after(10):
        await run_heartbeat_check(Okx, read_request, "BTC-USDT")
