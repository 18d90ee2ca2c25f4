"""engine/feeds/connection.py, and the runner's holding of ticks until the socket is drained."""

from __future__ import annotations

from decimal import Decimal
from functools import partial

import pytest
import trio
import trio_websocket

from benchmarks.feed import serve_recording, trade_frames
from engine.errors import ConfigError, FeedError
from engine.feeds.binance import Binance
from engine.feeds.connection import _host_header, open_feed_connection
from engine.feeds.runner import HOLD_MAX, ExchangeFeed
from engine.feeds.status import FeedStates
from engine.feeds.testing import ExchangeServer, ManualDemand, read_binance_request
from engine.metrics import Metrics
from engine.model import Tick
from engine.plugins.urls import split_ws_url

from .conftest import eventually, start_harness, trade


@pytest.mark.parametrize(
    ("url", "parts"),
    [
        ("ws://127.0.0.1:9000", ("127.0.0.1", 9000, "/", False)),
        ("wss://stream.binance.com:9443/stream", ("stream.binance.com", 9443, "/stream", True)),
        ("wss://ws.kraken.com/v2", ("ws.kraken.com", 443, "/v2", True)),
        ("ws://example.org/a/b?token=x&y=1", ("example.org", 80, "/a/b?token=x&y=1", False)),
        ("ws://[::1]:8080/s", ("::1", 8080, "/s", False)),
    ],
)
def test_urls_split_into_host_port_resource_and_tls(
    url: str, parts: tuple[str, int, str, bool]
) -> None:
    assert split_ws_url(url) == parts


@pytest.mark.parametrize("url", ["http://example.org/", "example.org:80", "ws://", "wss:///path"])
def test_a_url_that_is_not_a_websocket_url_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match="not a WebSocket URL"):
        split_ws_url(url)


def test_a_refused_url_is_shown_without_its_query_or_credentials() -> None:
    with pytest.raises(ValueError) as caught:
        split_ws_url("https://user:pw@ws.finnhub.io/feed?token=s3cret#frag")
    assert "s3cret" not in str(caught.value) and "pw" not in str(caught.value)
    assert "'https://ws.finnhub.io/feed'" in str(caught.value)


def test_an_exchange_with_a_url_that_is_not_a_websocket_url_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"\[feeds.binance\] url: not a WebSocket URL"):
        Binance({"url": "http://127.0.0.1:9000"})


def test_the_host_header_names_a_port_only_when_it_is_not_the_default() -> None:
    assert _host_header("example.org", 80, False) == "example.org"
    assert _host_header("example.org", 443, True) == "example.org"
    assert _host_header("example.org", 443, False) == "example.org:443"
    assert _host_header("::1", 9000, False) == "[::1]:9000"


async def test_on_drained_runs_before_each_wait_and_idle_marks_the_wait() -> None:
    """The server sends a burst in one go; every message is taken before the reader waits again,
    and ``idle`` is true exactly while it waits."""
    burst = [f"m{i}" for i in range(50)]
    drained = 0

    async def on_drained() -> None:
        nonlocal drained
        drained += 1

    async def serve(request: trio_websocket.WebSocketRequest) -> None:
        ws = await request.accept()
        for message in burst:
            await ws.send_message(message)
        await ws.get_message()  # until the client closes

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            listener = await nursery.start(
                trio_websocket.serve_websocket, serve, "127.0.0.1", 0, None
            )
            url = f"ws://127.0.0.1:{listener.port}/x"
            async with open_feed_connection(url, connect_timeout=5, on_drained=on_drained) as (
                ws,
                stream,
            ):
                got = []
                for _ in burst:
                    got.append(await ws.get_message())
                assert got == burst
                await eventually(lambda: stream.idle)
                assert drained >= 2  # once before the handshake reply, at least once after
            assert not stream.idle
            nursery.cancel_scope.cancel()


async def test_a_silent_server_is_a_connection_timeout() -> None:
    async def silent(stream: trio.SocketStream) -> None:
        await trio.sleep_forever()

    async def nothing() -> None:
        return None

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            (listener,) = await nursery.start(partial(trio.serve_tcp, silent, 0, host="127.0.0.1"))
            port = listener.socket.getsockname()[1]
            with pytest.raises(trio_websocket.ConnectionTimeout):
                async with open_feed_connection(
                    f"ws://127.0.0.1:{port}", connect_timeout=0.2, on_drained=nothing
                ):
                    pass
            nursery.cancel_scope.cancel()


async def test_a_refused_connection_is_a_handshake_error() -> None:
    async def nothing() -> None:
        return None

    sock = trio.socket.socket()
    await sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    with trio.fail_after(10), pytest.raises(trio_websocket.HandshakeError):
        async with open_feed_connection(
            f"ws://127.0.0.1:{port}", connect_timeout=5, on_drained=nothing
        ):
            pass


