"""Versioned schema migrations: ``migrations/NNNN_name.sql``, applied in order at start.

All pending migrations run in one transaction under a transaction-level advisory lock, so two
engines starting at once apply each migration exactly once (the second waits, then finds nothing
to do), and a failing migration leaves the schema as it was. Each applied file is recorded in
``schema_migrations`` with a checksum; an applied file that changed afterwards is refused rather
than silently diverging from the database.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable

import asyncpg

from engine.errors import MigrationError

# pg_advisory_xact_lock key: "triggerbook" folded into a bigint; any constant works.
LOCK_KEY = 0x7472696767657262
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def load_migrations(directory: Traversable | None = None) -> list[Migration]:
    """The migration files in ``directory`` (default: those shipped in
    ``engine/store/migrations``), in version order.

    Raises :class:`MigrationError` for a misnamed file or a gap or duplicate in the numbering.
    """
    if directory is None:
        directory = resources.files("engine.store").joinpath("migrations")
    found: list[Migration] = []
    for entry in directory.iterdir():
        if not entry.name.endswith(".sql"):
            continue
        match = _NAME.match(entry.name)
        if match is None:
            raise MigrationError(f"migration file {entry.name!r} is not named NNNN_name.sql")
        found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    for expected, migration in enumerate(found, start=1):
        if migration.version != expected:
            raise MigrationError(
                f"migrations must be numbered 0001, 0002, ... without gaps; "
                f"found {migration.version:04d}_{migration.name} where {expected:04d} was due"
            )
    return found


async def apply_migrations(con: asyncpg.Connection, migrations: list[Migration]) -> list[int]:
    """Apply the pending ``migrations`` (asyncio side, for :meth:`Bridge.run`).

    Returns the versions applied by this call (empty when the schema was current).
    Raises :class:`MigrationError` when a migration fails (nothing is applied) or an already
    applied migration's file has changed.
    """
    async with con.transaction():
        await con.execute("SELECT pg_advisory_xact_lock($1)", LOCK_KEY)
        await con.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   version    integer PRIMARY KEY,
                   name       text NOT NULL,
                   checksum   text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        rows = await con.fetch("SELECT version, name, checksum FROM schema_migrations")
        applied = {row["version"]: row for row in rows}
        done: list[int] = []
        for migration in migrations:
            row = applied.get(migration.version)
            if row is not None:
                if row["checksum"] != migration.checksum:
                    raise MigrationError(
                        f"migration {migration.version:04d}_{row['name']} was changed after it "
                        f"was applied; add a new migration instead of editing it"
                    )
                continue
            try:
                await con.execute(migration.sql)
            except asyncpg.PostgresError as exc:
                raise MigrationError(
                    f"migration {migration.version:04d}_{migration.name} failed: "
                    f"{type(exc).__name__}: {exc}"
                ) from None
            await con.execute(
                "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                migration.version,
                migration.name,
                migration.checksum,
            )
            done.append(migration.version)
        return done
