"""The bridge's per-call behaviour: FIFO waiting for a connection; released without a reset
query, yet never inside a transaction."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import trio
import trio.testing

from engine.errors import StoreUnavailable
from engine.store import Store, bridge
from engine.store.bridge import open_bridge
from tests.test_backoff import spy_on


async def test_callers_beyond_the_pool_wait_their_turn_in_order(store: Store) -> None:
    # The ``store`` fixture's pool has 4 connections; 12 callers each hold one for a moment.
    active = [0]
    peak = [0]
    order: list[int] = []

    def hold(i: int) -> Any:
        async def fn(con: Any) -> None:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
            order.append(i)
            try:
                await con.execute("SELECT pg_sleep(0.02)")
            finally:
                active[0] -= 1

        return fn

    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            for i in range(12):
                nursery.start_soon(store.bridge.run, hold(i))
                await trio.testing.wait_all_tasks_blocked()  # queue them in a known order
        assert peak[0] == 4
        # The first four take the pool's connections at once, in whichever order asyncio hands
        # them out; the eight waiters then get connections first come, first served.
        assert sorted(order[:4]) == [0, 1, 2, 3]
        assert order[4:] == list(range(4, 12))


async def test_a_failed_transaction_leaves_every_connection_clean(store: Store) -> None:
    class Boom(Exception):
        pass

    async def fail_inside(con: Any) -> None:
        async with con.transaction():
            await con.execute(
                "INSERT INTO users (username, email, password_hash) VALUES ('x', 'x@x.io', 'h')"
            )
            raise Boom

    async def check(con: Any) -> tuple[int, bool]:
        users = await con.fetchval("SELECT count(*) FROM users")
        idle = con.is_in_transaction()
        return int(users), bool(idle)

    with trio.fail_after(20):
        for _ in range(4):
            with pytest.raises(Boom):
                await store.bridge.run(fail_inside)
        for _ in range(8):  # every pooled connection is usable and outside any transaction
            assert await store.bridge.run(check) == (0, False)


async def test_start_up_retries_wait_with_the_shared_backoff(
    aio_loop: object, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    spy = spy_on(monkeypatch, bridge)  # engine.backoff.Backoff: tests/test_backoff.py
    caplog.set_level(logging.WARNING, logger="engine.store.bridge")
    with trio.fail_after(10), pytest.raises(StoreUnavailable) as raised:
        async with open_bridge("postgresql://app@127.0.0.1:1/db", start_timeout_s=0.5):
            pytest.fail("connected to port 1")  # refused at once, until the 0.5 s are spent
    (backoff,) = spy.made  # 0.1 s doubling up to 5 s, for one start
    assert (backoff.base_s, backoff.cap_s, backoff.healthy_after_s) == (0.1, 5.0, 0.0)
    retries = [r.getMessage() for r in caplog.records if "retrying in" in r.getMessage()]
    assert len(retries) == len(spy.delays) >= 2
    assert f"unreachable after {len(spy.delays) + 1} attempts in 0.5 s" in str(raised.value)
