"""Case 1 of issue 12: rows the book cannot hold never stop a start.

Rows stored before migration 0005 (a target of 3.96e20 that the API once accepted, a NaN
target) are in the database; the real ``run_engine`` start-up applies 0005 over them, loads every
good alert into the book and quarantines each bad one under its alert id.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import trio

from engine import limits
from engine.app import Engine, run_engine
from engine.plugins.registry import load_registry
from engine.store.bridge import open_bridge
from engine.store.migrate import apply_migrations, load_migrations

ROWS = {
    "good": ("BTCUSDT", Decimal("70000.1"), ""),
    "huge": ("BTCUSDT", Decimal("396212846246294800000"), ""),  # the request of case 1
    "nan": ("BTCUSDT", Decimal("NaN"), ""),
    "finer": ("BTCUSDT", Decimal("1.0000000000000000001"), ""),
    "sideways": ("BTCUSDT", Decimal(7), ""),
    "long name": ("ETHUSDT", Decimal(5), "n" * (limits.NAME_MAX + 1)),  # old, but the book holds it
}


async def _old_rows(url: str) -> dict[str, int]:
    """The schema as it was before 0005, and rows written through it (raw SQL)."""
    async with open_bridge(url, max_size=1) as bridge:
        await bridge.run(apply_migrations, load_migrations()[:4])

        async def insert(con) -> dict[str, int]:
            # a direction the parser cannot read (only a damaged schema lets one in)
            await con.execute("ALTER TABLE alerts DROP CONSTRAINT alerts_direction_check")
            owner = await con.fetchval(
                "INSERT INTO users (username, email, password_hash) "
                "VALUES ('alice', 'a@example.com', 'h') RETURNING id"
            )
            return {
                key: await con.fetchval(
                    "INSERT INTO alerts (owner_id, exchange, symbol, target_price, direction, "
                    "name) VALUES ($1, 'binance', $2, $3, $4, $5) RETURNING id",
                    owner,
                    symbol,
                    target,
                    "sideways" if key == "sideways" else "above",
                    name,
                )
                for key, (symbol, target, name) in ROWS.items()
            }

        return await bridge.run(insert)


async def test_the_engine_starts_past_rows_the_book_cannot_hold(
    fresh_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "config.toml"
    path.write_text(
        f'[http]\nport = 0\n[database]\nurl = "{fresh_url}"\ndata_dir = "{tmp_path / "pg"}"\n'
        f'[auth]\nsecret = "{"s" * 48}"\n[feeds.binance]\nenabled = false\n'
    )
    registry = load_registry(entry_points=False)  # the built-in feeds are enough here
    config = registry.load_config(path, environ={})
    with trio.fail_after(60):
        ids = await _old_rows(fresh_url)
        async with trio.open_nursery() as nursery:
            engine: Engine = await nursery.start(run_engine, config, registry)
            parts = engine.parts
            assert sorted(t.id for t in parts.book.snapshot()) == [ids["good"], ids["long name"]]
            assert parts.quarantine.counts == {"load": 4}
            for key, word in [
                ("huge", "below 10"),
                ("nan", "finite"),
                ("finer", "finer"),
                ("sideways", "direction"),
            ]:
                reason = parts.quarantine.reason_for(ids[key])
                assert reason is not None and word in reason, (key, reason)
            assert parts.quarantine.reason_for(ids["good"]) is None
            assert parts.metrics.quarantined.get(kind="load") == 4
            assert parts.demand.symbols("binance") == {"BTCUSDT", "ETHUSDT"}
            nursery.cancel_scope.cancel()