@pytest.mark.parametrize("count", [1, 3, HOLD_MAX - 1, HOLD_MAX, HOLD_MAX + 1, 200])
async def test_every_tick_of_a_burst_arrives_in_order_with_no_later_frame(count: int) -> None:
    """Ticks are held while the reader has more to hand over; the last of a burst must still go
    out at once, not wait for a frame that never comes."""
    prices = [f"{70000 + i}.5" for i in range(count)]
    frames = [trade("BTCUSDT", p, 1700000000000 + i, i) for i, p in enumerate(prices)]
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            h = await start_harness(nursery, frames=frames)
            h.want("BTCUSDT")
            ticks = await h.ticks(count)
            assert [t.price for t in ticks] == [Decimal(p) for p in prices]
            assert [t.exchange_time_ms for t in ticks] == [1700000000000 + i for i in range(count)]
            nursery.cancel_scope.cancel()


async def test_a_burst_wakes_the_book_far_less_than_once_per_frame() -> None:
    """Frames written to the socket at once (the benchmark's exchange) reach a consumer that
    drains everything queued per wake, as the book does, in about one wake per ``HOLD_MAX``
    frames rather than one per frame."""
    count = 2000
    frames = trade_frames(count)
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            serve = partial(trio.serve_tcp, partial(serve_recording, frames, []), 0)
            (listener,) = await nursery.start(partial(serve, host="127.0.0.1"))
            url = f"ws://127.0.0.1:{listener.socket.getsockname()[1]}"
            demand, metrics = ManualDemand(), Metrics()
            send, recv = trio.open_memory_channel[Tick](count)
            feed = ExchangeFeed(Binance({"url": url}), demand, FeedStates().get("binance"), metrics)
            await nursery.start(feed.run, send)
            demand.set("binance", ["BTCUSDT"])
            wakes, received = 0, []
            while len(received) < count:
                received.append(await recv.receive())
                wakes += 1
                while True:
                    try:
                        received.append(recv.receive_nowait())
                    except trio.WouldBlock:
                        break
            assert [t.exchange_time_ms for t in received] == [*range(count - 1), count]
            assert wakes <= count // 4, wakes
            nursery.cancel_scope.cancel()


async def test_held_ticks_are_delivered_when_the_server_closes_after_the_burst() -> None:
    frames = [trade("BTCUSDT", f"{200 + i}", 1700000000000 + i, i) for i in range(30)]
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            h = await start_harness(nursery, frames=frames)
            h.want("BTCUSDT")
            await h.server.wait_until(lambda: h.server.subscribed() == {"BTCUSDT"})
            await h.server.close()
            ticks = await h.ticks(30)
            assert [t.price for t in ticks] == [Decimal(200 + i) for i in range(30)]
            nursery.cancel_scope.cancel()


async def test_a_slow_book_gets_every_tick_in_order_through_a_one_slot_channel() -> None:
    count = 100
    frames = [trade("BTCUSDT", f"{300 + i}", 1700000000000 + i, i) for i in range(count)]
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            server = await nursery.start(
                ExchangeServer(read_binance_request, {"BTCUSDT": frames}).run
            )
            demand, metrics = ManualDemand(), Metrics()
            send, recv = trio.open_memory_channel[Tick](1)
            state = FeedStates().get("binance")
            feed = ExchangeFeed(Binance({"url": server.url}), demand, state, metrics)
            await nursery.start(feed.run, send)
            demand.set("binance", ["BTCUSDT"])
            prices = []
            for _ in range(count):
                prices.append((await recv.receive()).price)
                await trio.sleep(0.001)  # slower than the socket
            assert prices == [Decimal(300 + i) for i in range(count)]
            assert state.reconnects == 0
            nursery.cancel_scope.cancel()


async def test_a_closed_tick_channel_stops_the_feed_with_a_feed_error() -> None:
    frames = [trade("BTCUSDT", f"{400 + i}", 1700000000000 + i, i) for i in range(5)]
    with trio.fail_after(10):
        with pytest.RaisesGroup(FeedError, flatten_subgroups=True, allow_unwrapped=True):
            async with trio.open_nursery() as nursery:
                server = await nursery.start(
                    ExchangeServer(read_binance_request, {"BTCUSDT": frames}).run
                )
                demand, metrics = ManualDemand(), Metrics()
                send, recv = trio.open_memory_channel[Tick](100)
                await recv.aclose()
                feed = ExchangeFeed(
                    Binance({"url": server.url}), demand, FeedStates().get("binance"), metrics
                )
                await nursery.start(feed.run, send)
                demand.set("binance", ["BTCUSDT"])
                await trio.sleep_forever()
