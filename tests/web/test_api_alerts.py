"""Alerts over real HTTP: create, get, list, delete, ownership, every bad input, concurrency."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from engine.model import AddTrigger, Direction, RemoveTrigger

JSON = {"content-type": "application/json"}


async def _nothing_changed(api: Any, headers: dict[str, str]) -> None:
    r = await api.client.get("/api/alerts", headers=headers)
    assert r.json()["count"] == 0
    assert await api.drain() == []


async def test_create_commits_then_commands_the_book(api: Any) -> None:
    with trio.fail_after(20):
        h = await api.user("alice")
        r = await api.client.post(
            "/api/alerts",
            json={
                "symbol": "btcusdt",
                "target_price": "70000.50",
                "direction": "above",
                "name": "moon",
            },
            headers=h,
        )
        assert r.status_code == 201
        alert = r.json()
        assert alert["symbol"] == "BTCUSDT" and alert["exchange"] == "binance"
        assert alert["target_price"] == "70000.5" and alert["status"] == "created"
        assert alert["created_at"].endswith("Z") and alert["triggered_at"] is None
        [command] = await api.drain()
        assert command == AddTrigger(command.trigger)
        assert command.trigger.id == alert["id"]
        assert command.trigger.direction is Direction.ABOVE
        assert str(command.trigger.target) == "70000.5"
        stored = await api.ctx.store.get_alert(1, alert["id"])
        assert stored is not None and stored.name == "moon"


async def test_direction_inferred_from_last_price(api: Any) -> None:
    with trio.fail_after(20):
        h = await api.user("alice")
        r = await api.client.post(
            "/api/alerts", json={"symbol": "ETHUSDT", "target_price": 3000}, headers=h
        )
        assert r.status_code == 422 and r.json()["field"] == "direction"
        api.tick("ETHUSDT", "2500.10")
        up = await api.client.post(
            "/api/alerts", json={"symbol": "ethusdt", "target_price": 3000}, headers=h
        )
        same = await api.client.post(
            "/api/alerts", json={"symbol": "ETHUSDT", "target_price": "2500.1"}, headers=h
        )
        down = await api.client.post(
            "/api/alerts", json={"symbol": "ETHUSDT", "target_price": "2000"}, headers=h
        )
        assert [x.json()["direction"] for x in (up, same, down)] == ["above", "above", "below"]


BAD_BODIES = [
    (b"{not json", 400, None),
    (b"[]", 400, None),
    (b'[{"symbol": "BTCUSDT", "target_price": "1"}]', 400, None),
    (b'{"symbol": "BTCUSDT", "target_price": NaN, "direction": "above"}', 400, None),
    (b'{"symbol": "BTCUSDT", "target_price": Infinity, "direction": "above"}', 400, None),
    (
        b'{"symbol": "BTCUSDT", "symbol": "ETHUSDT", "target_price": 1, "direction": "above"}',
        400,
        None,
    ),
    (b'{"symbol": "BTCUSDT", "target_price": "NaN", "direction": "above"}', 422, "target_price"),
    (
        b'{"symbol": "BTCUSDT", "target_price": "Infinity", "direction": "above"}',
        422,
        "target_price",
    ),
    (b'{"symbol": "BTCUSDT", "target_price": -5, "direction": "above"}', 422, "target_price"),
    (b'{"symbol": "BTCUSDT", "target_price": 0, "direction": "above"}', 422, "target_price"),
    (b'{"symbol": "BTCUSDT", "target_price": "0.000", "direction": "above"}', 422, "target_price"),
    (b'{"symbol": "BTCUSDT", "target_price": true, "direction": "above"}', 422, "target_price"),
    (b'{"symbol": "BTCUSDT", "target_price": null, "direction": "above"}', 422, "target_price"),
    (
        b'{"symbol": "BTCUSDT", "target_price": 1.0000000000000000001, "direction": "above"}',
        422,
        "target_price",
    ),
    (
        b'{"symbol": "BTCUSDT", "target_price": "' + b"1" * 31 + b'", "direction": "above"}',
        422,
        "target_price",
    ),
    (b'{"symbol": "BTCUSDT", "target_price": 1e40, "direction": "above"}', 422, "target_price"),
    (b'{"symbol": "BTCUSDT", "target_price": "1", "direction": "sideways"}', 422, "direction"),
    (b'{"symbol": "BTCUSDT", "target_price": "1", "direction": true}', 422, "direction"),
    (b'{"symbol": "BTC USDT", "target_price": "1", "direction": "above"}', 422, "symbol"),
    (b'{"symbol": "' + b"A" * 33 + b'", "target_price": "1", "direction": "above"}', 422, "symbol"),
    (b'{"symbol": 7, "target_price": "1", "direction": "above"}', 422, "symbol"),
    (
        b'{"symbol": "BTCUSDT", "target_price": "1", "direction": "above", "exchange": "nyse"}',
        422,
        "exchange",
    ),
    (
        b'{"symbol": "BTCUSDT", "target_price": "1", "direction": "above", "owner_id": 2}',
        422,
        "owner_id",
    ),
    (b'{"symbol": "BTCUSDT", "target_price": "1", "direction": "above", "name": 5}', 422, "name"),
    (b'{"target_price": "1", "direction": "above"}', 422, "symbol"),
    (b'{"symbol": "BTCUSDT", "direction": "above"}', 422, "target_price"),
]


@pytest.mark.parametrize(("body", "status", "field"), BAD_BODIES)
async def test_bad_bodies_change_nothing(
    api: Any, body: bytes, status: int, field: str | None
) -> None:
    with trio.fail_after(20):
        h = await api.user("alice")
        r = await api.client.post("/api/alerts", content=body, headers={**h, **JSON})
        assert r.status_code == status, r.text
        problem = r.json()
        assert set(problem) >= {"type", "title", "status", "detail"} and problem["status"] == status
        assert problem.get("field") == field
        assert "Traceback" not in r.text
        await _nothing_changed(api, h)


async def test_content_type_and_size_limits(api: Any) -> None:
    with trio.fail_after(20):
        h = await api.user("alice")
        ok_body = b'{"symbol": "BTCUSDT", "target_price": "1", "direction": "above"}'
        r = await api.client.post(
            "/api/alerts", content=ok_body, headers={**h, "content-type": "text/plain"}
        )
        assert r.status_code == 415
        r = await api.client.post("/api/alerts", content=ok_body, headers=h)  # no content type
        assert r.status_code == 415
        r = await api.client.post("/api/alerts", content=b"", headers={**h, **JSON})
        assert r.status_code == 400
        big = (
            b'{"symbol": "BTCUSDT", "target_price": "1", "direction": "above", "name": "'
            + b"x" * 17000
            + b'"}'
        )
        r = await api.client.post("/api/alerts", content=big, headers={**h, **JSON})
        assert r.status_code == 413

        async def chunks() -> Any:  # no Content-Length: the cap applies while reading
            for _ in range(40):
                yield b" " * 1024

        r = await api.client.post("/api/alerts", content=chunks(), headers={**h, **JSON})
        assert r.status_code == 413
        await _nothing_changed(api, h)


async def test_ownership_is_a_404(api: Any) -> None:
    with trio.fail_after(20):
        alice = await api.user("alice")
        mallory = await api.user("mallory")
        r = await api.client.post(
            "/api/alerts",
            json={"symbol": "BTCUSDT", "target_price": "1", "direction": "below"},
            headers=alice,
        )
        alert_id = r.json()["id"]
        await api.drain()
        theirs = await api.client.get(f"/api/alerts/{alert_id}", headers=mallory)
        missing = await api.client.get("/api/alerts/999999", headers=mallory)
        assert theirs.status_code == missing.status_code == 404
        assert theirs.json() == missing.json()  # nothing tells them apart
        r = await api.client.delete(f"/api/alerts/{alert_id}", headers=mallory)
        assert r.status_code == 404
        r = await api.client.delete(f"/api/alerts/delete/{alert_id}/", headers=mallory)
        assert r.status_code == 404
        assert (await api.client.get("/api/alerts", headers=mallory)).json()["count"] == 0
        assert await api.drain() == []
        r = await api.client.get(f"/api/alerts/{alert_id}", headers=alice)
        assert r.status_code == 200 and r.json()["status"] == "created"
        r = await api.client.get(f"/api/alerts/{2**70}", headers=alice)
        assert r.status_code == 404
        r = await api.client.get("/api/alerts/abc", headers=alice)
        assert r.status_code == 404


async def test_soft_delete(api: Any) -> None:
    with trio.fail_after(20):
        h = await api.user("alice")
        r = await api.client.post(
            "/api/alerts",
            json={"symbol": "BTCUSDT", "target_price": "1", "direction": "below"},
            headers=h,
        )
        alert_id = r.json()["id"]
        await api.drain()
        r = await api.client.delete(f"/api/alerts/{alert_id}", headers=h)
        assert r.status_code == 200
        assert r.json()["alert"]["status"] == "deleted" and r.json()["alert"]["deleted_at"]
        assert await api.drain() == [RemoveTrigger(alert_id)]
        r = await api.client.delete(f"/api/alerts/{alert_id}", headers=h)
        assert r.status_code == 200 and "already deleted" in r.json()["message"]
        assert await api.drain() == []  # nothing more for the book
        r = await api.client.get(f"/api/alerts/{alert_id}", headers=h)
        assert r.json()["status"] == "deleted"  # the row stays


async def test_list_filters_and_pagination(api: Any) -> None:
    with trio.fail_after(30):
        h = await api.user("alice")
        ids = []
        for i in range(25):
            symbol = "BTCUSDT" if i % 2 else "ETHUSDT"
            r = await api.client.post(
                "/api/alerts",
                json={"symbol": symbol, "target_price": str(100 + i), "direction": "above"},
                headers=h,
            )
            ids.append(r.json()["id"])
        await api.client.delete(f"/api/alerts/{ids[0]}", headers=h)
        r = await api.client.get("/api/alerts", headers=h)
        page = r.json()
        assert page["count"] == 25 and len(page["results"]) == 10
        assert [a["id"] for a in page["results"]] == ids[::-1][:10]  # newest first
        assert page["previous"] is None and page["next"].startswith(f"{api.base}/api/alerts?")
        r = await api.client.get(page["next"], headers=h)
        assert r.json()["previous"].startswith(api.base)
        r = await api.client.get("/api/alerts?page=3", headers=h)
        assert len(r.json()["results"]) == 5 and r.json()["next"] is None
        r = await api.client.get("/api/alerts?page=9", headers=h)
        assert r.json()["results"] == [] and "page=3" in r.json()["previous"]
        r = await api.client.get("/api/alerts?page_size=1000", headers=h)
        assert len(r.json()["results"]) == 25
        r = await api.client.get("/api/alerts?symbol=btcusdt&page_size=100", headers=h)
        assert r.json()["count"] == 12
        assert {a["symbol"] for a in r.json()["results"]} == {"BTCUSDT"}
        r = await api.client.get("/api/alerts?status=deleted", headers=h)
        assert [a["id"] for a in r.json()["results"]] == [ids[0]]
        r = await api.client.get(
            "/api/alerts?status=created&exchange=binance&symbol=ETHUSDT", headers=h
        )
        assert r.json()["count"] == 12
        r = await api.client.get("/api/alerts/?status=triggered", headers=h)  # historic alias
        assert r.json()["count"] == 0
        for query, field in [
            ("page=0", "page"),
            ("page=-1", "page"),
            ("page=x", "page"),
            ("page_size=0", "page_size"),
            ("status=active", "status"),
            ("symbol=a%00b", "symbol"),
            (f"symbol={'A' * 33}", "symbol"),
            ("exchange=nyse", "exchange"),
            ("cryptocurrency=BTC", "cryptocurrency"),
        ]:
            r = await api.client.get(f"/api/alerts?{query}", headers=h)
            assert r.status_code == 422 and r.json()["field"] == field, query


async def test_historic_alert_routes(api: Any) -> None:
    with trio.fail_after(20):
        h = await api.user("alice")
        r = await api.client.post("/api/alerts/create/", json={"price": 42810}, headers=h)
        assert r.status_code == 422 and r.json()["field"] == "direction"  # no BTC price yet
        api.tick("BTCUSDT", "43000")
        r = await api.client.post("/api/alerts/create/", json={"price": 42810}, headers=h)
        assert r.status_code == 201
        created = r.json()
        assert created["price"] == "42810" and created["symbol"] == "BTCUSDT"
        assert created["direction"] == "below"
        r = await api.client.post(
            "/api/alerts/create/", json={"trigger_value": "50000.5"}, headers=h
        )
        assert r.json()["trigger_value"] == "50000.5" and r.json()["direction"] == "above"
        r = await api.client.post(
            "/api/alerts/create/",
            json={"name": "n", "symbol": "ethusdt", "price": "5", "direction": "below"},
            headers=h,
        )
        assert r.status_code == 201 and r.json()["symbol"] == "ETHUSDT"
        r = await api.client.post(
            "/api/alerts/create/", json={"price": 1, "trigger_value": 2}, headers=h
        )
        assert r.status_code == 422 and r.json()["field"] == "trigger_value"
        r = await api.client.post("/api/alerts/create/", json={"name": "x"}, headers=h)
        assert r.status_code == 422 and r.json()["field"] == "target_price"
        r = await api.client.get("/api/alerts/", headers=h)
        assert r.json()["count"] == 3
        r = await api.client.get(f"/api/alerts/{created['id']}/", headers=h)
        assert r.status_code == 200
        r = await api.client.delete(f"/api/alerts/delete/{created['id']}/", headers=h)
        assert r.status_code == 200 and r.json()["alert"]["status"] == "deleted"


async def test_concurrent_creates(api: Any) -> None:
    with trio.fail_after(60):
        users = [await api.user(f"user{i}") for i in range(4)]
        results: list[int] = []

        async def create(h: dict[str, str], i: int) -> None:
            r = await api.client.post(
                "/api/alerts",
                json={"symbol": "BTCUSDT", "target_price": f"{1000 + i}.5", "direction": "above"},
                headers=h,
            )
            assert r.status_code == 201
            results.append(r.json()["id"])

        async with trio.open_nursery() as nursery:
            for i in range(80):
                nursery.start_soon(create, users[i % 4], i)
        assert len(set(results)) == 80
        commands = await api.drain()
        assert sorted(c.trigger.id for c in commands) == sorted(results)
        for h in users:
            assert (await api.client.get("/api/alerts", headers=h)).json()["count"] == 20
