"""The SQL of the exchanges' symbol lists (table ``exchange_symbols``, migration 0006).

Asyncio coroutine functions ``fn(con, ...)`` run through ``store.bridge.run(fn, ...)``, like
``engine/store/queries.py``; ``engine/feeds/symbols.py`` is the only caller.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import asyncpg


async def load_all(con: asyncpg.Connection) -> list[tuple[str, list[str], datetime, str]]:
    """Every stored list: ``(exchange, symbols, fetched_at, source)``."""
    rows = await con.fetch("SELECT exchange, symbols, fetched_at, source FROM exchange_symbols")
    return [(r["exchange"], list(r["symbols"]), r["fetched_at"], r["source"]) for r in rows]


async def save(
    con: asyncpg.Connection, exchange: str, symbols: Sequence[str], source: str
) -> datetime:
    """Replace the list of ``exchange``; returns its ``fetched_at`` (the database's now)."""
    return await con.fetchval(
        "INSERT INTO exchange_symbols (exchange, symbols, source) VALUES ($1, $2, $3) "
        "ON CONFLICT (exchange) DO UPDATE "
        "SET symbols = EXCLUDED.symbols, source = EXCLUDED.source, fetched_at = now() "
        "RETURNING fetched_at",
        exchange,
        list(symbols),
        source,
    )


async def clear(con: asyncpg.Connection) -> None:
    """Forget every stored list (tests)."""
    await con.execute("DELETE FROM exchange_symbols")
