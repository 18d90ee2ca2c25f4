"""Migrations: from empty, re-run, two at once, a changed file, a failing one, bad file names."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from engine.errors import MigrationError
from engine.store.bridge import open_bridge
from engine.store.migrate import Migration, apply_migrations, load_migrations

SHIPPED = [m.version for m in load_migrations()]  # each helper's migration adds one


async def _tables(bridge) -> set[str]:
    async def query(con):
        rows = await con.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        return {row[0] for row in rows}

    return await bridge.run(query)


async def test_from_empty_then_again_is_a_no_op(fresh_url: str) -> None:
    with trio.fail_after(20):
        async with open_bridge(fresh_url, max_size=2) as bridge:
            assert await _tables(bridge) == set()
            assert await bridge.run(apply_migrations, load_migrations()) == SHIPPED
            assert await _tables(bridge) >= {"schema_migrations", "users", "alerts", "outbox"}
            assert await bridge.run(apply_migrations, load_migrations()) == []

            async def versions(con):
                return await con.fetch("SELECT version, name FROM schema_migrations")

            assert [tuple(r) for r in await bridge.run(versions)][:5] == [
                (1, "initial"),
                (2, "hot_fires"),
                (3, "fire_batches"),
                (4, "alert_counts"),
                (5, "fire_times_and_limits"),
            ]


async def test_two_at_once_apply_each_migration_once(fresh_url: str) -> None:
    results: list[list[int]] = []

    async def apply(bridge) -> None:
        results.append(await bridge.run(apply_migrations, load_migrations()))

    with trio.fail_after(20):
        async with (
            open_bridge(fresh_url, max_size=1) as one,
            open_bridge(fresh_url) as two,
            trio.open_nursery() as nursery,
        ):
            nursery.start_soon(apply, one)
            nursery.start_soon(apply, two)
    assert sorted(results) == [[], SHIPPED]


async def test_an_applied_migration_that_changed_is_refused(fresh_url: str) -> None:
    with trio.fail_after(20):
        async with open_bridge(fresh_url) as bridge:
            await bridge.run(apply_migrations, load_migrations())
            edited = [Migration(1, "initial", "-- edited afterwards")]
            with pytest.raises(MigrationError, match="changed after it was applied"):
                await bridge.run(apply_migrations, edited)


async def test_a_failing_migration_changes_nothing(fresh_url: str) -> None:
    broken = Migration(2, "broken", "CREATE TABLE extra (id int); SELECT 1 / 0;")
    with trio.fail_after(20):
        async with open_bridge(fresh_url) as bridge:
            with pytest.raises(MigrationError, match="0002_broken failed: DivisionByZero"):
                await bridge.run(apply_migrations, [*load_migrations(), broken])
            # one transaction: not even 0001 stayed applied
            assert await _tables(bridge) == set()


def _write(directory: Path, names: list[str]) -> Path:
    for name in names:
        (directory / name).write_text("SELECT 1;")
    return directory


def test_files_load_in_version_order(tmp_path: Path) -> None:
    found = load_migrations(_write(tmp_path, ["0002_b.sql", "0001_a.sql", "README.txt"]))
    assert [(m.version, m.name) for m in found] == [(1, "a"), (2, "b")]


@pytest.mark.parametrize(
    ("names", "message"),
    [
        (["0001_a.sql", "0003_c.sql"], "0003_c where 0002 was due"),
        (["0002_b.sql"], "0002_b where 0001 was due"),
        (["0001_a.sql", "0001_b.sql"], "where 0002 was due"),
        (["1_a.sql"], "not named NNNN_name.sql"),
    ],
)
def test_bad_file_sets_are_refused(tmp_path: Path, names: list[str], message: str) -> None:
    with pytest.raises(MigrationError, match=message):
        load_migrations(_write(tmp_path, names))


def test_the_shipped_migrations_load() -> None:
    assert SHIPPED[:5] == [1, 2, 3, 4, 5]


async def test_alert_counts_are_filled_in_for_alerts_made_before_them(fresh_url: str) -> None:
    with trio.fail_after(20):
        async with open_bridge(fresh_url, max_size=2) as bridge:
            earlier = [m for m in load_migrations() if m.version < 4]
            await bridge.run(apply_migrations, earlier)

            async def seed(con):
                ids = [
                    await con.fetchval(
                        "INSERT INTO users (username, email, password_hash) "
                        "VALUES ($1, $1 || '@example.com', 'x') RETURNING id",
                        name,
                    )
                    for name in ("a", "b", "c")
                ]
                for owner, n in zip(ids, (3, 1, 0), strict=True):
                    for i in range(n):
                        await con.execute(
                            "INSERT INTO alerts (owner_id, exchange, symbol, target_price, "
                            "direction) VALUES ($1, 'binance', $2, 1, 'above')",
                            owner,
                            f"S{i}",
                        )
                return ids

            ids = await bridge.run(seed)
            assert await bridge.run(apply_migrations, load_migrations()) == SHIPPED[3:]

            async def counts(con):
                rows = await con.fetch("SELECT id, alert_count FROM users ORDER BY id")
                return [tuple(r) for r in rows]

            assert await bridge.run(counts) == list(zip(ids, (3, 1, 0), strict=True))
