"""The fast lane (web/fastlane.py): same answers as the app, hand-over of the unusual, errors."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import httpx
import pytest
import trio

from engine.errors import StoreUnavailable
from tests.web.conftest import SETTINGS, start_api
from web.fastlane import FastLane

BODY = {"symbol": "BTCUSDT", "target_price": "100.5", "direction": "above"}


def _count_calls(monkeypatch: pytest.MonkeyPatch, name: str) -> list[int]:
    calls: list[int] = []
    original = getattr(FastLane, name)

    async def counted(self: FastLane, *args: Any) -> Any:
        calls.append(1)
        return await original(self, *args)

    monkeypatch.setattr(FastLane, name, counted)
    return calls


async def test_the_lane_answers_a_list_exactly_as_the_app(
    api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    with trio.fail_after(30):
        h = await api.user("alice")
        for price in ("1", "2", "3"):
            r = await api.client.post(
                "/api/alerts", json={**BODY, "target_price": price}, headers=h
            )
            assert r.status_code == 201
        fast = _count_calls(monkeypatch, "_list")
        token = h["Authorization"]
        for query in ("", "?page_size=1", "?page=2&page_size=1", "?page_size=1&page=3"):
            by_lane = await api.client.get(f"/api/alerts{query}", headers=h)
            # A repeated Authorization header is handed over; the app reads the first one.
            by_app = await api.client.get(
                f"/api/alerts{query}", headers=[("Authorization", token)] * 2
            )
            assert by_lane.status_code == by_app.status_code == 200
            assert by_lane.content == by_app.content
            assert by_lane.headers["content-type"] == by_app.headers["content-type"]
        assert len(fast) == 4  # the repeated header was handed over before reaching _list
        page = (await api.client.get("/api/alerts?page=2&page_size=1", headers=h)).json()
        assert page["next"] == f"{api.base}/api/alerts?page_size=1&page=3"
        assert page["previous"] == f"{api.base}/api/alerts?page_size=1&page=1"


async def test_list_links_follow_each_requests_host_header(
    api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("web.fastlane.MAX_BASES", 1)  # every new host empties the memo
    with trio.fail_after(30):
        h = await api.user("hosts")
        for price in ("1", "2"):
            r = await api.client.post(
                "/api/alerts", json={**BODY, "target_price": price}, headers=h
            )
            assert r.status_code == 201
        fast = _count_calls(monkeypatch, "_list")
        for host in ("a.example:8080", "b.example", "a.example:8080", "b.example"):
            r = await api.client.get("/api/alerts?page_size=1", headers={**h, "Host": host})
            assert r.status_code == 200
            assert r.json()["next"] == f"http://{host}/api/alerts?page_size=1&page=2"
        assert len(fast) == 4


async def test_unusual_requests_are_answered_by_the_app(api: Any) -> None:
    with trio.fail_after(30):
        h = await api.user("bob")
        r = await api.client.post("/api/alerts", json=BODY, headers=h)
        assert r.status_code == 201
        # a repeated name: the app takes the first value, as werkzeug does
        r = await api.client.get("/api/alerts?page=1&page=2&page_size=1", headers=h)
        assert r.status_code == 200 and r.json()["previous"] is None
        r = await api.client.get("/api/alerts?status=created", headers=h)
        assert r.status_code == 200 and r.json()["count"] == 1

        async def chunks() -> Any:
            yield b'{"symbol": "ETHUSDT", '
            yield b'"target_price": "5", "direction": "below"}'

        # no Content-Length (chunked): read by the app
        r = await api.client.post(
            "/api/alerts", content=chunks(), headers={**h, "content-type": "application/json"}
        )
        assert r.status_code == 201 and r.json()["symbol"] == "ETHUSDT"
        r = await api.client.post(
            "/api/alerts",
            content=b'{"symbol": "x", "target_price": "1", "direction": "above", "zz": 1}',
            headers={**h, "content-type": "application/json; charset=utf-8"},
        )
        assert r.status_code == 422 and r.json()["field"] == "zz"
        assert len(await api.drain()) == 2


@pytest.mark.parametrize(
    ("error", "status", "kind", "level"),
    [
        (StoreUnavailable("the database is unavailable (test)"), 503, ":unavailable", "WARNING"),
        (RuntimeError("secret internals"), 500, ":internal", "ERROR"),
    ],
)
async def test_a_failed_write_is_answered_like_the_app(
    api: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    error: Exception,
    status: int,
    kind: str,
    level: str,
) -> None:
    async def failing(rows: Any, **limits: Any) -> Any:
        raise error

    with trio.fail_after(30):
        h = await api.user("carol")
        monkeypatch.setattr(api.ctx.store, "create_alerts", failing)
        with caplog.at_level(logging.WARNING, logger="web.app"):
            r = await api.client.post("/api/alerts", json=BODY, headers=h)
        assert r.status_code == status
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["type"].endswith(kind) and r.json()["status"] == status
        assert "secret" not in r.text and "Traceback" not in r.text
        assert any(
            rec.levelname == level and "POST /api/alerts" in rec.getMessage()
            for rec in caplog.records
        )
        assert await api.drain() == []


def _served(text: str, method: str, status: int) -> float:
    line = f'triggerbook_http_requests_total{{method="{method}",status="{status}"}} '
    return sum(float(row[len(line) :]) for row in text.splitlines() if row.startswith(line))


async def test_the_lane_counts_its_responses(api: Any) -> None:
    with trio.fail_after(30):
        h = await api.user("dave")
        async with httpx.AsyncClient(base_url=api.base) as plain:
            before = (await plain.get("/metrics")).text
            assert (await api.client.post("/api/alerts", json=BODY, headers=h)).status_code == 201
            assert (await api.client.get("/api/alerts", headers=h)).status_code == 200
            after = (await plain.get("/metrics")).text
        assert _served(after, "POST", 201) == _served(before, "POST", 201) + 1
        assert _served(after, "GET", 200) == _served(before, "GET", 200) + 2  # and /metrics


async def test_switched_off_the_app_answers_alike(
    store: Any, nursery: trio.Nursery, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``WebSettings(fast_lane=False)``, what benchmarks/api_load.py compares the lane with:
    nothing takes the lane, and creates and lists answer as they do through it."""
    off = dataclasses.replace(SETTINGS, fast_lane=False)
    lists, creates = _count_calls(monkeypatch, "_list"), _count_calls(monkeypatch, "_create")
    with trio.fail_after(30):
        async with start_api(store, nursery, tmp_path, settings=off) as api:
            h = await api.user("unlaned")
            r = await api.client.post("/api/alerts", json=BODY, headers=h)
            assert r.status_code == 201
            assert r.json()["target_price"] == "100.5"
            listed = await api.client.get("/api/alerts?page_size=1", headers=h)
            assert listed.status_code == 200
            assert listed.json()["results"] == [r.json()]
    assert lists == creates == []
