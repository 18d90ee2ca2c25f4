"""Helpers for the store's tests: a fresh empty database per test, and URL surgery."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
import trio_asyncio


def with_database(url: str, name: str) -> str:
    """``url`` pointing at database ``name`` on the same server."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


async def _admin(url: str, sql: str) -> None:
    con = await asyncpg.connect(url)
    try:
        await con.execute(sql)
    finally:
        await con.close()


@pytest.fixture
async def fresh_url(pg_url: str) -> AsyncIterator[str]:
    """A new, empty database on the session's server (dropped afterwards), inside a
    trio_asyncio loop that stays open for the test."""
    name = f"fresh_{uuid.uuid4().hex[:12]}"
    async with trio_asyncio.open_loop() as loop:
        await loop.run_aio_coroutine(_admin(pg_url, f'CREATE DATABASE "{name}"'))
        try:
            yield with_database(pg_url, name)
        finally:
            await loop.run_aio_coroutine(_admin(pg_url, f'DROP DATABASE "{name}" WITH (FORCE)'))


@pytest.fixture
async def aio_loop() -> AsyncIterator[trio_asyncio.TrioEventLoop]:
    """A trio_asyncio loop open for the whole test (what the engine opens in its root)."""
    async with trio_asyncio.open_loop() as loop:
        yield loop
