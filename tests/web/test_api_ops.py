"""Prices, health, readiness, metrics, routing errors and the OpenAPI document, over HTTP."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
import trio
import trio_asyncio

from engine.errors import ApiError
from tests.web.conftest import start_api
from web import problems
from web.app import all_routes


async def test_prices(api: Any) -> None:
    with trio.fail_after(20):
        h = await api.user("alice")
        r = await api.client.get("/api/prices", headers=h)
        assert r.status_code == 200 and r.json() == {"results": []}
        api.tick("BTCUSDT", "43000.000000000000000001")
        api.tick("ETHUSDT", "2999.5", exchange="replay")
        r = await api.client.get("/api/prices", headers=h)
        results = r.json()["results"]
        assert [(p["exchange"], p["symbol"]) for p in results] == [
            ("binance", "BTCUSDT"),
            ("replay", "ETHUSDT"),
        ]
        btc = results[0]
        assert btc["price"] == "43000.000000000000000001"
        assert btc["exchange_time"] == "2023-11-14T22:13:20Z" and btc["age_ms"] >= 0
        r = await api.client.get("/api/prices/btcusdt", headers=h)
        assert r.status_code == 200 and r.json()["symbol"] == "BTCUSDT"
        r = await api.client.get("/api/prices/ethusdt?exchange=replay", headers=h)
        assert r.status_code == 200 and r.json()["price"] == "2999.5"
        r = await api.client.get("/api/prices/ETHUSDT", headers=h)
        assert r.status_code == 404
        r = await api.client.get("/api/prices/BTCUSDT?exchange=nyse", headers=h)
        assert r.status_code == 422 and r.json()["field"] == "exchange"
        r = await api.client.get(f"/api/prices/{'A' * 33}", headers=h)
        assert r.status_code == 422 and r.json()["field"] == "symbol"
        r = await api.client.get("/api/prices/BTC%20USDT", headers=h)  # no Binance spelling
        assert r.status_code == 404
        r = await api.client.get("/api/prices?x=1", headers=h)
        assert r.status_code == 422
        assert (await api.client.get("/api/prices")).status_code == 401


async def test_health_and_readiness(api: Any) -> None:
    with trio.fail_after(20):
        r = await api.client.get("/healthz")
        assert r.status_code == 200 and r.json() == {"status": "ok"}
        enabled = api.ctx.config.enabled_feeds()
        assert enabled  # binance is on by default
        r = await api.client.get("/readyz")
        assert r.status_code == 503
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["checks"]["database"]["ok"] is True
        assert "not started" in r.json()["detail"]
        for name in enabled:
            state = api.ctx.feed_states.get(name)
            state.wanted = frozenset({"BTCUSDT"})
            state.mark_disconnected("connection refused")
        r = await api.client.get("/readyz")
        assert r.status_code == 503 and "connection refused" in r.json()["detail"]
        for name in enabled:
            api.ctx.feed_states.get(name).mark_connected()
        r = await api.client.get("/readyz")
        assert r.status_code == 200 and r.json()["status"] == "ready"
        assert r.json()["checks"]["feeds"][enabled[0]]["connected"] is True


async def test_readyz_is_short_in_public_and_detailed_for_staff(api: Any) -> None:
    """The public answer stays a few lines whatever the symbols (it listed every user's: 1.4 MB
    at 150,000); the symbols, rejections and quarantine entries are for staff with ?detail=1."""
    with trio.fail_after(30):
        enabled = api.ctx.config.enabled_feeds()
        many = frozenset(f"S{n:06d}USDT" for n in range(20_000))
        for name in enabled:
            state = api.ctx.feed_states.get(name)
            state.wanted = many
            state.connection_up("c")
            state.connection_holds("c", many)
            state.reject(("BADUSDT",), "invalid symbol")
        api.ctx.quarantine.add("command", "a target the book cannot hold", alert_id=7)
        r = await api.client.get("/readyz")
        assert r.status_code == 200 and len(r.content) < 2_000
        feed = r.json()["checks"]["feeds"][enabled[0]]
        assert feed == {
            "ok": True,
            "reason": None,
            "connected": True,
            "symbols_subscribed": 20_000,
            "symbols_rejected": 1,
        }
        assert r.json()["checks"]["quarantine"] == {"counts": {"command": 1}}
        user = await api.user("alice")
        r = await api.client.get("/readyz", headers=user)  # a token alone changes nothing
        assert r.status_code == 200 and len(r.content) < 2_000
        r = await api.client.get("/readyz?detail=1", headers=user)
        assert r.status_code == 403
        assert (await api.client.get("/readyz?detail=1")).status_code == 401
        assert (await api.client.get("/readyz?detail=yes")).status_code == 422
        staff = await api.user("root", staff=True)
        r = await api.client.get("/readyz?detail=1", headers=staff)
        assert r.status_code == 200
        feed = r.json()["checks"]["feeds"][enabled[0]]
        assert len(feed["symbols"]) == 20_000 and feed["rejected"] == {"BADUSDT": "invalid symbol"}
        (entry,) = r.json()["checks"]["quarantine"]["latest"]
        assert entry["alert_id"] == 7
        # a reason is cut, never the whole of what an exchange said
        for name in enabled:
            api.ctx.feed_states.get(name).connection_down("c")
            api.ctx.feed_states.get(name).mark_disconnected("x" * 100_000)
        r = await api.client.get("/readyz")
        assert r.status_code == 503 and len(r.content) < 4_000


async def test_readiness_follows_the_real_database(
    pg_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """/readyz with the test's own Postgres: answering, stopped, frozen (SIGSTOP: it takes the
    connection and never answers), and back."""
    from engine.config import DatabaseConfig
    from engine.store import embedded, open_store

    monkeypatch.setattr("web.ops.READY_TIMEOUT_S", 0.5)
    server = await trio.to_thread.run_sync(embedded.start, pg_dir)
    config = DatabaseConfig(url=server.uri, data_dir=Path("unused"), start_timeout_s=10.0)
    try:
        with trio.fail_after(60):
            async with (
                trio_asyncio.open_loop(),
                open_store(config, pool_size=2) as store,
                trio.open_nursery() as nursery,
                start_api(store, nursery, tmp_path) as api,
            ):
                for name in api.ctx.config.enabled_feeds():
                    api.ctx.feed_states.get(name)
                assert (await api.client.get("/readyz")).status_code == 200

                await trio.to_thread.run_sync(server.stop)
                r = await api.client.get("/readyz")
                assert r.status_code == 503 and "database unreachable" in r.json()["detail"]
                assert r.json()["checks"]["database"]["ok"] is False

                server = await trio.to_thread.run_sync(embedded.start, pg_dir)
                r = await _ready_again(api)
                frozen = embedded.postgres_processes(pg_dir)
                for proc in frozen:
                    proc.suspend()
                try:
                    with trio.fail_after(5):  # bounded, whatever the frozen server does
                        r = await api.client.get("/readyz")
                    assert r.status_code == 503 and r.json()["detail"].startswith("database ")
                finally:
                    for proc in frozen:
                        proc.resume()
                await _ready_again(api)
                nursery.cancel_scope.cancel()
    finally:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(server.stop)


async def _ready_again(api: Any) -> Any:
    while True:
        r = await api.client.get("/readyz")
        if r.status_code == 200:
            return r
        await trio.sleep(0.05)


async def test_metrics(api: Any) -> None:
    with trio.fail_after(20):
        await api.client.get("/healthz")
        await api.client.get("/nope")
        r = await api.client.get("/metrics")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
        text = r.text
        for name in (
            "triggerbook_ticks_total",
            "triggerbook_tick_to_fire_seconds_bucket",
            "triggerbook_book_triggers",
        ):
            assert f"# TYPE {name.removesuffix('_bucket')}" in text
        assert 'triggerbook_http_requests_total{method="GET",status="200"}' in text
        assert 'triggerbook_http_requests_total{method="GET",status="404"}' in text


async def test_routing_errors_are_problems(api: Any) -> None:
    with trio.fail_after(20):
        r = await api.client.get("/no/such/route")
        assert r.status_code == 404 and r.json()["type"].endswith(":not-found")
        r = await api.client.put("/api/alerts")
        assert r.status_code == 405 and "POST" in r.headers["allow"]
        r = await api.client.request("BREW", "/api/alerts")
        assert r.status_code == 405


async def test_a_server_error_is_logged_never_shown(
    api: Any, monkeypatch: Any, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(owner_id: int, alert_id: int) -> None:
        raise RuntimeError("secret internals")

    with trio.fail_after(20):
        h = await api.user("alice")
        monkeypatch.setattr(api.ctx.store, "get_alert", broken)
        api.checked.clear()
        with caplog.at_level(logging.ERROR, logger="web.app"):
            r = await api.client.get("/api/alerts/1", headers=h)
        assert r.status_code == 500
        assert r.json()["type"].endswith(":internal")
        assert "secret" not in r.text and "Traceback" not in r.text
        assert any("secret internals" in (rec.exc_text or "") for rec in caplog.records)


def test_every_api_error_has_a_row() -> None:
    def subclasses(cls: type) -> list[type]:
        return [cls, *(s for c in cls.__subclasses__() for s in subclasses(c))]

    for cls in subclasses(ApiError)[1:]:
        assert problems.kind_of(cls.__new__(cls)) is not None, cls


async def test_openapi_describes_every_served_route(api: Any) -> None:
    with trio.fail_after(20):
        doc = (await api.client.get("/openapi.json")).json()
        assert doc["openapi"].startswith("3.1")
        from web.app import create_app

        app = create_app(api.ctx, "x").quart
        served = {
            (method, rule.rule)
            for rule in app.url_map.iter_rules()
            for method in rule.methods or ()
            if method != "HEAD"
        }
        by_rule = {(r.method, r.rule): r for r in all_routes(api.ctx)}
        assert served == set(by_rule)  # nothing served that the description lacks, and back
        for method, rule in served:
            path = by_rule[(method, rule)].path
            operation = doc["paths"][path][method.lower()]
            assert operation["responses"], (method, path)
            for response in operation["responses"].values():
                for content in response.get("content", {}).values():
                    ref = content["schema"].get("$ref")
                    if ref:
                        assert ref.rsplit("/", 1)[1] in doc["components"]["schemas"]
