"""``/api/stream`` against the whole engine (``run_engine``, the local Binance server): a committed
fire reaches its owner's stream and nobody else's, and a subscription to a symbol with prices
gets its recent history before anything else about it."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from trio_websocket import WebSocketConnection, open_websocket_url

from engine.app import Engine, run_engine
from engine.feeds.testing import read_binance_request, serve_exchange
from engine.plugins.registry import load_registry
from tests.test_end_to_end import engine_config, login, trade, wait_for_status


@pytest.fixture
async def database(fresh_database: Callable[[], Awaitable[str]]) -> str:
    return await fresh_database()


async def _json(ws: WebSocketConnection) -> dict[str, Any]:
    return json.loads(await ws.get_message())


async def _open(ws: WebSocketConnection, headers: dict[str, str]) -> None:
    """Authenticate and wait until the server has admitted the stream (a ping answered)."""
    token = headers["Authorization"].removeprefix("Bearer ")
    await ws.send_message(json.dumps({"type": "auth", "token": token}))
    await ws.send_message(json.dumps({"type": "ping"}))
    assert await _json(ws) == {"type": "pong"}


async def test_each_user_gets_only_their_own_fires_and_history_comes_first(
    tmp_path: Path, database: str
) -> None:
    with trio.fail_after(30):
        async with serve_exchange(read_binance_request) as server, trio.open_nursery() as nursery:
            engine: Engine = await nursery.start(
                run_engine, engine_config(tmp_path, database, server), load_registry()
            )
            base = f"http://127.0.0.1:{engine.http_port}"
            url = f"ws://127.0.0.1:{engine.http_port}/api/stream"
            async with httpx.AsyncClient(base_url=base) as client:
                alice, bob = await login(client, "alice"), await login(client, "bob")
                ids, targets = {}, {}
                for name, headers, target in (
                    ("alice", alice, "70000.10"),
                    ("bob", bob, "70000.05"),
                ):
                    body = {"symbol": "BTCUSDT", "target_price": target, "direction": "above"}
                    response = await client.post("/api/alerts", headers=headers, json=body)
                    assert response.status_code == 201
                    ids[name] = response.json()["id"]
                    targets[name] = response.json()["target_price"]
                await server.wait_until(lambda: server.subscribed() == {"BTCUSDT"})

                async with (
                    open_websocket_url(url) as alice_ws,
                    open_websocket_url(url) as bob_ws,
                ):
                    await _open(alice_ws, alice)
                    await _open(bob_ws, bob)
                    await server.send_for("BTCUSDT", trade("BTCUSDT", "70000.10", 1))
                    for name, ws in (("alice", alice_ws), ("bob", bob_ws)):
                        fire = await _json(ws)
                        assert fire.pop("triggered_at") > 0
                        assert fire == {
                            "type": "fire",
                            "alert_id": ids[name],
                            "exchange": "binance",
                            "symbol": "BTCUSDT",
                            "direction": "above",
                            "target_price": targets[name],
                            "price": "70000.10",
                        }
                    # Committed before announced: the alert reads as triggered already.
                    for name, headers in (("alice", alice), ("bob", bob)):
                        await wait_for_status(client, headers, ids[name], "triggered")
                    # Nothing else arrives: never the other user's fire.
                    for ws in (alice_ws, bob_ws):
                        await ws.send_message(json.dumps({"type": "ping"}))
                        assert await _json(ws) == {"type": "pong"}

                async with open_websocket_url(url) as ws:
                    await _open(ws, alice)
                    listed = [{"exchange": "binance", "symbol": "BTCUSDT"}]
                    await ws.send_message(json.dumps({"type": "subscribe", "symbols": listed}))
                    assert (await _json(ws))["type"] == "subscribed"
                    history = await _json(ws)
                    assert history["type"] == "history"
                    assert (history["exchange"], history["symbol"]) == ("binance", "BTCUSDT")
                    assert [p["price"] for p in history["points"]] == ["70000.10"]
                    assert isinstance(history["points"][0]["time"], int)
            nursery.cancel_scope.cancel()
