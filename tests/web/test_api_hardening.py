"""Whatever the API accepts, the engine can honour (issue 12): each case found by a hostile user
or a fuzzer, first as a failing test.

Every refusal is a 422 problem naming the field, on the fast lane and on the app alike, and
changes nothing: no row, no command to the (real) book.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import trio

from engine.model import AddTrigger
from tests.web.conftest import start_api

JSON = {"content-type": "application/json"}


async def _refused(api: Any, h: dict[str, str], raw: bytes, field: str) -> None:
    r = await api.client.post("/api/alerts", content=raw, headers={**h, **JSON})
    assert r.status_code == 422, (raw, r.status_code, r.text)
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["field"] == field, r.text
    assert await api.drain() == []
    assert len(api.book) == 0


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        # case 1: accepted, then refused by the book, then the next start died
        (b'{"symbol":"BTCUSDT","target_price":"396212846246294800000","direction":"above"}',
         "target_price"),
        # case 3: decimal errors escaped the fast lane as 500s
        (b'{"symbol":"BTCUSDT","target_price":1e999999999,"direction":"above"}', "target_price"),
        (b'{"symbol":"BTCUSDT","target_price":"1e-999999999999999999999","direction":"above"}',
         "target_price"),
        (b'{"symbol":"BTCUSDT","target_price":1e-999999999,"direction":"above"}', "target_price"),
        (b'{"symbol":"BTCUSDT","target_price":1e-999999999999999999999,"direction":"above"}',
         "target_price"),
        (b'{"symbol":"BTCUSDT","target_price":1E18,"direction":"above"}', "target_price"),
        # case 3: text Postgres cannot store
        (b'{"symbol":"BTCUSDT","target_price":"1","direction":"above","name":"a\\u0000b"}',
         "name"),
        (b'{"symbol":"BTCUSDT","target_price":"1","direction":"above","name":"\\ud800"}', "name"),
        (b'{"symbol":"BTCUSD\\u0000T","target_price":"1","direction":"above"}', "symbol"),
        # an exchange nothing feeds: loaded but disabled, or not loaded at all
        (b'{"symbol":"BTCUSDT","target_price":"1","direction":"above","exchange":"replay"}',
         "exchange"),
        (b'{"symbol":"BTCUSDT","target_price":"1","direction":"above","exchange":"Binance"}',
         "exchange"),
    ],
)  # fmt: skip
async def test_a_create_the_engine_could_not_honour_is_a_422(
    api: Any, raw: bytes, field: str
) -> None:
    with trio.fail_after(20):
        h = await api.user("eve")
        await _refused(api, h, raw, field)


async def test_every_accepted_create_is_in_the_real_book(api: Any) -> None:
    with trio.fail_after(20):
        h = await api.user("ann")
        for price in ("999999999999999999.999999999999999999", "0.000000000000000001", 70000.5):
            r = await api.client.post(
                "/api/alerts",
                json={"symbol": "btc-usdt", "target_price": price, "direction": "above"},
                headers=h,
            )
            assert r.status_code == 201, r.text
        [*commands] = await api.drain()
        assert all(isinstance(c, AddTrigger) for c in commands) and len(commands) == 3
        assert sorted(t.id for t in api.book.snapshot()) == [c.trigger.id for c in commands]
        assert api.ctx.quarantine.counts == {}


async def test_a_token_whose_user_is_gone_is_a_401_not_a_500(api: Any) -> None:
    with trio.fail_after(20):
        h = await api.user("ghost")
        await api.ctx.store.bridge.run(_drop_user, "ghost")
        body = {"symbol": "BTCUSDT", "target_price": "1", "direction": "above"}
        r = await api.client.post("/api/alerts", json=body, headers=h)
        assert r.status_code == 401 and r.headers["content-type"] == "application/problem+json"
        # the app path too (the fast lane hands over a chunked body)
        r = await api.client.post(
            "/api/alerts", content=_chunks(json.dumps(body).encode()), headers={**h, **JSON}
        )
        assert r.status_code == 401
        assert await api.drain() == []


async def _drop_user(con: Any, username: str) -> None:
    await con.execute("DELETE FROM users WHERE username = $1", username)


async def _chunks(data: bytes) -> Any:
    yield data[:5]
    yield data[5:]


async def test_a_symbol_filter_finds_every_spelling(api: Any) -> None:
    with trio.fail_after(20):
        h = await api.user("sol")
        body = {"symbol": "SOLUSDT", "target_price": "150", "direction": "above"}
        assert (await api.client.post("/api/alerts", json=body, headers=h)).status_code == 201
        for spelling in ("sol-usdt", "SOL/USDT", "solusdt"):
            r = await api.client.get(f"/api/alerts?symbol={spelling}", headers=h)
            assert r.status_code == 200 and r.json()["count"] == 1, (spelling, r.text)
        r = await api.client.get("/api/alerts?symbol=ETHUSDT", headers=h)
        assert r.json()["count"] == 0


async def test_the_document_states_the_exchanges_this_server_feeds(api: Any) -> None:
    create = api.doc["components"]["schemas"]["AlertCreate"]
    assert create["properties"]["exchange"]["enum"] == ["binance"]
    assert create["additionalProperties"] is False
    price = create["properties"]["target_price"]["anyOf"]
    assert {"type": "string", "pattern": price[0]["pattern"]} == price[0]
    assert create["properties"]["name"]["maxLength"] == 200


async def test_documented_finnhub_symbols_are_accepted(
    store: Any, nursery: trio.Nursery, tmp_path: Any
) -> None:
    env = {
        "TRIGGERBOOK_FEEDS_FINNHUB_ENABLED": "true",
        "TRIGGERBOOK_FEEDS_FINNHUB_TOKEN": "t",
        "TRIGGERBOOK_FEEDS_KRAKEN_ENABLED": "true",
    }
    with trio.fail_after(30):
        async with start_api(store, nursery, tmp_path, env, plugins=True) as api:
            h = await api.user("stocks")
            for symbol in ("BINANCE:BTCUSDT", "OANDA:EUR_USD", "BRK.B", "AAPL"):
                body = {
                    "symbol": symbol,
                    "target_price": "1",
                    "direction": "above",
                    "exchange": "finnhub",
                }
                r = await api.client.post("/api/alerts", json=body, headers=h)
                assert r.status_code == 201 and r.json()["symbol"] == symbol, r.text
            # Kraken pairs are BASE/QUOTE: a bare asset is no symbol it trades
            body = {
                "symbol": "xbt",
                "target_price": "1",
                "direction": "above",
                "exchange": "kraken",
            }
            r = await api.client.post("/api/alerts", json=body, headers=h)
            assert r.status_code == 422 and r.json()["field"] == "symbol", r.text


async def test_limits_per_user_are_409s_that_change_nothing(
    store: Any, nursery: trio.Nursery, tmp_path: Any
) -> None:
    env = {"TRIGGERBOOK_LIMITS_MAX_LIVE_ALERTS": "3", "TRIGGERBOOK_LIMITS_MAX_SYMBOLS": "2"}
    with trio.fail_after(30):
        async with start_api(store, nursery, tmp_path, env) as api:
            h = await api.user("busy")

            async def create(symbol: str) -> Any:
                body = {"symbol": symbol, "target_price": "1", "direction": "above"}
                return await api.client.post("/api/alerts", json=body, headers=h)

            assert (await create("BTCUSDT")).status_code == 201
            assert (await create("ETHUSDT")).status_code == 201
            r = await create("SOLUSDT")  # a third symbol
            assert r.status_code == 409 and r.json()["field"] == "symbol", r.text
            assert r.json()["type"].endswith(":limit-reached")
            assert (await create("BTCUSDT")).status_code == 201  # a known symbol: fine
            r = await create("ETHUSDT")  # a fourth live alert
            assert r.status_code == 409 and "field" not in r.json(), r.text
            assert len(await api.drain()) == 3 and len(api.book) == 3
            # a delete frees room
            first = (await api.client.get("/api/alerts", headers=h)).json()["results"][-1]
            assert (await api.client.delete(f"/api/alerts/{first['id']}", headers=h)).is_success
            assert (await create("ETHUSDT")).status_code == 201
