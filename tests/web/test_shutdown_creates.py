"""A create refused because the server is shutting down (``web/batcher.py``'s ``stop_taking``):
503 problem+json of type ``shutting-down`` with ``Retry-After``, on every create path (the fast
lane, the app's canonical and historic routes), as documented in the OpenAPI document (the
``api`` fixture checks every response against it), and nothing written or sent to the book."""

from __future__ import annotations

import json
from typing import Any

import pytest
import trio

from engine.errors import ShuttingDown

BODY = {"symbol": "BTCUSDT", "target_price": "100.5", "direction": "above"}


async def _chunked() -> Any:
    yield json.dumps(BODY).encode()  # no Content-Length: the fast lane hands it to the app


@pytest.mark.parametrize(
    ("path", "chunked"),
    [("/api/alerts", False), ("/api/alerts", True), ("/api/alerts/create/", False)],
    ids=["fast lane", "app (handed over)", "historic route"],
)
async def test_a_create_refused_at_shutdown_is_a_503_with_retry_after(
    api: Any, monkeypatch: pytest.MonkeyPatch, path: str, chunked: bool
) -> None:
    async def stopping(rows: Any, **limits: Any) -> Any:
        raise ShuttingDown()

    with trio.fail_after(30):
        h = await api.user("erin")
        monkeypatch.setattr(api.ctx.store, "create_alerts", stopping)
        if chunked:
            headers = {**h, "content-type": "application/json"}
            r = await api.client.post(path, content=_chunked(), headers=headers)
        else:
            r = await api.client.post(path, json=BODY, headers=h)
        assert r.status_code == 503
        assert r.headers["retry-after"] == "5"
        assert r.headers["content-type"] == "application/problem+json"
        problem = r.json()
        assert problem["type"].endswith(":shutting-down") and problem["status"] == 503
        assert "shutting down" in problem["detail"]
        monkeypatch.undo()
        assert (await api.ctx.store.list_alerts(1))[0] == 0
        assert await api.drain() == []
