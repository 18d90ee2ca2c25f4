"""A bad URL or a server that goes away: a clear StoreUnavailable, retries with a log line each,
and cancellation that leaves the pool usable."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import trio

from engine.config import DatabaseConfig
from engine.errors import StoreUnavailable
from engine.store import Store, embedded, open_store
from engine.store.bridge import open_bridge, redact

from .conftest import with_database


def _config(url: str, timeout_s: float = 0.6) -> DatabaseConfig:
    return DatabaseConfig(url=url, data_dir=Path("unused"), start_timeout_s=timeout_s)


async def test_an_unreachable_server_is_retried_then_reported(
    caplog: pytest.LogCaptureFixture, tmp_path: Path, aio_loop: object
) -> None:
    url = f"postgresql://postgres@/postgres?host={tmp_path}"  # no server listens there
    caplog.set_level(logging.WARNING, logger="engine.store.bridge")
    with trio.fail_after(10):
        with pytest.raises(StoreUnavailable, match=r"unreachable after \d+ attempts in 0.6 s"):
            async with open_store(_config(url)):
                pytest.fail("opened a store on nothing")
    attempts = [r for r in caplog.records if "retrying in" in r.getMessage()]
    assert len(attempts) >= 2
    assert "attempt 1" in attempts[0].getMessage()


async def test_the_password_never_reaches_the_message(
    caplog: pytest.LogCaptureFixture, aio_loop: object
) -> None:
    url = "postgresql://app:s3cret@127.0.0.1:1/db"  # port 1: refused at once
    with trio.fail_after(10):
        with pytest.raises(StoreUnavailable) as raised:
            async with open_bridge(url, start_timeout_s=0.3):
                pytest.fail("connected to port 1")
    assert "s3cret" not in str(raised.value) and "app:***@127.0.0.1:1" in str(raised.value)
    assert "s3cret" not in caplog.text


@pytest.mark.parametrize(
    "url", ["mysql://localhost/db", "postgresql://localhost:notaport/db"], ids=["scheme", "port"]
)
async def test_a_malformed_url_fails_at_once(url: str, aio_loop: object) -> None:
    with trio.fail_after(5):
        with pytest.raises(StoreUnavailable, match="cannot use database"):
            async with open_bridge(url, start_timeout_s=30):
                pytest.fail("connected with a malformed URL")


async def test_an_unknown_database_fails_at_once(pg_url: str, aio_loop: object) -> None:
    with trio.fail_after(5):
        with pytest.raises(StoreUnavailable, match="InvalidCatalogNameError"):
            async with open_bridge(with_database(pg_url, "no_such_db"), start_timeout_s=30):
                pytest.fail("connected to a missing database")


async def test_open_bridge_needs_the_asyncio_loop(pg_url: str) -> None:
    with pytest.raises(RuntimeError, match="open_loop"):
        async with open_bridge(pg_url):
            pytest.fail("opened without a loop")


def test_redact() -> None:
    assert redact("postgresql://u:pw@h:5/d") == "postgresql://u:***@h:5/d"
    assert redact("postgresql://u@h/d") == "postgresql://u@h/d"
    assert redact("") == ""


async def test_a_cancelled_query_leaves_the_connection_usable(store: Store) -> None:
    async def sleep(con) -> None:
        await con.execute("SELECT pg_sleep(30)")

    async def running(con) -> int:
        return await con.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(30)%' "
            "AND pid <> pg_backend_pid() AND state = 'active'"
        )

    with trio.fail_after(10):
        with trio.move_on_after(0.3) as scope:
            await store.bridge.run(sleep)
        assert scope.cancelled_caught
        await store.ping()
        assert await store.bridge.run(running) == 0


async def test_a_server_that_goes_away_then_comes_back(pg_dir: Path, aio_loop: object) -> None:
    data_dir = pg_dir
    server = await trio.to_thread.run_sync(embedded.start, data_dir)
    try:
        with trio.fail_after(60):
            async with open_store(_config(server.uri)) as store:
                await store.ping()
                await trio.to_thread.run_sync(server.stop)
                with pytest.raises(StoreUnavailable, match="the database is unavailable"):
                    await store.ping()
                server = await trio.to_thread.run_sync(embedded.start, data_dir)
                await store.ping()  # the pool reconnects by itself
    finally:
        await trio.to_thread.run_sync(server.stop)
    assert embedded.postgres_processes(data_dir) == []
