"""``/api/stream`` (web/stream.py) against the real server: auth in the first message, throttled
prices from the book's last prices, the per-user cap, and a client that never reads dropped
while another keeps receiving. Clients are real WebSocket clients (trio-websocket), and the
slow one a raw socket speaking wsproto that never reads after subscribing."""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import trio
import wsproto
import wsproto.events as ev
from trio_websocket import ConnectionClosed, WebSocketConnection, open_websocket_url

from tests.web.conftest import SETTINGS, Api, start_api

FAST = replace(
    SETTINGS,
    stream_interval_s=0.02,
    stream_busy_interval_s=None,  # the timing tests want every round, however busy the run
    stream_per_user=2,
    stream_buffer=32,
    stream_auth_s=0.5,
)


@pytest.fixture
async def api(store: Any, nursery: trio.Nursery, tmp_path: Path) -> AsyncIterator[Api]:
    async with start_api(store, nursery, tmp_path, settings=FAST) as started:
        yield started


def _url(api: Api) -> str:
    return f"ws://127.0.0.1:{api.port}/api/stream"


async def _token(api: Api, username: str) -> str:
    headers = await api.user(username)
    return headers["Authorization"].removeprefix("Bearer ")


async def _closed(ws: WebSocketConnection) -> tuple[int, str]:
    """Read until the server closes; its code and reason."""
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            await ws.get_message()
    return closed.value.reason.code, closed.value.reason.reason or ""


async def _json(ws: WebSocketConnection) -> dict[str, Any]:
    return json.loads(await ws.get_message())


async def _subscribe(ws: WebSocketConnection, token: str, *symbols: str) -> dict[str, Any]:
    await ws.send_message(json.dumps({"type": "auth", "token": token}))
    listed = [{"exchange": "binance", "symbol": s} for s in symbols]
    await ws.send_message(json.dumps({"type": "subscribe", "symbols": listed}))
    return await _json(ws)


async def test_auth_refused(api: Api) -> None:
    with trio.fail_after(10):
        async with open_websocket_url(_url(api)) as ws:  # no message at all
            code, reason = await _closed(ws)
        assert code == 4401 and "unauthorized" in reason
        async with open_websocket_url(_url(api)) as ws:
            await ws.send_message(json.dumps({"type": "auth", "token": "not.a.token"}))
            assert (await _closed(ws))[0] == 4401
        token = await _token(api, "alice")
        async with open_websocket_url(_url(api)) as ws:  # a first message that is not auth
            await ws.send_message(json.dumps({"type": "subscribe", "symbols": []}))
            code, reason = await _closed(ws)
        assert code == 4401 and "first message must be auth" in reason
        async with open_websocket_url(_url(api)) as ws:
            await ws.send_message("not json")
            assert (await _closed(ws))[0] == 4401
        async with open_websocket_url(f"{_url(api)}?token={token}") as ws:  # never in the URL
            await ws.send_message(json.dumps({"type": "ping"}))
            assert (await _closed(ws))[0] == 4401


