"""The seed clients' routes and bodies (web/legacy.py), as those clients send and read them.

Issue 12, case 7: the comprehensive-doc seed's ``/auth/register/``, ``/auth/login/``,
``/alerts/create/`` (``cryptocurrency``, ``target_price``), ``/alerts/delete/{id}/`` and
``/alerts/`` answered 404, and BookMyTrigger's ``{"value": ...}`` a 422.
"""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
import trio

from engine.model import AddTrigger
from web import accounts
from web.legacy import routes

README = Path(__file__).resolve().parents[2] / "README.md"


async def test_bookmytrigger_creates_with_value_and_reads_its_fields(api) -> None:
    headers = await api.user("subh")
    api.tick("BTCUSDT", "60000")
    for path in ("/api/alerts/create/", "/alerts/create/"):
        with trio.fail_after(10):
            r = await api.client.post(path, headers=headers, json={"value": 50000})
        assert r.status_code == 201, r.text
        alert = r.json()
        assert alert["value"] == "50000"
        assert alert["target_price"] == "50000"
        assert alert["status"] == "created"
        assert alert["comparison"] == "lower"  # 50000 below the last price: direction below
        assert alert["symbol"] == alert["cryptocurrency"] == "BTCUSDT"
        assert isinstance(alert["user"], int)
    added = [c for c in await api.drain() if isinstance(c, AddTrigger)]
    assert len(added) == 2


async def test_the_comprehensive_doc_client_end_to_end(api) -> None:
    body = {"username": "docuser", "password": "correct horse battery", "email": "d@example.com"}
    with trio.fail_after(20):
        registered = await api.client.post("/auth/register/", json=body)
        assert registered.status_code == 201, registered.text
        assert {"username", "email"} <= registered.json().keys()
        login = await api.client.post(
            "/auth/login/", json={"username": "docuser", "password": body["password"]}
        )
        assert login.status_code == 200
        assert {"access", "refresh"} <= login.json().keys()
        headers = {"Authorization": f"Bearer {login.json()['access']}"}

        api.tick("ETHUSDT", "2500")
        created = await api.client.post(
            "/alerts/create/",
            headers=headers,
            json={"cryptocurrency": "ethusdt", "target_price": 3000.5, "status": "created"},
        )
        assert created.status_code == 201, created.text
        alert = created.json()
        assert alert["cryptocurrency"] == "ETHUSDT"
        assert alert["target_price"] == "3000.5"
        assert alert["direction"] == "above"
        assert alert["user"] == registered.json()["id"]

        listed = await api.client.get(
            "/alerts/", headers=headers, params={"status": "created", "cryptocurrency": "ETHUSDT"}
        )
        assert listed.status_code == 200
        page = listed.json()
        assert page["count"] == 1
        assert [a["cryptocurrency"] for a in page["results"]] == ["ETHUSDT"]
        assert page["results"][0]["id"] == alert["id"]

        async with httpx.AsyncClient(base_url=api.base, timeout=10) as plain:
            gone = await plain.delete(f"/alerts/delete/{alert['id']}/", headers=headers)
            assert (gone.status_code, gone.content) == (204, b"")
            again = await plain.delete(f"/alerts/delete/{alert['id']}/", headers=headers)
            assert again.status_code == 204  # already deleted: nothing changed
            missing = await plain.delete("/alerts/delete/999999/", headers=headers)
            assert missing.status_code == 404
        after = await api.client.get(f"/api/alerts/{alert['id']}", headers=headers)
        assert after.json()["status"] == "deleted"


@pytest.mark.parametrize("path", ["/alerts/delete/{}/", "/api/alerts/delete/{}/"])
async def test_bookmytrigger_deletes_with_post_and_gets_204(api, path: str) -> None:
    headers = await api.user("poster")
    with trio.fail_after(10):
        created = await api.client.post(
            "/api/alerts",
            headers=headers,
            json={"symbol": "BTCUSDT", "target_price": "10", "direction": "below"},
        )
        alert_id = created.json()["id"]
        async with httpx.AsyncClient(base_url=api.base, timeout=10) as plain:
            gone = await plain.post(path.format(alert_id), headers=headers)
            other = await plain.post(path.format(alert_id + 1000), headers=headers)
        after = await api.client.get(f"/api/alerts/{alert_id}", headers=headers)
    assert gone.status_code == 204
    assert other.status_code == 404
    assert after.json()["status"] == "deleted"


@pytest.mark.parametrize(
    ("body", "echo"),
    [
        ({"price": 42810, "direction": "above"}, "price"),
        ({"trigger_value": "50000", "direction": "above", "symbol": "ethusdt"}, "trigger_value"),
        ({"name": "n", "symbol": "SOLUSDT", "price": "1.5", "direction": "below"}, "price"),
    ],
)
async def test_the_other_historic_bodies_still_work(api, body: dict, echo: str) -> None:
    headers = await api.user("older")
    with trio.fail_after(10):
        r = await api.client.post("/api/alerts/create/", headers=headers, json=body)
    assert r.status_code == 201, r.text
    assert r.json()[echo] == r.json()["target_price"] == str(body[echo])


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"value": 1, "price": 1, "direction": "above"}, "value"),
        ({"value": 1, "symbol": "BTCUSDT", "cryptocurrency": "BTCUSDT"}, "cryptocurrency"),
        ({"value": 1, "status": "triggered", "direction": "above"}, "status"),
        ({"cryptocurrency": "BTCUSDT", "direction": "above"}, "target_price"),
        ({"value": "-3", "direction": "above"}, "value"),
        ({"value": 1, "user": 3, "direction": "above"}, "user"),
    ],
)
async def test_a_bad_seed_body_is_a_422_naming_the_field(api, body: dict, field: str) -> None:
    headers = await api.user("careless")
    with trio.fail_after(10):
        r = await api.client.post("/alerts/create/", headers=headers, json=body)
    assert r.status_code == 422, r.text
    assert r.json()["field"] == field
    assert not [c for c in await api.drain() if isinstance(c, AddTrigger)]


async def test_the_seed_routes_need_a_token(api) -> None:
    with trio.fail_after(10):
        created = await api.client.post("/alerts/create/", json={"value": 1})
        listed = await api.client.get("/alerts/")
    assert (created.status_code, listed.status_code) == (401, 401)


async def test_every_seed_route_is_an_alias_in_the_document_and_the_readme(api) -> None:
    readme = README.read_text()
    section = readme[readme.index("## The API") :]
    section = section[: section.find("\n## ", 4)]
    for route in routes(api.ctx, accounts.routes()):
        operation = api.doc["paths"][route.path][route.method.lower()]
        assert "alias" in operation["description"], (route.method, route.path)
        spelled = re.sub(r"\{\w+\}", "{id}", route.path)
        assert f"{route.method} {spelled}" in section, (route.method, spelled)
