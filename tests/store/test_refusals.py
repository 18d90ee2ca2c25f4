"""What the database refuses becomes StoreRefused at the edge, on the real server.

Data errors (SQLSTATE class 22: numeric or datetime overflow, text that is not a number, a NUL
byte) and integrity violations (class 23: a CHECK, a foreign key, NOT NULL, a unique value) are
refused values: retrying them fails again, so callers set them aside or answer 422. A unique
violation on register stays Conflict; a server that is away stays StoreUnavailable
(``test_availability.py``).
"""

from __future__ import annotations

from decimal import Decimal

import pytest
import trio

from engine.errors import Conflict, StoreRefused
from engine.model import Direction
from engine.store import Store
from engine.store.bridge import refused_sqlstate

CASES = {
    # class 22
    "numeric overflow": ("SELECT '1e200000'::numeric", "22003"),
    "datetime overflow": (
        "SELECT 'epoch'::timestamptz + 1e16::float8 * interval '1 millisecond'",
        "22008",
    ),
    "invalid text": ("SELECT 'seventy'::numeric", "22P02"),
    "division by zero": ("SELECT 1 / 0", "22012"),
    # class 23
    "check": (
        "INSERT INTO alerts (owner_id, exchange, symbol, target_price, direction) "
        "SELECT id, 'binance', 'BTCUSDT', -1, 'above' FROM users",
        "23514",
    ),
    "foreign key": (
        "INSERT INTO alerts (owner_id, exchange, symbol, target_price, direction) "
        "VALUES (999999, 'binance', 'BTCUSDT', 1, 'above')",
        "23503",
    ),
    "not null": ("INSERT INTO users (username, email) VALUES ('bob', NULL)", "23502"),
    "unique": (
        "INSERT INTO users (username, email, password_hash) VALUES ('ALICE', 'b@x', 'h')",
        "23505",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_a_refused_value_is_store_refused(store: Store, case: str) -> None:
    sql, sqlstate = CASES[case]

    async def run(con) -> object:
        return await con.fetchval(sql)

    with trio.fail_after(10):
        await store.create_user("alice", "a@example.com", "h")
        with pytest.raises(StoreRefused, match="the database refused") as raised:
            await store.bridge.run(run)
        assert refused_sqlstate(raised.value) == sqlstate
        await store.ping()  # the connection is still good


async def test_a_nul_byte_in_a_value_is_refused(store: Store) -> None:
    with trio.fail_after(10):
        owner = await store.create_user("alice", "a@example.com", "h")
        with pytest.raises(StoreRefused) as raised:
            await store.create_alert(
                owner.id, "binance", "BTCUSDT", Decimal(1), Direction.ABOVE, "a\x00b"
            )
        assert refused_sqlstate(raised.value) == "22021"  # character not in repertoire


async def test_a_value_the_driver_cannot_encode_is_refused(store: Store) -> None:
    """A lone surrogate (it arrives through a JSON escape) is refused by asyncpg itself,
    before the server sees it: a refusal too (SQLSTATE 22000, data exception)."""
    with trio.fail_after(10):
        owner = await store.create_user("alice", "a@example.com", "h")
        with pytest.raises(StoreRefused, match="invalid input for query argument") as raised:
            await store.create_alert(
                owner.id, "binance", "BTCUSDT", Decimal(1), Direction.ABOVE, "a\ud800b"
            )
        assert refused_sqlstate(raised.value) == "22000"
        await store.ping()


async def test_a_taken_username_on_register_stays_conflict(store: Store) -> None:
    with trio.fail_after(10):
        await store.create_user("alice", "a@example.com", "h")
        with pytest.raises(Conflict, match="taken"):
            await store.create_user("Alice", "b@example.com", "h")


async def test_a_user_that_no_longer_exists_is_refused_on_create(store: Store) -> None:
    with trio.fail_after(10):
        with pytest.raises(StoreRefused) as raised:
            await store.create_alert(999_999, "binance", "BTCUSDT", Decimal(1), Direction.ABOVE)
        assert refused_sqlstate(raised.value) == "23503"