async def test_subscribe_and_receive_throttled_prices(api: Api) -> None:
    token = await _token(api, "bob")
    api.tick("BTCUSDT", "50000.10")
    with trio.fail_after(10):
        async with open_websocket_url(_url(api)) as ws:
            await ws.send_message(json.dumps({"type": "auth", "token": token}))
            await ws.send_message(
                json.dumps({"type": "subscribe", "symbols": [{"symbol": "btc/usdt"}]})
            )
            assert await _json(ws) == {
                "type": "subscribed",
                "symbols": [{"exchange": "binance", "symbol": "BTCUSDT"}],
            }
            first = await _json(ws)
            at = first.pop("at")  # the engine's second, the history's clock
            assert isinstance(at, int) and abs(at - time.time()) < 5
            assert first == {
                "type": "price",
                "exchange": "binance",
                "symbol": "BTCUSDT",
                "price": "50000.10",
                "time": 1_700_000_000_000,
            }
            for i in range(200):  # many ticks between two sends: the latest only, throttled
                api.tick("BTCUSDT", f"50001.{i:03d}")
            start = trio.current_time()
            got = await _json(ws)
            assert got["price"] == "50001.199"
            api.tick("BTCUSDT", "50002")
            assert (await _json(ws))["price"] == "50002"
            assert trio.current_time() - start >= FAST.stream_interval_s * 0.9
            await ws.send_message(json.dumps({"type": "ping"}))
            assert await _json(ws) == {"type": "pong"}
            too_many = [{"symbol": f"COIN{i}USDT"} for i in range(FAST.stream_symbols + 1)]
            await ws.send_message(json.dumps({"type": "subscribe", "symbols": too_many}))
            error = await _json(ws)
            assert error["type"] == "error" and f"at most {FAST.stream_symbols}" in error["detail"]
            await ws.send_message(json.dumps({"type": "subscribe", "symbols": [{"symbol": "!"}]}))
            assert (await _json(ws))["type"] == "error"
            await ws.send_message(
                json.dumps({"type": "unsubscribe", "symbols": [{"symbol": "BTCUSDT"}]})
            )
            assert await _json(ws) == {"type": "subscribed", "symbols": []}
            api.tick("BTCUSDT", "1")
            with trio.move_on_after(FAST.stream_interval_s * 5):
                assert await ws.get_message() is None  # nothing comes once unsubscribed


async def test_connections_per_user_are_capped(api: Api) -> None:
    token = await _token(api, "carol")
    with trio.fail_after(10):
        async with (
            open_websocket_url(_url(api)) as one,
            open_websocket_url(_url(api)) as two,
            open_websocket_url(_url(api)) as three,
        ):
            assert (await _subscribe(one, token))["type"] == "subscribed"
            assert (await _subscribe(two, token))["type"] == "subscribed"
            await three.send_message(json.dumps({"type": "auth", "token": token}))
            code, reason = await _closed(three)
            assert code == 4408 and f"at most {FAST.stream_per_user} per user" in reason
        async with (  # closing freed the places
            open_websocket_url(_url(api)) as one,
            open_websocket_url(_url(api)) as two,
        ):
            assert (await _subscribe(one, token))["type"] == "subscribed"
            assert (await _subscribe(two, token))["type"] == "subscribed"


async def _raw_never_reading(
    api: Api, token: str, symbols: list[str]
) -> tuple[trio.SocketStream, wsproto.WSConnection]:
    """A WebSocket client on a socket with a tiny receive buffer that subscribes, then never
    reads again (so the server's writes back up at once)."""
    sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
    await sock.connect(("127.0.0.1", api.port))
    stream = trio.SocketStream(sock)
    ws = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
    await stream.send_all(ws.send(ev.Request(host="127.0.0.1", target="/api/stream")))
    while True:
        ws.receive_data(await stream.receive_some(4096))
        if any(isinstance(e, ev.AcceptConnection) for e in ws.events()):
            break
    listed = [{"symbol": s} for s in symbols]
    for message in ({"type": "auth", "token": token}, {"type": "subscribe", "symbols": listed}):
        await stream.send_all(ws.send(ev.TextMessage(json.dumps(message))))
    return stream, ws


async def _read_to_end(
    stream: trio.SocketStream, ws: wsproto.WSConnection
) -> tuple[int, list[tuple[int, str]]]:
    """Everything the server sent the slow client: bytes, and the close frames among them."""
    total, closes = 0, []
    try:
        while data := await stream.receive_some(65536):
            total += len(data)
            ws.receive_data(data)
            closes += [(e.code, e.reason) for e in ws.events() if isinstance(e, ev.CloseConnection)]
    except trio.BrokenResourceError:  # reset by the server after dropping it
        pass
    return total, closes


