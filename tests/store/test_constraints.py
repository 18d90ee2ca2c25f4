"""Migration 0005's constraints follow engine/limits.py: every number is tried at the boundary
and one step past it, so changing a limit without the migration (or the reverse) fails here.

The constraints are NOT VALID: a row stored before them cannot stop the migration, and (they
bind a live row's values, not its later changes) such a row can still be fired or deleted.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
import trio

from engine import limits
from engine.errors import StoreRefused
from engine.model import AlertStatus, Direction, Fire, Tick
from engine.store import Store
from engine.store.bridge import open_bridge
from engine.store.migrate import apply_migrations, load_migrations

STEP = limits.MIN_PRICE  # the finest step a price may take
GOOD_PRICES = [limits.MIN_PRICE, limits.MAX_PRICE, Decimal("70000.1"), Decimal(1) + STEP]
BAD_PRICES = [
    limits.MIN_PRICE - STEP,  # zero
    limits.MIN_PRICE / 10,  # below the smallest, and finer than the step
    limits.MAX_PRICE + STEP,  # 10**PRICE_WHOLE_DIGITS
    Decimal(1) + STEP / 10,  # in range, finer than the step
    Decimal("NaN"),
    Decimal("Infinity"),
    Decimal(-1),
]


async def _insert(store: Store, owner_id: int, **values: object) -> int:
    row = {"symbol": "BTCUSDT", "target_price": Decimal(1), "name": ""} | values

    async def insert(con) -> int:
        return await con.fetchval(
            "INSERT INTO alerts (owner_id, exchange, symbol, target_price, direction, name) "
            "VALUES ($1, 'binance', $2, $3, 'above', $4) RETURNING id",
            owner_id,
            row["symbol"],
            row["target_price"],
            row["name"],
        )

    return await store.bridge.run(insert)


async def _fire_at(store: Store, alert_id: int, price: Decimal) -> None:
    async def fire(con) -> None:
        await con.execute(
            "UPDATE alerts SET status = 'triggered', triggered_at = now(), triggered_price = $2 "
            "WHERE id = $1",
            alert_id,
            price,
        )

    await store.bridge.run(fire)


async def test_target_prices_follow_the_limits(store: Store) -> None:
    with trio.fail_after(20):
        owner = await store.create_user("alice", "a@example.com", "h")
        for price in GOOD_PRICES:
            await _insert(store, owner.id, target_price=price)
        for price in BAD_PRICES:
            with pytest.raises(StoreRefused, match="CheckViolation"):
                await _insert(store, owner.id, target_price=price)
                pytest.fail(f"target {price} accepted")


async def test_triggered_prices_follow_the_limits(store: Store) -> None:
    """A tick's price (hence a triggered price) is in the range at any precision."""
    finer = Decimal(1) + STEP / 10
    with trio.fail_after(20):
        owner = await store.create_user("alice", "a@example.com", "h")
        for price in [*GOOD_PRICES, finer]:
            assert limits.tick_problem(price, 0) is None
            await _fire_at(store, await _insert(store, owner.id), price)
        alert_id = await _insert(store, owner.id)
        for price in (p for p in BAD_PRICES if p != finer):
            assert limits.tick_problem(price, 0) is not None
            with pytest.raises(StoreRefused, match="CheckViolation"):
                await _fire_at(store, alert_id, price)
                pytest.fail(f"triggered price {price} accepted")


@pytest.mark.parametrize(
    ("column", "limit"), [("name", limits.NAME_MAX), ("symbol", limits.SYMBOL_MAX)]
)
async def test_text_lengths_follow_the_limits(store: Store, column: str, limit: int) -> None:
    with trio.fail_after(20):
        owner = await store.create_user("alice", "a@example.com", "h")
        await _insert(store, owner.id, **{column: "é" * limit})  # characters, not bytes
        with pytest.raises(StoreRefused, match="CheckViolation"):
            await _insert(store, owner.id, **{column: "X" * (limit + 1)})


async def test_rows_stored_before_the_constraints_do_not_stop_the_migration(
    fresh_url: str,
) -> None:
    """Old rows out of range: the migration applies, and each such row can still be fired
    (an old long name) or deleted (an old target the book refuses)."""
    migrations = load_migrations()
    with trio.fail_after(30):
        async with open_bridge(fresh_url, max_size=2) as bridge:
            await bridge.run(apply_migrations, migrations[:4])

            async def old_rows(con) -> list[int]:
                owner = await con.fetchval(
                    "INSERT INTO users (username, email, password_hash) "
                    "VALUES ('old', 'o@x', 'h') RETURNING id"
                )
                rows = [
                    ("BTCUSDT", Decimal("396212846246294800000"), ""),
                    ("BTCUSDT", Decimal("NaN"), ""),
                    ("BTCUSDT", Decimal(5), "n" * (limits.NAME_MAX + 50)),
                    ("S" * (limits.SYMBOL_MAX + 5), Decimal(5), ""),
                ]
                return [
                    await con.fetchval(
                        "INSERT INTO alerts (owner_id, exchange, symbol, target_price, "
                        "direction, name) VALUES ($1, 'binance', $2, $3, 'above', $4) "
                        "RETURNING id",
                        owner,
                        *row,
                    )
                    for row in rows
                ]

            huge, nan, long_name, long_symbol = await bridge.run(old_rows)
            applied = await bridge.run(apply_migrations, migrations)
            assert applied[0] == 5

            async def validated(con) -> dict[str, bool]:
                rows = await con.fetch(
                    "SELECT conname, convalidated FROM pg_constraint "
                    "WHERE conrelid = 'alerts'::regclass AND conname LIKE 'alerts\\_%\\_limits'"
                )
                return {row[0]: row[1] for row in rows}

            assert set((await bridge.run(validated)).values()) == {False}

            store = Store(bridge)
            fired = Fire(Tick("binance", "BTCUSDT", Decimal(6)), ())
            long_alert = await _get(bridge, long_name)
            symbol_alert = await _get(bridge, long_symbol)
            marked = await store.record_fires(
                [
                    Fire(fired.tick, (long_alert.trigger(),)),
                    Fire(
                        Tick("binance", symbol_alert.symbol, Decimal(6)), (symbol_alert.trigger(),)
                    ),
                ],
                ["console"],
            )
            assert marked == [long_name, long_symbol]
            owner_id = long_alert.owner_id
            for alert_id in (huge, nan):
                deleted = await store.delete_alert(owner_id, alert_id)
                assert deleted is not None and deleted.status == AlertStatus.DELETED


async def _get(bridge, alert_id: int):
    store = Store(bridge)

    async def owner(con) -> int:
        return await con.fetchval("SELECT owner_id FROM alerts WHERE id = $1", alert_id)

    alert = await store.get_alert(await bridge.run(owner), alert_id)
    assert alert is not None and alert.direction == Direction.ABOVE
    return alert
