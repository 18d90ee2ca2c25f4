"""Fixtures of the web tests: the real server on port 0 over the real store, a real HTTP client.

``api`` starts ``run_web`` in the test's nursery with the real book actor (``run_book`` over a
real ``TriggerBook``: whatever the web accepts, the book must hold), a real ``LastPrices`` and
the ``store`` fixture's database. The commands the web sends the book pass through a relay that
keeps a copy, so a test can read them back (``await api.drain()``). Every
response the client receives is checked against ``/openapi.json``: the route's documented
status codes and the schema of the body (a tiny validator for the JSON Schema subset the
document uses), so the document is kept true by every test, not only by test_openapi.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
import trio.testing
from werkzeug.exceptions import MethodNotAllowed, NotFound

from engine.app import assemble
from engine.book.actor import LastPrices, run_book
from engine.book.book import TriggerBook
from engine.config import load_config
from engine.metrics import Metrics
from engine.model import BookCommand, Fire, Tick
from engine.parts import Parts
from engine.plugins.registry import load_registry
from engine.quarantine import Quarantine
from web.app import WebApp, create_app
from web.auth import PasswordHasher
from web.context import WebSettings
from web.server import run_web

SETTINGS = WebSettings(bcrypt_rounds=4, login_per_user=3, login_per_address=6, grace_s=1.0)
PASSWORD = "correct horse battery"


class SchemaError(AssertionError):
    """A response that does not match the document."""


def _resolve(schema: dict[str, Any], doc: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        schema = doc["components"]["schemas"][name]
    return schema


_TYPES = {
    "object": lambda x: isinstance(x, dict),
    "array": lambda x: isinstance(x, list),
    "string": lambda x: isinstance(x, str),
    "integer": lambda x: isinstance(x, int) and not isinstance(x, bool),
    "number": lambda x: isinstance(x, int | float) and not isinstance(x, bool),
    "boolean": lambda x: isinstance(x, bool),
    "null": lambda x: x is None,
}


def validate(value: Any, schema: dict[str, Any], doc: dict[str, Any], at: str = "$") -> None:
    """Check ``value`` against the JSON Schema subset of ``web/spec.py``; raise SchemaError."""
    schema = _resolve(schema, doc)
    kinds = schema.get("type")
    if kinds is not None:
        kinds = [kinds] if isinstance(kinds, str) else kinds
        if not any(_TYPES[k](value) for k in kinds):
            raise SchemaError(f"{at}: {value!r} is not of type {kinds}")
    if "enum" in schema and value not in schema["enum"]:
        raise SchemaError(f"{at}: {value!r} not in {schema['enum']}")
    if isinstance(value, dict):
        props = schema.get("properties", {})
        for name in schema.get("required", []):
            if name not in value:
                raise SchemaError(f"{at}: missing required {name!r}")
        for name, item in value.items():
            if name in props:
                validate(item, props[name], doc, f"{at}.{name}")
            elif schema.get("additionalProperties") is False:
                raise SchemaError(f"{at}: undocumented property {name!r}")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            validate(item, schema["items"], doc, f"{at}[{i}]")
    if isinstance(value, str) and "pattern" in schema:
        import re

        if not re.search(schema["pattern"], value):
            raise SchemaError(f"{at}: {value!r} does not match {schema['pattern']}")


@dataclass
class Api:
    """A running server and what the tests need around it."""

    client: httpx.AsyncClient
    base: str
    port: int
    ctx: Parts
    sent: list[BookCommand]
    prices: LastPrices
    doc: dict[str, Any] = field(default_factory=dict)
    checked: list[tuple[str, str, int]] = field(default_factory=list)

    @property
    def book(self) -> TriggerBook:
        return self.ctx.book

    async def drain(self) -> list[BookCommand]:
        """Every command the web sent the book since the last call, once the book has taken
        them all."""
        await trio.testing.wait_all_tasks_blocked()
        out = list(self.sent)
        self.sent.clear()
        return out

    async def user(self, username: str, *, staff: bool = False) -> dict[str, str]:
        """Register (or, for staff, create through the store) and log in; auth headers."""
        if staff:
            hashed = await PasswordHasher(rounds=4).hash(PASSWORD)
            await self.ctx.store.create_user(
                username, f"{username}@example.com", hashed, is_staff=True
            )
        else:
            r = await self.client.post(
                "/api/auth/register",
                json={
                    "username": username,
                    "password": PASSWORD,
                    "email": f"{username}@example.com",
                },
            )
            assert r.status_code == 201, r.text
        r = await self.client.post(
            "/api/auth/login", json={"username": username, "password": PASSWORD}
        )
        assert r.status_code == 200, r.text
        return {"Authorization": f"Bearer {r.json()['access']}"}

    def secret(self) -> str:
        """The generated signing secret (kept beside the data directory)."""
        return (self.ctx.config.database.data_dir.parent / "auth_secret").read_text().strip()

    def tick(self, symbol: str, price: str, exchange: str = "binance") -> None:
        """Make the book's last price of ``symbol`` known (as the book actor would)."""
        self.prices.update(Tick(exchange, symbol, Decimal(price), 1_700_000_000_000, 1))


