"""The page's files as the server sends them (web/page.py): the policy on each, revalidation,
nothing outside the folder, and the choices a form offers (GET /api/choices)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import trio

from web.page import CSP, Files


async def test_the_page_and_its_files_carry_the_policy_and_revalidate(api: Any) -> None:
    with trio.fail_after(20):
        page = await api.client.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"] == "text/html; charset=utf-8"
        assert page.headers["content-security-policy"] == CSP
        assert "'unsafe-inline'" not in CSP and "script-src 'self'" in CSP
        assert page.headers["x-content-type-options"] == "nosniff"
        assert page.headers["cache-control"] == "no-cache"
        assert "<script" in page.text and "onclick" not in page.text

        script = await api.client.get("/static/js/main.js")
        assert script.status_code == 200
        assert script.headers["content-type"] == "text/javascript; charset=utf-8"
        assert script.headers["content-security-policy"] == CSP
        again = await api.client.get(
            "/static/js/main.js", headers={"If-None-Match": script.headers["etag"]}
        )
        assert again.status_code == 304 and again.content == b""
        assert (await api.client.head("/")).status_code == 200


async def test_names_outside_the_page_are_404_problems(api: Any) -> None:
    with trio.fail_after(20):
        for name in ("nope.js", "..%2Fapp.py", "index.html", ".hidden", "js/../../app.py"):
            response = await api.client.get(f"/static/{name}")
            assert response.status_code == 404, name
            assert response.headers["content-type"] == "application/problem+json"
        assert (await api.client.post("/")).status_code == 405


def test_only_plain_files_inside_the_folder_are_served(tmp_path: Path) -> None:
    folder = tmp_path / "static"
    (folder / "js").mkdir(parents=True)
    (folder / "index.html").write_text("<title>x</title>")
    (folder / "js" / "a.js").write_text("export {};")
    (folder / ".env").write_text("SECRET=1")
    (tmp_path / "outside.txt").write_text("not the page's")
    os.symlink(tmp_path / "outside.txt", folder / "link.txt")
    files = Files(folder)
    assert "index.html" in files and "js/a.js" in files
    assert ".env" not in files and "link.txt" not in files
    a = files.get("js/a.js")
    assert a is not None and a.content_type == "text/javascript; charset=utf-8"
    assert Files(tmp_path / "missing").get("index.html") is None


async def test_choices_follow_the_enabled_feeds_and_sinks(api: Any) -> None:
    with trio.fail_after(20):
        assert (await api.client.get("/api/choices")).status_code == 401
        headers = await api.user("ann")
        choices = (await api.client.get("/api/choices", headers=headers)).json()
        assert choices["exchanges"][0] == {
            "name": "binance",
            "symbol_pattern": api.ctx.feeds.symbol_pattern("binance"),
            "default": True,
        }
        assert choices["channels"] == list(api.ctx.delivery.kinds)
        assert choices["destination_kinds"] == list(api.ctx.delivery.destination_kinds)
        assert choices["account_confirmation"] is False  # the email sink is off here
