"""Per-user limits (live alerts, distinct live symbols) and missing owners, decided by
Store.create_alerts in the INSERT's own transaction (migration 0007's admit_alerts)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import trio

from engine.model import Alert, Direction, Fire, Tick
from engine.store import Refusal, Store


def _row(owner: int, symbol: str, n: int = 1, exchange: str = "binance") -> tuple[Any, ...]:
    return (owner, exchange, symbol, Decimal(n), Direction.ABOVE, f"{symbol}-{n}")


async def _live(store: Store, owner: int) -> tuple[int, set[tuple[str, str]]]:
    count, alerts = await store.list_alerts(owner, status="created", limit=100)
    return count, {(a.exchange, a.symbol) for a in alerts}


async def test_rows_are_decided_in_order_as_if_created_one_at_a_time(store: Store) -> None:
    with trio.fail_after(20):
        a = (await store.create_user("a", "a@example.com", "x")).id
        b = (await store.create_user("b", "b@example.com", "x")).id
        rows = [
            _row(a, "BTC", 1),
            _row(a, "ETH", 2),
            _row(a, "SOL", 3),  # a third symbol: past max_symbols = 2
            _row(999_999, "BTC", 4),  # nobody
            _row(b, "SOL", 5),  # b's own room
            _row(a, "BTC", 6),  # a live symbol: fine, the third live alert
            _row(a, "SOL", 7),  # past both: the alert limit is said first
            _row(a, "ETH", 8),  # past the alert limit
            _row(a, "BTC", 9, exchange="okx"),  # another exchange is another pair
        ]
        got = await store.create_alerts(rows, max_live_alerts=3, max_symbols=2)
        refusals = [r if isinstance(r, Refusal) else None for r in got]
        assert refusals == [
            None,
            None,
            Refusal.SYMBOL_LIMIT,
            Refusal.NO_OWNER,
            None,
            None,
            Refusal.ALERT_LIMIT,
            Refusal.ALERT_LIMIT,
            Refusal.ALERT_LIMIT,
        ]
        written = [r for r in got if isinstance(r, Alert)]
        assert [x.name for x in written] == ["BTC-1", "ETH-2", "SOL-5", "BTC-6"]
        assert [x.id for x in written] == sorted(x.id for x in written)
        assert await _live(store, a) == (3, {("binance", "BTC"), ("binance", "ETH")})
        # the next call sees the first one's rows
        again = await store.create_alerts([_row(a, "BTC", 10)], max_live_alerts=3)
        assert again == [Refusal.ALERT_LIMIT]
        more = await store.create_alerts([_row(a, "XRP", 11)], max_live_alerts=4, max_symbols=2)
        assert more == [Refusal.SYMBOL_LIMIT]


async def test_no_limit_when_none_and_a_missing_owner_never_fails_the_batch(
    store: Store,
) -> None:
    with trio.fail_after(20):
        a = (await store.create_user("a", "a@example.com", "x")).id
        rows = [_row(a, f"S{i}", i + 1) for i in range(30)]
        rows.insert(12, _row(999_999, "S0"))
        got = await store.create_alerts(rows)
        assert got[12] is Refusal.NO_OWNER
        assert all(isinstance(r, Alert) for i, r in enumerate(got) if i != 12)
        assert (await store.list_alerts(a))[0] == 30
        assert await store.create_alerts([_row(999_999, "S0")]) == [Refusal.NO_OWNER]


async def test_concurrent_batches_of_one_owner_never_pass_a_limit(store: Store) -> None:
    """Batches on separate connections at once (as several processes would send them): the
    owner's lock makes them take turns, each seeing what the one before it wrote."""
    with trio.fail_after(30):
        a = (await store.create_user("a", "a@example.com", "x")).id
        b = (await store.create_user("b", "b@example.com", "x")).id
        results: list[Alert | Refusal] = []

        async def batch(k: int) -> None:
            rows = [_row(a, f"S{(k + i) % 4}", i + 1) for i in range(5)]
            rows += [_row(b, f"S{(k + i) % 4}", i + 1) for i in range(2)]
            if k % 2:  # owners in either order within a batch
                rows.reverse()
            results.extend(await store.create_alerts(rows, max_live_alerts=12, max_symbols=3))

        async with trio.open_nursery() as nursery:
            for k in range(10):
                nursery.start_soon(batch, k)

        count_a, symbols_a = await _live(store, a)
        count_b, symbols_b = await _live(store, b)
        assert count_a == 12 and len(symbols_a) <= 3
        assert count_b == 12 and len(symbols_b) <= 3
        assert sum(isinstance(r, Alert) for r in results) == 24


async def test_fires_and_deletes_make_room(store: Store) -> None:
    with trio.fail_after(20):
        a = (await store.create_user("a", "a@example.com", "x")).id
        limits = {"max_live_alerts": 3, "max_symbols": 2}
        first = await store.create_alerts(
            [_row(a, "BTC", 1), _row(a, "BTC", 2), _row(a, "ETH", 3)], **limits
        )
        assert await store.create_alerts([_row(a, "BTC", 4)], **limits) == [Refusal.ALERT_LIMIT]
        deleted = first[0]
        assert isinstance(deleted, Alert)
        await store.delete_alert(a, deleted.id)
        assert isinstance((await store.create_alerts([_row(a, "BTC", 5)], **limits))[0], Alert)
        # ETH's only alert fires: its pair is no longer live, so a new symbol fits
        eth = first[2]
        assert isinstance(eth, Alert)
        await store.record_fires([Fire(Tick("binance", "ETH", Decimal(3)), (eth.trigger(),))], [])
        assert isinstance((await store.create_alerts([_row(a, "SOL", 6)], **limits))[0], Alert)
        assert await _live(store, a) == (3, {("binance", "BTC"), ("binance", "SOL")})