def _check_response(
    app: WebApp, doc: dict[str, Any], seen: list[tuple[str, str, int]], response: httpx.Response
) -> None:
    request = response.request
    status = response.status_code
    body = (
        json.loads(response.content)
        if response.headers.get("content-type", "").endswith("json")
        else None
    )
    if request.method in ("OPTIONS", "HEAD"):  # answered by the router (tests/web/test_protocol.py)
        return
    adapter = app.quart.url_map.bind("localhost")
    try:
        endpoint, _args = adapter.match(request.url.path, method=request.method)
    except (NotFound, MethodNotAllowed):
        assert response.headers["content-type"] == "application/problem+json"
        validate(body, {"$ref": "#/components/schemas/Problem"}, doc)
        return
    method = endpoint.split(" ", 1)[0]
    route = next(r for r in app.routes if r.endpoint == endpoint)
    operation = doc["paths"][route.path][method.lower()]
    documented = operation["responses"]
    if str(status) not in documented:
        raise SchemaError(f"{request.method} {route.path}: status {status} is not documented")
    content = documented[str(status)].get("content", {})
    if not content:  # documented without a body (204): none may come
        assert not response.content, (request.method, route.path, response.content)
        seen.append((method, route.path, status))
        return
    media, spec = next(iter(content.items()))
    received = response.headers["content-type"].split(";")[0]
    if media == "*/*":  # any type (the page's files): its body is not JSON to check
        seen.append((method, route.path, status))
        return
    assert received == media, (media, response.headers)
    if media.endswith("json"):
        validate(body, spec["schema"], doc)
    seen.append((method, route.path, status))


@pytest.fixture
def password() -> str:
    return PASSWORD


async def _relay(
    receive: trio.MemoryReceiveChannel[BookCommand],
    send: trio.MemorySendChannel[BookCommand],
    sent: list[BookCommand],
) -> None:
    async with receive, send:
        async for command in receive:
            sent.append(command)
            await send.send(command)


@asynccontextmanager
async def start_api(
    store: Any,
    nursery: trio.Nursery,
    tmp_path: Path,
    environ: dict[str, str] | None = None,
    *,
    plugins: bool = False,
    settings: WebSettings = SETTINGS,
    extra_plugins: tuple[object, ...] = (),
) -> AsyncIterator[Api]:
    """The server over ``store`` and a real book, configured by ``environ`` (overrides), with
    the installed plugins loaded when ``plugins`` and ``extra_plugins`` (modules with
    ``@hookimpl`` functions: a test's own sinks), served with ``settings``."""
    registry = load_registry(extra_plugins, entry_points=plugins)
    (tmp_path / "config.toml").write_text("")
    config = load_config(
        tmp_path / "config.toml",
        environ={
            "TRIGGERBOOK_HTTP_PORT": "0",
            "TRIGGERBOOK_DATABASE_DATA_DIR": str(tmp_path / "pg"),
            **(environ or {}),
        },
        plugin_sections=registry.sections(),
    )
    web_send, relay_receive = trio.open_memory_channel[BookCommand](10_000)
    relay_send, book_receive = trio.open_memory_channel[BookCommand](10_000)
    _ticks_send, ticks_receive = trio.open_memory_channel[Tick](100)
    fires_send, _fires_receive = trio.open_memory_channel[Fire](100)
    metrics, sent = Metrics(), []
    ctx = assemble(config, store, TriggerBook(), web_send, registry, metrics, Quarantine(metrics))
    with trio.fail_after(20):
        await nursery.start(
            run_book,
            ctx.book,
            ticks_receive,
            book_receive,
            fires_send,
            ctx.prices,
            ctx.demand,
            metrics,
            ctx.quarantine,
        )
        nursery.start_soon(_relay, relay_receive, relay_send, sent)
        port = await nursery.start(partial(run_web, ctx, settings=settings))
    base = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(base_url=base, timeout=10) as plain:
        doc = (await plain.get("/openapi.json")).json()
    api = Api(httpx.AsyncClient(), base, port, ctx, sent, ctx.prices, doc)
    matcher = create_app(ctx, "unused", settings)  # the same routes, for matching URLs only

    async def check(response: httpx.Response) -> None:
        await response.aread()
        _check_response(matcher, doc, api.checked, response)

    hooks = {"response": [check]}
    async with httpx.AsyncClient(base_url=base, timeout=10, event_hooks=hooks) as client:
        api.client = client
        yield api


@pytest.fixture
async def api(store: Any, nursery: trio.Nursery, tmp_path: Path) -> AsyncIterator[Api]:
    async with start_api(store, nursery, tmp_path) as started:
        yield started
