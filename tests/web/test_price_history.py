"""GET /api/prices/{symbol}/history through the real path: a local Binance frame crosses the
feed, the book actor records it, and the route reads it back (issue 16)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
import trio

from engine.app import Engine, run_engine
from engine.feeds.testing import read_binance_request, serve_exchange
from engine.plugins.registry import load_registry
from tests.test_end_to_end import engine_config, login, trade


@pytest.fixture
async def database(fresh_database: Callable[[], Awaitable[str]]) -> str:
    return await fresh_database()


async def test_the_history_of_a_symbol_fed_by_a_binance_frame(
    tmp_path: Path, database: str
) -> None:
    with trio.fail_after(30):
        async with serve_exchange(read_binance_request) as server, trio.open_nursery() as nursery:
            engine: Engine = await nursery.start(
                run_engine, engine_config(tmp_path, database, server), load_registry()
            )
            base = f"http://127.0.0.1:{engine.http_port}"
            async with httpx.AsyncClient(base_url=base) as client:
                headers = await login(client, "alice")
                url = "/api/prices/btcusdt/history"
                assert (await client.get(url, headers=headers)).status_code == 404
                body = {"symbol": "BTCUSDT", "target_price": "90000", "direction": "above"}
                response = await client.post("/api/alerts", headers=headers, json=body)
                assert response.status_code == 201  # the symbol is subscribed: frames flow
                await server.wait_until(lambda: server.subscribed() == {"BTCUSDT"})
                before = int(time.time())
                for n, price in enumerate(["70000.10", "70000.20", "70000.30"], 1):
                    await server.send_for("BTCUSDT", trade("BTCUSDT", price, n))
                while True:  # until the book actor has recorded the last frame
                    points = engine.parts.history.points("binance", "BTCUSDT")
                    if points and points[-1][1] == Decimal("70000.30"):
                        break
                    await trio.sleep(0.01)

                response = await client.get(url + "?exchange=binance", headers=headers)
                assert response.status_code == 200
                history = response.json()
                assert (history["exchange"], history["symbol"]) == ("binance", "BTCUSDT")
                points = history["points"]
                assert 1 <= len(points) <= 3  # one per second: the frames span one or two
                assert points[-1]["price"] == "70000.30"
                times = [datetime.fromisoformat(p["time"]).timestamp() for p in points]
                assert times == sorted(set(times))
                assert before <= times[0] and times[-1] <= time.time()

                assert (await client.get(url)).status_code == 401
                other = "/api/prices/ETHUSDT/history"
                assert (await client.get(other, headers=headers)).status_code == 404
                odd = "/api/prices/BTCUSDT/history?exchange=nyse"
                assert (await client.get(odd, headers=headers)).status_code == 422
            nursery.cancel_scope.cancel()