async def test_a_client_that_stops_reading_is_dropped(api: Api) -> None:
    slow_token = await _token(api, "dave")
    token = await _token(api, "erin")
    symbols = [f"S{i}USDT" for i in range(FAST.stream_symbols)]
    with trio.fail_after(30):
        stream, raw = await _raw_never_reading(api, slow_token, symbols)
        async with open_websocket_url(_url(api)) as ws:
            assert (await _subscribe(ws, token, "S0USDT"))["type"] == "subscribed"
            for n in range(1, 101):  # ~2 s of big prices on 20 symbols: dave falls behind
                for s in symbols:
                    api.tick(s, f"{n}.{'1' * 60}")
                got = await _json(ws)  # erin keeps up, one price per interval
                assert got["price"].startswith(f"{n}.")
        with trio.move_on_after(5) as waited:  # dave's connection was closed by the server
            total, closes = await _read_to_end(stream, raw)
        assert not waited.cancelled_caught, "the slow client was never dropped"
        await stream.aclose()
        print("slow client got", total, "bytes before it was dropped; closes:", closes)
        assert closes in ([], [(4429, "too slow: the client did not read its messages")])


async def test_a_silent_client_is_closed_as_idle(
    store: Any, nursery: trio.Nursery, tmp_path: Path
) -> None:
    """A stream that sends nothing for ``stream_idle_s`` is closed (4000); pings keep it open."""
    settings = replace(FAST, stream_idle_s=0.5)
    with trio.fail_after(20):
        async with start_api(store, nursery, tmp_path, settings=settings) as api:
            token = await _token(api, "alice")
            async with open_websocket_url(_url(api)) as ws:
                await _subscribe(ws, token, "BTCUSDT")
                for _ in range(4):  # 1.2 s in all, never 0.5 s without a message
                    await trio.sleep(0.3)
                    await ws.send_message(json.dumps({"type": "ping"}))
                    while (await _json(ws))["type"] != "pong":
                        pass
                start = trio.current_time()
                code, reason = await _closed(ws)
            assert code == 4000 and "idle" in reason
            assert 0.3 < trio.current_time() - start < 2


async def test_streams_leave_a_fifth_of_the_connections_to_the_api(
    store: Any, nursery: trio.Nursery, tmp_path: Path
) -> None:
    """With ``[http] max_connections = 10`` at most 8 streams open (4503 past it, naming the
    cap), and the API still answers beside them."""
    environ = {"TRIGGERBOOK_HTTP_MAX_CONNECTIONS": "10"}
    settings = replace(FAST, stream_per_user=5)
    with trio.fail_after(30):
        async with (
            start_api(store, nursery, tmp_path, environ, settings=settings) as api,
            contextlib.AsyncExitStack() as stack,
        ):
            tokens = [await _token(api, "alice"), await _token(api, "bob")]
            for i in range(8):
                ws = await stack.enter_async_context(open_websocket_url(_url(api)))
                await _subscribe(ws, tokens[i % 2], "BTCUSDT")
            async with open_websocket_url(_url(api)) as ninth:
                await ninth.send_message(json.dumps({"type": "auth", "token": tokens[0]}))
                code, reason = await _closed(ninth)
            assert code == 4503 and "at most 8 streams" in reason
            assert (await api.client.get("/healthz")).status_code == 200


async def test_streams_are_closed_with_1001_when_the_server_shuts_down(
    store: Any, nursery: trio.Nursery, tmp_path: Path
) -> None:
    """At shutdown every stream ends at once with 1001 (not cut at the end of the drain), and
    the server ends as soon as its clients have gone (hypercorn's WebSocket ping loop, asleep
    for its 15 s, does not hold the drain: ``web/listener.py``)."""
    ended = trio.Event()

    async def serve(*, task_status: trio.TaskStatus[tuple[Api, trio.CancelScope]]) -> None:
        with trio.CancelScope() as scope:
            async with (
                trio.open_nursery() as server,
                start_api(store, server, tmp_path, settings=FAST) as api,
            ):
                task_status.started((api, scope))
                await trio.sleep_forever()
        ended.set()

    with trio.fail_after(20):
        api, scope = await nursery.start(serve)
        token = await _token(api, "alice")
        async with open_websocket_url(_url(api)) as ws:
            await _subscribe(ws, token, "BTCUSDT")
            scope.cancel()
            start = trio.current_time()
            code, reason = await _closed(ws)
        assert code == 1001 and "shutting down" in reason
        await ended.wait()
        assert trio.current_time() - start < FAST.grace_s / 2
