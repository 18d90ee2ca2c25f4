"""``/api/stream`` (web/stream.py) at its limits, against the real server: the total cap, a slow
client of a user whose fires keep coming (dropped; the user's other stream keeps them all),
histories past the client's buffer room (skipped, never a drop), and the protocol's refusals
not covered by test_stream.py (messages that are not JSON objects, unknown types, malformed
symbols, oversized messages, other paths). Fires are published through the engine's
``FirePublisher`` (``parts.fires``) as the recorder does once a batch is committed."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import trio
from trio_websocket import ConnectionRejected, WebSocketConnection, open_websocket_url

from engine.events import FireEvent
from engine.model import Tick
from tests.web.conftest import Api, start_api
from tests.web.test_stream import (
    FAST,
    _closed,
    _json,
    _raw_never_reading,
    _read_to_end,
    _subscribe,
    _token,
    _url,
)
from web.context import WebSettings


@asynccontextmanager
async def _served(
    store: Any, nursery: trio.Nursery, tmp_path: Path, settings: WebSettings
) -> AsyncIterator[Api]:
    async with start_api(store, nursery, tmp_path, settings=settings) as started:
        yield started


async def _admitted(ws: WebSocketConnection, token: str) -> None:
    """Authenticate; return once the server has admitted the stream (a ping answered)."""
    await ws.send_message(json.dumps({"type": "auth", "token": token}))
    await ws.send_message(json.dumps({"type": "ping"}))
    assert await _json(ws) == {"type": "pong"}


async def test_total_cap_closes_4503_and_a_closed_stream_frees_its_place(
    store: Any, nursery: trio.Nursery, tmp_path: Path
) -> None:
    settings = replace(FAST, stream_total=3, stream_per_user=5)
    async with _served(store, nursery, tmp_path, settings) as api:
        tokens = [await _token(api, name) for name in ("gina", "hugo")]
        with trio.fail_after(15):
            async with (
                open_websocket_url(_url(api)) as one,
                open_websocket_url(_url(api)) as two,
            ):
                await _admitted(one, tokens[0])
                await _admitted(two, tokens[1])
                async with open_websocket_url(_url(api)) as three:
                    await _admitted(three, tokens[0])
                    async with open_websocket_url(_url(api)) as four:
                        await four.send_message(json.dumps({"type": "auth", "token": tokens[1]}))
                        code, reason = await _closed(four)
                    assert code == 4503 and reason == "server full: at most 3 streams"
                # three closed: its place is free for anyone
                async with open_websocket_url(_url(api)) as again:
                    await _admitted(again, tokens[1])


def _fire(alert_id: int, owner_id: int) -> FireEvent:
    return FireEvent(
        alert_id,
        owner_id,
        "binance",
        "BTCUSDT",
        "above",
        Decimal("70000." + "1" * 40),
        Decimal("70001." + "2" * 40),
        1_700_000_000_000 + alert_id,
    )


async def test_a_slow_stream_of_a_user_is_dropped_while_the_users_other_stream_gets_every_fire(
    store: Any, nursery: trio.Nursery, tmp_path: Path
) -> None:
    async with _served(store, nursery, tmp_path, FAST) as api:
        headers = await api.user("ivan")
        token = headers["Authorization"].removeprefix("Bearer ")
        owner = (await api.client.get("/api/users/me", headers=headers)).json()["id"]
        other = await _token(api, "jane")
        with trio.fail_after(30):
            stream, raw = await _raw_never_reading(api, token, [])
            try:
                async with (
                    open_websocket_url(_url(api)) as fast,
                    open_websocket_url(_url(api)) as bystander,
                ):
                    await _admitted(fast, token)
                    await _admitted(bystander, other)
                    fires = 0
                    for _batch in range(100):  # ~200 KB of fires for each of ivan's streams
                        batch = [_fire(fires + i, owner) for i in range(1, 9)]
                        api.ctx.fires.publish(batch)
                        for event in batch:  # every one, in order: fast is never dropped
                            assert (await _json(fast))["alert_id"] == event.alert_id
                        fires += len(batch)
                    api.ctx.fires.publish([_fire(fires + 1, owner)])  # and it keeps receiving
                    size = len(await fast.get_message())  # bytes of one fire message
                    await bystander.send_message(json.dumps({"type": "ping"}))
                    assert await _json(bystander) == {"type": "pong"}  # never ivan's fires
                # The slow stream reads at last: what was in flight, then the close.
                with trio.move_on_after(5) as waited:
                    total, closes = await _read_to_end(stream, raw)
                assert not waited.cancelled_caught, "the slow stream's socket stayed open"
                assert closes == [(4429, "too slow: the client did not read its messages")]
                assert 2048 < total < fires * size / 2, (total, fires * size)
            finally:
                await stream.aclose()


def _record(api: Api, symbol: str, price: str, seconds_ago: int) -> None:
    tick = Tick("binance", symbol, Decimal(price), 1_700_000_000_000, 1)
    api.ctx.history.record(tick, int(time.time()) - seconds_ago)


async def test_histories_past_the_buffer_room_are_skipped_and_prices_still_come(
    store: Any, nursery: trio.Nursery, tmp_path: Path
) -> None:
    settings = replace(FAST, stream_buffer=8)
    symbols = [f"H{i:02d}USDT" for i in range(12)]
    async with _served(store, nursery, tmp_path, settings) as api:
        token = await _token(api, "kate")
        for symbol in symbols:
            for ago in (3, 2, 1):
                _record(api, symbol, f"{10 + ago}.5", ago)
        with trio.fail_after(15):
            async with open_websocket_url(_url(api)) as ws:
                assert (await _subscribe(ws, token, *symbols))["type"] == "subscribed"
                await ws.send_message(json.dumps({"type": "ping"}))
                histories = []
                while (message := await _json(ws))["type"] != "pong":
                    histories.append(message)
                # A history is offered while 2 of the 8 places are free: 6 or 7 of the 12 fit
                # (7 when the answer went straight to the waiting writer, taking no place).
                assert len(histories) in (6, 7)
                assert [h["type"] for h in histories] == ["history"] * len(histories)
                assert [h["symbol"] for h in histories] == symbols[: len(histories)]
                assert [p["price"] for p in histories[0]["points"]] == ["13.5", "12.5", "11.5"]
                for symbol in (symbols[0], symbols[-1]):  # a skipped one gets prices too
                    api.tick(symbol, "42.5")
                prices = [await _json(ws) for _ in range(2)]
                assert sorted((p["type"], p["symbol"]) for p in prices) == [
                    ("price", symbols[0]),
                    ("price", symbols[-1]),
                ]
                await ws.send_message(json.dumps({"type": "ping"}))
                assert await _json(ws) == {"type": "pong"}  # still served, nothing else came


async def test_protocol_refusals(store: Any, nursery: trio.Nursery, tmp_path: Path) -> None:
    async with _served(store, nursery, tmp_path, FAST) as api:
        token = await _token(api, "liam")
        with trio.fail_after(15):
            async with open_websocket_url(_url(api)) as ws:
                await _admitted(ws, token)
                await ws.send_message(json.dumps({"type": "dance"}))
                assert await _json(ws) == {
                    "type": "error",
                    "detail": "unknown message type 'dance'",
                }
                await ws.send_message(json.dumps({"type": "subscribe", "symbols": "BTCUSDT"}))
                error = await _json(ws)
                assert error == {
                    "type": "error",
                    "detail": "symbols must be a list of {exchange, symbol} objects",
                }
                await ws.send_message(
                    json.dumps({"type": "subscribe", "symbols": [{"exchange": "nowhere"}]})
                )
                assert (await _json(ws))["type"] == "error"
                await ws.send_message(b'{"type": "ping"}')  # a binary frame of JSON text is read
                assert await _json(ws) == {"type": "pong"}
                await ws.send_message(json.dumps([1, 2]))
                assert await _closed(ws) == (4400, "messages are JSON objects")
            async with open_websocket_url(_url(api)) as ws:
                await _admitted(ws, token)
                await ws.send_message(b"\xff\xfe")
                assert await _closed(ws) == (4400, "messages are JSON text")
            async with open_websocket_url(_url(api)) as ws:
                await _admitted(ws, token)
                await ws.send_message("x" * (16 * 1024 + 1))
                assert await _closed(ws) == (1009, "message too big")
            # Another path: closed before the handshake completes, which hypercorn sends as 403.
            with pytest.raises(ConnectionRejected) as rejected:
                async with open_websocket_url(f"ws://127.0.0.1:{api.port}/api/streams"):
                    pass
            assert rejected.value.status_code == 403
