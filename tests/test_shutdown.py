"""Shutdown with creates in flight (issue 15, finding 5): the engine's order (``engine/app.py``).

The whole engine runs in-process (``run_engine``, as ``triggerbook run`` starts it); 50 clients,
each on a connection of its own, create alerts as fast as they are answered, and the engine's
scope is cancelled (what SIGTERM does in ``engine.app.serve``) in the middle of the burst. Each
create carries a unique name, so every answer can be matched with the rows the database kept.
What a client must be able to rely on: every 201 is a committed row, every other outcome (a
503, or a connection closed by the stopping server) left no row, and nothing is a 500.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
import trio

from engine.app import Engine, run_engine
from engine.config import Config
from engine.errors import ShuttingDown
from engine.feeds.testing import read_binance_request, serve_exchange
from engine.plugins.registry import load_registry
from engine.store import open_store
from tests.test_end_to_end import engine_config, login
from web.problems import from_error

CLIENTS = 50
USERS = 10  # five clients a user: well under the per-user limit of live alerts
MAX_EACH = 150
CANCEL_AFTER = 200  # creates answered 201 before the engine is cancelled


@pytest.fixture
async def database(fresh_database: Callable[[], Awaitable[str]]) -> str:
    return await fresh_database()


async def _all_alert_names(config: Config, users: list[str]) -> set[str]:
    """Every alert row of ``users``, by name, read after the engine has stopped."""
    names: set[str] = set()
    async with open_store(config.database) as store:
        for username in users:
            user = await store.get_user_by_username(username)
            assert user is not None
            offset = 0
            while True:
                count, page = await store.list_alerts(user.id, limit=100, offset=offset)
                names.update(a.name for a in page)
                offset += 100
                if offset >= count:
                    break
    return names


async def test_sigterm_during_a_create_burst_answers_201_only_for_committed_rows(
    tmp_path: Path, database: str
) -> None:
    import trio_asyncio

    outcomes: dict[str, int | str] = {}  # name -> status, or "closed" (no answer)
    answered = 0
    stopping = trio.Event()
    users = [f"user{u}" for u in range(USERS)]
    retry_after: set[str] = set()

    async def client(base: str, headers: dict[str, str], c: int) -> None:
        nonlocal answered
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            for n in range(MAX_EACH):
                name = f"c{c}-{n}"
                body = {"symbol": "BTCUSDT", "target_price": f"{c + 1}.{n}", "direction": "above"}
                body["name"] = name
                try:
                    response = await http.post("/api/alerts", headers=headers, json=body)
                except httpx.TransportError:  # the stopping server closed the connection
                    outcomes[name] = "closed"
                    return
                outcomes[name] = response.status_code
                if response.status_code != 201:
                    if response.status_code == 503:
                        problem = response.json()
                        assert problem["type"].endswith(":shutting-down"), problem
                        retry_after.add(response.headers["retry-after"])
                    return
                answered += 1
                if answered >= CANCEL_AFTER:
                    stopping.set()

    with trio.fail_after(90):
        async with serve_exchange(read_binance_request) as server:
            config = engine_config(tmp_path, database, server)
            async with trio.open_nursery() as nursery:
                engine_scope = trio.CancelScope()

                async def engine(*, task_status: trio.TaskStatus[Engine]) -> None:
                    with engine_scope:
                        await run_engine(config, load_registry(), task_status=task_status)

                started: Engine = await nursery.start(engine)
                base = f"http://127.0.0.1:{started.http_port}"
                async with httpx.AsyncClient(base_url=base) as http:
                    tokens = [await login(http, username) for username in users]
                async with trio.open_nursery() as clients:
                    for c in range(CLIENTS):
                        clients.start_soon(client, base, tokens[c % USERS], c)
                    await stopping.wait()
                    engine_scope.cancel()  # what SIGTERM does (engine.app.serve)
            assert engine_scope.cancelled_caught  # the engine stopped by the cancel, no error
        async with trio_asyncio.open_loop():
            rows = await _all_alert_names(config, users)

    statuses = sorted({str(s) for s in outcomes.values()})
    assert 500 not in outcomes.values(), statuses
    created = {name for name, status in outcomes.items() if status == 201}
    refused = {name for name, status in outcomes.items() if status != 201}
    assert len(created) >= CANCEL_AFTER
    assert created <= rows, "a 201 without its row"
    assert not refused & rows, f"an answer other than 201 for a committed row: {statuses}"
    assert rows == created  # and no row that no client was told of
    assert set(statuses) <= {"201", "503", "closed"}, statuses
    assert retry_after <= {"5"}


def test_a_create_refused_at_shutdown_is_a_503_problem_with_retry_after() -> None:
    response = from_error(ShuttingDown())
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert response.content_type == "application/problem+json"


async def test_a_start_records_the_journalled_fires_before_it_loads_the_book(
    tmp_path: Path, database: str
) -> None:
    """What a crash while the database was away leaves (engine/store/journal.py): the next
    start records it first, so the alert is triggered and not loaded into the book."""
    import trio_asyncio

    from engine.model import AlertStatus, Direction, Fire, Tick
    from engine.store import FireJournal

    with trio.fail_after(60):
        async with serve_exchange(read_binance_request) as server:
            config = engine_config(tmp_path, database, server)
            journal = FireJournal.for_database(config.database)
            async with trio_asyncio.open_loop(), open_store(config.database) as store:
                owner = await store.create_user("j", "j@example.com", "h")
                fired, live = [
                    await store.create_alert(
                        owner.id, "binance", "BTCUSDT", Decimal(p), Direction.ABOVE, ""
                    )
                    for p in ("10", "20")
                ]
            tick = Tick("binance", "BTCUSDT", Decimal("10.5"))
            await journal.append([Fire(tick, (fired.trigger(),), fired_at_ms=1_700_000_000_000)])
            async with trio.open_nursery() as nursery:
                engine: Engine = await nursery.start(run_engine, config, load_registry())
                assert len(engine.parts.book) == 1  # only the alert that did not fire
                alert = await engine.parts.store.get_alert(owner.id, fired.id)
                assert alert is not None and alert.status is AlertStatus.TRIGGERED
                assert alert.triggered_price == Decimal("10.5")
                assert (await engine.parts.store.get_alert(owner.id, live.id)).status is (  # type: ignore[union-attr]
                    AlertStatus.CREATED
                )
                assert await journal.read() == []
                nursery.cancel_scope.cancel()


async def test_a_web_that_cannot_start_stops_the_back_end_too(
    tmp_path: Path, database: str
) -> None:
    """The back end runs shielded until the web cancels it: a web that fails at its start (a
    port in use) must still end it, and the engine raises instead of hanging."""
    import dataclasses
    import socket

    with trio.fail_after(60):
        async with serve_exchange(read_binance_request) as server:
            config = engine_config(tmp_path, database, server)
            with socket.socket() as taken:
                taken.bind(("127.0.0.1", 0))
                taken.listen()
                port = taken.getsockname()[1]
                config = dataclasses.replace(
                    config, http=dataclasses.replace(config.http, port=port)
                )
                with pytest.RaisesGroup(OSError, flatten_subgroups=True, allow_unwrapped=True):
                    await run_engine(config, load_registry())


async def test_a_back_end_that_fails_drains_the_web_and_raises(
    tmp_path: Path, database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An actor of the back end that fails (here the feeds, once started) ends its nursery; the
    web is then cancelled (it drains) and the engine raises the actor's error."""
    import engine.app

    async def failing_feeds(
        *args: object, task_status: trio.TaskStatus[None], **kw: object
    ) -> None:
        task_status.started()
        await trio.sleep(0.2)
        raise RuntimeError("a feed bug (test)")

    monkeypatch.setattr(engine.app, "run_feeds", failing_feeds)
    with trio.fail_after(60):
        async with serve_exchange(read_binance_request) as server:
            config = engine_config(tmp_path, database, server)
            with pytest.RaisesGroup(
                pytest.RaisesExc(RuntimeError, match="a feed bug"),
                flatten_subgroups=True,
                allow_unwrapped=True,
            ):
                await run_engine(config, load_registry())
