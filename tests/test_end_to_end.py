"""The whole engine, end to end: a REST client, the real store, the real book, a local Binance.

``run_engine`` starts exactly what ``triggerbook run`` starts (store, book, fire recorder, feeds,
web). An alert created over HTTP subscribes its symbol on the local Binance server; the frame that
crosses it fires it; the fire is committed with its outbox row; a restart rebuilds the book from
the database and subscribes again.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
import trio

from engine.app import Engine, run_engine
from engine.config import Config
from engine.feeds.testing import ExchangeServer, read_binance_request, serve_exchange
from engine.plugins.registry import load_registry

PASSWORD = "correct horse battery"


def trade(symbol: str, price: str, trade_id: int) -> str:
    """A combined-stream trade frame as Binance documents it."""
    data = {
        "e": "trade",
        "E": 1_700_000_000_000 + trade_id,
        "s": symbol,
        "t": trade_id,
        "p": price,
        "q": "0.01",
        "T": 1_700_000_000_000 + trade_id,
        "m": True,
        "M": True,
    }
    return json.dumps({"stream": f"{symbol.lower()}@trade", "data": data})


@pytest.fixture
async def database(fresh_database: Callable[[], Awaitable[str]]) -> str:
    """A database of its own on the session's server, so the engine starts from empty tables."""
    return await fresh_database()


def engine_config(tmp_path: Path, database: str, server: ExchangeServer) -> Config:
    path = tmp_path / "config.toml"
    path.write_text(
        f'[http]\nport = 0\n[database]\nurl = "{database}"\ndata_dir = "{tmp_path / "pg"}"\n'
        f'[auth]\nsecret = "{"s" * 48}"\n[feeds.binance]\nurl = "{server.url}"\n'
    )
    return load_registry().load_config(path, environ={})


async def login(client: httpx.AsyncClient, username: str) -> dict[str, str]:
    body = {"username": username, "password": PASSWORD, "email": f"{username}@example.com"}
    assert (await client.post("/api/auth/register", json=body)).status_code == 201
    response = await client.post(
        "/api/auth/login", json={"username": username, "password": PASSWORD}
    )
    assert response.status_code == 200
    return {"Authorization": f"Bearer {response.json()['access']}"}


async def wait_for_status(
    client: httpx.AsyncClient, headers: dict[str, str], alert_id: int, status: str
) -> dict[str, object]:
    while True:
        alert = (await client.get(f"/api/alerts/{alert_id}", headers=headers)).json()
        if alert["status"] == status:
            return alert
        await trio.sleep(0.01)


async def test_an_alert_created_over_the_api_fires_from_a_binance_frame(
    tmp_path: Path, database: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="triggerbook.console")
    with trio.fail_after(30):
        async with serve_exchange(read_binance_request) as server, trio.open_nursery() as nursery:
            config = engine_config(tmp_path, database, server)
            engine: Engine = await nursery.start(run_engine, config, load_registry())
            base = f"http://127.0.0.1:{engine.http_port}"
            async with httpx.AsyncClient(base_url=base) as client:
                headers = await login(client, "alice")
                response = await client.post(
                    "/api/alerts",
                    headers=headers,
                    json={"symbol": "btcusdt", "target_price": "70000.10", "direction": "above"},
                )
                assert response.status_code == 201
                alert = response.json()
                assert alert["symbol"] == "BTCUSDT" and alert["status"] == "created"

                await server.wait_until(lambda: server.subscribed() == {"BTCUSDT"})
                await server.send_for("BTCUSDT", trade("BTCUSDT", "70000.09", 1))
                await server.send_for("BTCUSDT", trade("BTCUSDT", "70000.10", 2))

                fired = await wait_for_status(client, headers, alert["id"], "triggered")
                assert fired["triggered_price"] == "70000.10"
                assert fired["triggered_at"] is not None
                # Nothing live on BTCUSDT any more: the feed unsubscribes it.
                await server.wait_until(lambda: server.subscribed() == set())

                prices = (await client.get("/api/prices/BTCUSDT", headers=headers)).json()
                assert Decimal(prices["price"]) == Decimal("70000.10")
                # Direction inferred from the last price: a target below it means "below".
                response = await client.post(
                    "/api/alerts", headers=headers, json={"symbol": "BTCUSDT", "target_price": 1}
                )
                assert response.json()["direction"] == "below"

            # The console sink delivers the fire's one notification (the only enabled sink).
            notes = await wait_delivered(engine, alert["id"])
            assert [(n.channel, n.destination_id, n.state) for n in notes] == [
                ("console", None, "delivered")
            ]
            nursery.cancel_scope.cancel()
    lines = [r.getMessage() for r in caplog.records if r.name == "triggerbook.console"]
    assert len(lines) == 1
    assert f"alert {alert['id']} fired" in lines[0]
    assert "symbol=BTCUSDT direction=above target=70,000.1 price=70,000.10" in lines[0]


async def wait_delivered(engine: Engine, alert_id: int) -> list:
    """The alert's notifications once none is pending any more."""
    while True:
        notes = (await engine.parts.store.outbox.notifications_of([alert_id])).get(alert_id, [])
        if notes and all(n.state != "pending" for n in notes):
            return notes
        await trio.sleep(0.01)


async def test_a_restart_rebuilds_the_book_and_resubscribes(tmp_path: Path, database: str) -> None:
    registry = load_registry()
    with trio.fail_after(40):
        async with serve_exchange(read_binance_request) as server:
            config = engine_config(tmp_path, database, server)
            async with trio.open_nursery() as nursery:
                engine: Engine = await nursery.start(run_engine, config, registry)
                base = f"http://127.0.0.1:{engine.http_port}"
                async with httpx.AsyncClient(base_url=base) as client:
                    headers = await login(client, "bob")
                    kept = []
                    for symbol, target in (("ETHUSDT", "2500"), ("SOLUSDT", "0.00000001")):
                        body = {"symbol": symbol, "target_price": target, "direction": "below"}
                        response = await client.post("/api/alerts", headers=headers, json=body)
                        kept.append(response.json()["id"])
                    body = {"symbol": "BNBUSDT", "target_price": "600", "direction": "above"}
                    gone = (await client.post("/api/alerts", headers=headers, json=body)).json()
                    deleted = await client.delete(f"/api/alerts/{gone['id']}", headers=headers)
                    assert deleted.status_code == 200
                await server.wait_until(lambda: server.subscribed() == {"ETHUSDT", "SOLUSDT"})
                before = engine.parts.book.snapshot()
                nursery.cancel_scope.cancel()
            await server.wait_until(lambda: not server.live)

            async with trio.open_nursery() as nursery:
                engine = await nursery.start(run_engine, config, registry)
                assert engine.parts.book.snapshot() == before
                assert sorted(t.id for t in before) == sorted(kept)
                engine.parts.book._check()
                await server.wait_until(lambda: server.subscribed() == {"ETHUSDT", "SOLUSDT"})
                await server.send_for("ETHUSDT", trade("ETHUSDT", "2499.99", 3))
                notes = await wait_delivered(engine, kept[0])
                assert [(n.channel, n.state) for n in notes] == [("console", "delivered")]
                nursery.cancel_scope.cancel()
