"""``triggerbook plugins serve``'s server with the whole engine: an alert fires from its trades.

What an operator does to try a plugin without the exchange: serve the plugin's recorded frames,
point ``[feeds.<name>] url`` at the server, create an alert over the API, and watch it fire from a
trade the server made up for a symbol the recording never had.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from decimal import Decimal
from functools import partial
from pathlib import Path

import httpx
import pytest
import trio

from engine.app import Engine, run_engine
from engine.feeds.binance import Binance
from engine.feeds.testing import ExchangeServer, find_frames, load_frames, serve_plugin
from engine.plugins.registry import load_registry
from tests.test_end_to_end import engine_config, login, wait_for_status


@pytest.fixture
async def database(fresh_database: Callable[[], Awaitable[str]]) -> str:
    return await fresh_database()


async def test_an_alert_fires_in_the_real_engine_from_a_served_plugin(
    tmp_path: Path, database: str
) -> None:
    frames_file = find_frames(Binance())
    assert frames_file is not None and frames_file.name == "binance.jsonl"
    # The recording's first trade is BNBBTC at 0.001; made-up trades of any symbol walk from it.
    serve = partial(serve_plugin, Binance(), load_frames(frames_file), interval_s=0.02)
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            server: ExchangeServer = await nursery.start(serve)
            config = engine_config(tmp_path, database, server)
            engine: Engine = await nursery.start(run_engine, config, load_registry())
            base = f"http://127.0.0.1:{engine.http_port}"
            async with httpx.AsyncClient(base_url=base) as client:
                headers = await login(client, "operator")
                body = {"symbol": "ethusdt", "target_price": "0.0011", "direction": "below"}
                response = await client.post("/api/alerts", headers=headers, json=body)
                assert response.status_code == 201, response.text
                await server.wait_until(lambda: "ETHUSDT" in server.subscribed())
                fired = await wait_for_status(client, headers, response.json()["id"], "triggered")
                assert Decimal(str(fired["triggered_price"])) <= Decimal("0.0011")
            nursery.cancel_scope.cancel()
