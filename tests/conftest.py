"""The rules of this suite.

1. Real parts: a real Postgres (the embedded one, started once per session by the fixture below),
   real WebSocket servers speaking each exchange's recorded frames, a real HTTP client against the
   real server, a real SMTP server. Fakes only for what cannot run here (the exchanges themselves).
2. Every test that does I/O runs under ``trio.fail_after`` so a hang is a failure, not a stall.
3. Servers bind port 0 and are started with ``await nursery.start(...)``.
4. Backoff, cooldowns and staleness are tested with trio's ``autojump_clock``, never by sleeping.
5. Tests assert behaviour; speed is measured by ``benchmarks/``, never asserted here.
6. Tests mirror modules: ``tests/book/`` for ``engine/book/``, ``tests/store/`` for the store, ...
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from engine.store import Store


# --- Postgres: one embedded server per session (owned by the store, engine/store/) ----------------
# ``pg_url`` (session, sync): the URL of an embedded Postgres started once in a temp dir and
#   stopped at the end of the session. Tests that need a database of their own create one on it.
# ``store`` (per test, async): a ``Store`` on that server, opened inside its own
#   ``trio_asyncio.open_loop()``, migrations applied and every table empty (ids restart at 1).


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    # Not under pytest's basetemp: run as root, the server runs as another user and needs to
    # traverse the parent folders, and every new pytest session resets /tmp/pytest-of-root to 0700.
    import shutil
    import tempfile

    from engine.store import embedded

    parent = Path(tempfile.mkdtemp(prefix="triggerbook-pg-"))
    server = embedded.start(parent / "data")
    try:
        yield server.uri
    finally:
        server.stop()
        shutil.rmtree(parent, ignore_errors=True)


@pytest.fixture
def pg_dir() -> Iterator[Path]:
    """A data dir for an embedded server of the test's own (one it may stop and start); any
    server still running in it is killed afterwards. Outside pytest's basetemp, whose root each
    new pytest session resets to 0700, which the server (run as another user when we are root)
    could then not traverse."""
    import shutil
    import tempfile

    from engine.store import embedded

    parent = Path(tempfile.mkdtemp(prefix="triggerbook-test-"))
    path = parent / "pg"
    try:
        yield path
    finally:
        for proc in embedded.postgres_processes(path):
            proc.kill()
        shutil.rmtree(parent, ignore_errors=True)


@pytest.fixture
def fresh_database(pg_url: str) -> Callable[[], Awaitable[str]]:
    """A factory of empty databases on the session's server: ``url = await fresh_database()``
    (inside a Trio test; each call makes a new one, e.g. one per Hypothesis example)."""
    import uuid
    from urllib.parse import urlsplit, urlunsplit

    import asyncpg
    import trio_asyncio

    async def make() -> str:
        name = f"t_{uuid.uuid4().hex[:12]}"

        async def create() -> None:
            con = await asyncpg.connect(pg_url)
            try:
                await con.execute(f"CREATE DATABASE {name}")
            finally:
                await con.close()

        async with trio_asyncio.open_loop():
            await trio_asyncio.aio_as_trio(create)()
        return urlunsplit(urlsplit(pg_url)._replace(path=f"/{name}"))

    return make


@pytest.fixture
async def store(pg_url: str) -> AsyncIterator[Store]:
    import trio_asyncio

    from engine.config import DatabaseConfig
    from engine.store import open_store, queries

    config = DatabaseConfig(url=pg_url, data_dir=Path("unused"), start_timeout_s=5.0)
    async with trio_asyncio.open_loop(), open_store(config, pool_size=4) as opened:
        await opened.bridge.run(queries.truncate_all)
        yield opened
