"""The write-through store: :func:`open_store` and the :class:`Store` the engine and web use.

Every method is async and cancellable (see ``bridge.py``), crosses the Trio/asyncio bridge once,
and returns our msgspec rows. Every method raises :class:`StoreUnavailable` when the database
cannot be reached or the connection is lost mid-call; the caller decides whether to retry.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import datetime
from decimal import Decimal

import asyncpg

from engine.config import DatabaseConfig
from engine.errors import Conflict, StoreRefused
from engine.limits import MAX_LIST_OFFSET
from engine.model import (
    Alert,
    AlertStatus,
    Direction,
    Fire,
    FireChannels,
    OutboxRow,
    Trigger,
    User,
)
from engine.store import embedded, queries
from engine.store.bridge import UNIQUE_VIOLATION, Bridge, open_bridge, refused_sqlstate
from engine.store.destinations import Destinations
from engine.store.migrate import apply_migrations, load_migrations
from engine.store.outbox import Outbox

log = logging.getLogger(__name__)

_DIRECTIONS = {d.value: d for d in Direction}
_STATUSES = {s.value: s for s in AlertStatus}


class Refusal(enum.Enum):
    """Why :meth:`Store.create_alerts` did not write a row (nothing else was refused with it)."""

    NO_OWNER = "owner"
    """The row's owner does not exist (an account deleted while its token still verifies)."""
    ALERT_LIMIT = "alerts"
    """The owner has ``max_live_alerts`` live alerts already."""
    SYMBOL_LIMIT = "symbols"
    """The row's (exchange, symbol) is not live for the owner, who watches ``max_symbols``."""


_REFUSALS = {r.value: r for r in Refusal}


class Store:
    """Users, alerts and the notification outbox in Postgres. Built by :func:`open_store`."""

    def __init__(self, bridge: Bridge) -> None:
        self._bridge = bridge
        self.outbox = Outbox(bridge)  # the sinks' delivery queue (engine/store/outbox.py)
        # where users want notifications, and their confirmation codes (destinations.py)
        self.destinations = Destinations(bridge)

    @property
    def bridge(self) -> Bridge:
        """The connection pool, for tests and benchmarks that need raw SQL."""
        return self._bridge

    # --- users ------------------------------------------------------------------------------

    async def create_user(
        self, username: str, email: str, password_hash: str, is_staff: bool = False
    ) -> User:
        """Insert an account. Raises :class:`Conflict` when the username is taken, whatever
        its case (``Alice`` and ``alice`` are one name)."""
        try:
            row = await self._bridge.run(
                queries.insert_user, username, email, password_hash, is_staff
            )
        except StoreRefused as exc:
            if refused_sqlstate(exc) == UNIQUE_VIOLATION:
                raise Conflict(f"the username {username!r} is taken") from None
            raise
        return _user(row)

    async def get_user(self, user_id: int) -> User | None:
        """The account with this id, or None."""
        row = await self._bridge.run(queries.user_by_id, user_id)
        return None if row is None else _user(row)

    async def get_user_by_username(self, username: str) -> User | None:
        """The account with this username (compared case-insensitively), or None."""
        row = await self._bridge.run(queries.user_by_username, username)
        return None if row is None else _user(row)

    async def list_users(self, limit: int, offset: int) -> tuple[int, list[User]]:
        """(total number of accounts, one page of them in id order)."""
        count, rows = await self._bridge.run(queries.users_page, limit, offset)
        return count, [_user(row) for row in rows]

    # --- alerts -----------------------------------------------------------------------------

    async def create_alert(
        self,
        owner_id: int,
        exchange: str,
        symbol: str,
        target_price: Decimal,
        direction: Direction,
        name: str = "",
        channels: Sequence[str] | None = None,
    ) -> Alert:
        """Insert a live alert; it exists once this returns (then the caller adds it to the
        book). ``channels``: the sinks it notifies (None: the defaults at fire time). Raises
        ``ValueError`` for a target that is not a finite decimal > 0."""
        if not isinstance(target_price, Decimal) or not target_price.is_finite():
            raise ValueError(f"target_price must be a finite Decimal, got {target_price!r}")
        if target_price <= 0:
            raise ValueError(f"target_price must be > 0, got {target_price}")
        row = await self._bridge.run(
            queries.insert_alert,
            owner_id,
            exchange,
            symbol,
            target_price,
            Direction(direction).value,
            name,
            None if channels is None else list(channels),
        )
        return _alert(row)

    async def create_alerts(
        self,
        rows: Sequence[tuple[int, str, str, Decimal, Direction, str]]
        | Sequence[tuple[int, str, str, Decimal, Direction, str, Sequence[str] | None]],
        *,
        max_live_alerts: int | None = None,
        max_symbols: int | None = None,
    ) -> list[Alert | Refusal]:
        """Insert many live alerts in one statement (one round trip, one commit): each row is
        ``(owner_id, exchange, symbol, target_price, direction, name[, channels])`` as for
        :meth:`create_alert` (no ``channels``, or None: the defaults). Returns, in the order
        given, each row's :class:`Alert` or the :class:`Refusal` that kept it out: an owner
        that no longer exists, or an owner who would pass ``max_live_alerts`` live alerts or
        ``max_symbols`` distinct live (exchange, symbol) pairs (None: no limit). Rows are
        decided in order, as if created one at a time, in the database and in the INSERT's
        own transaction, with the owners locked: concurrent calls (from any process) never
        take an owner past a limit.

        Raises ``ValueError`` for a target as :meth:`create_alert` (nothing written). If it
        raises (:class:`StoreRefused` for a value the database refuses), no row was written.
        """
        for row in rows:
            target = row[3]
            if not isinstance(target, Decimal) or not target.is_finite() or target <= 0:
                raise ValueError(f"target_price must be a finite Decimal > 0, got {target!r}")
        if not rows:
            return []
        verdicts, written = await self._bridge.run(
            queries.insert_alerts,
            [r[0] for r in rows],
            [r[1] for r in rows],
            [r[2] for r in rows],
            [r[3] for r in rows],
            [Direction(r[4]).value for r in rows],
            [r[5] for r in rows],
            max_live_alerts,
            max_symbols,
            [_joined(r[6]) if len(r) > 6 else None for r in rows],  # type: ignore[misc]
        )
        alerts = iter(written)
        return [_alert(next(alerts)) if v is None else _REFUSALS[v] for v in verdicts]

    async def get_alert(self, owner_id: int, alert_id: int) -> Alert | None:
        """The alert, or None when it does not exist or belongs to someone else."""
        row = await self._bridge.run(queries.alert_of, owner_id, alert_id)
        return None if row is None else _alert(row)

    async def list_alerts(
        self,
        owner_id: int,
        *,
        status: AlertStatus | str | None = None,
        symbol: str | None = None,
        symbols: Sequence[str] | None = None,
        exchange: str | None = None,
        limit: int = 20,
        offset: int = 0,
    ) -> tuple[int, list[Alert]]:
        """(number of the owner's alerts matching the filters, one page of them newest first:
        ``created_at`` descending, then id descending).

        ``symbols`` matches any of these spellings (the web's ``?symbol=`` without an exchange),
        ``symbol`` one; give one or the other. Pagination is by offset, bounded: an offset past
        :data:`engine.limits.MAX_LIST_OFFSET` raises ``ValueError`` (the web answers 422 on
        ``page`` before asking). So every page, filtered or not, reads at most that many index
        entries and ``limit`` rows: a few milliseconds for an owner with 300,000 alerts
        (``python -m benchmarks.listing``). A cursor (keyset) would lift the bound, but the
        API's contract is numbered pages with a ``count``; past 10,000 alerts a client narrows
        the filter. The count costs nothing: it is the sum of a few kept tallies (migration
        0007), never a count of rows.

        Raises ``ValueError`` for an unknown status, both ``symbol`` and ``symbols``, or an
        offset out of 0..MAX_LIST_OFFSET.
        """
        if not 0 <= offset <= MAX_LIST_OFFSET:
            raise ValueError(f"offset must be within 0..{MAX_LIST_OFFSET}, got {offset}")
        if symbol is not None:
            if symbols is not None:
                raise ValueError("give symbol or symbols, not both")
            symbols = (symbol,)
        if status is None and symbols is None and exchange is None:
            return (await self.list_alert_pages([(owner_id, limit, offset)]))[0]
        count, rows = await self._bridge.run(
            queries.alerts_page,
            owner_id,
            None if status is None else AlertStatus(status).value,
            exchange,
            None if symbols is None else list(dict.fromkeys(symbols)),
            limit,
            offset,
        )
        return count, [_alert(row) for row in rows]

    async def list_alert_pages(
        self, pages: Sequence[tuple[int, int, int]]
    ) -> list[tuple[int, list[Alert]]]:
        """:meth:`list_alerts` without filters for many ``(owner_id, limit, offset)`` at once, in
        one round trip; the results in the order given. A page asked for more than once (many
        clients of one account) is read once, each asker getting its own list."""
        if not pages:
            return []
        distinct = list(dict.fromkeys(pages))
        found = await self._bridge.run(
            queries.alert_pages,
            [p[0] for p in distinct],
            [p[1] for p in distinct],
            [p[2] for p in distinct],
        )
        read = {
            ask: (count, [_alert(row) for row in rows])
            for ask, (count, rows) in zip(distinct, found, strict=True)
        }
        return [(read[ask][0], list(read[ask][1])) for ask in pages]

    async def delete_alert(self, owner_id: int, alert_id: int) -> Alert | None:
        """Soft-delete: a ``created`` alert becomes ``deleted`` (``deleted_at`` set) and the row
        stays. An alert already deleted or triggered is returned unchanged (a fire that won a
        race with this delete shows as triggered). None when missing or not the owner's."""
        _changed, row = await self._bridge.run(queries.soft_delete, owner_id, alert_id)
        return None if row is None else _alert(row)

    # --- fires ------------------------------------------------------------------------------

    async def record_fires(
        self,
        fires: Sequence[Fire],
        channels: FireChannels | Sequence[str],
        owners: dict[int, int] | None = None,
    ) -> list[int]:
        """Mark every fired alert ``triggered`` and queue its outbox rows (one per channel and
        destination, :class:`FireChannels`; a plain sequence of names is that many account
        channels), all in one statement (one transaction, one round trip) for the whole batch.

        ``triggered_at`` is when the engine fired (``Fire.fired_at_ms``; the commit's time when
        not stamped), ``tick_time`` the tick's exchange time (NULL when it sent none),
        ``triggered_price`` the tick's price. Only alerts still ``created`` change, so an alert
        deleted meanwhile (or recorded already) is skipped. Returns the ids this call marked
        triggered, ascending, and puts each one's owner in ``owners`` (id -> user id) when given
        (for the fire events published after the commit). Nothing is written if it raises;
        :class:`StoreRefused` when the database refuses a value of the batch (a time or price
        out of its range).
        """
        ids: list[int] = []
        prices: list[str] = []
        times_ms: list[int | None] = []
        tick_times_ms: list[int | None] = []
        add_id, add_price = ids.append, prices.append
        add_time, add_tick_time = times_ms.append, tick_times_ms.append
        for fire in fires:
            tick = fire.tick
            price = str(tick.price)
            ms = fire.fired_at_ms or None
            tick_ms = tick.exchange_time_ms or None
            for trigger in fire.triggers:
                add_id(trigger.id)
                add_price(price)
                add_time(ms)
                add_tick_time(tick_ms)
        if not ids:
            return []
        if not isinstance(channels, FireChannels):
            # dict.fromkeys: one outbox row per distinct channel, in the order given
            channels = FireChannels(account=tuple(dict.fromkeys(channels)))
        marked = await self._bridge.run(
            queries.record_fires, ids, prices, times_ms, tick_times_ms, channels
        )
        if owners is not None:
            owners.update(marked)
        return [alert_id for alert_id, _ in marked]

    async def load_live_triggers(
        self, refused: list[tuple[int | None, str]] | None = None
    ) -> list[Trigger]:
        """Every ``created`` alert as a :class:`Trigger`, for the book's bulk load at start.

        One statement (a ``COPY`` of the live rows in text form, parsed chunk by chunk while the
        server is still sending). Equal exchange and symbol strings are shared between
        triggers, so a million triggers hold a few distinct strings rather than two million.
        A row that cannot be read as a trigger never stops the load: it is left out and, when
        ``refused`` is given, appended to it as (alert id or None, reason) for the quarantine.
        """
        return await self._bridge.run(queries.live_triggers, refused)

    # --- the outbox -------------------------------------------------------------------------

    async def pending_outbox(self, limit: int = 1000) -> list[OutboxRow]:
        """Undelivered notifications that are due (``next_attempt_at <= now``), oldest first."""
        rows = await self._bridge.run(queries.pending_outbox, limit)
        return [OutboxRow(*row) for row in rows]

    async def mark_delivered(self, outbox_ids: Sequence[int]) -> int:
        """Record these notifications as delivered; returns how many were still undelivered."""
        if not outbox_ids:
            return 0
        return await self._bridge.run(queries.mark_delivered, list(outbox_ids))

    async def mark_failed(self, outbox_id: int, error: str, retry_at: datetime) -> None:
        """Record a failed delivery attempt and when to try again."""
        await self._bridge.run(queries.mark_failed, outbox_id, error[:2000], retry_at)

    async def ping(self) -> None:
        """Return when the database answers; raises :class:`StoreUnavailable` otherwise."""
        await self._bridge.run(queries.ping)


def _user(row: asyncpg.Record) -> User:
    return User(row[0], row[1], row[2], row[3], row[4], row[5])


def _joined(channels: Sequence[str] | None) -> str | None:
    """An alert's channels as ``insert_alerts`` takes them: one comma-joined text, or None."""
    return None if channels is None else ",".join(channels)


def _alert(row: asyncpg.Record) -> Alert:
    return Alert(
        row[0],
        row[1],
        row[2],
        row[3],
        row[4],
        _DIRECTIONS[row[5]],
        _STATUSES[row[6]],
        row[7],
        row[8],
        row[9],
        row[10],
        row[11],
        row[12],
        None if row[13] is None else tuple(row[13]),
    )


@asynccontextmanager
async def open_store(config: DatabaseConfig, *, pool_size: int = 10) -> AsyncIterator[Store]:
    """Open the store described by ``config`` for the duration of the block.

    Needs ``trio_asyncio.open_loop()`` around it. With ``config.url`` empty, starts (or adopts,
    after a crash) the embedded Postgres in ``config.data_dir`` and stops it on exit. Connects a
    pool of up to ``pool_size`` connections, retrying an unreachable server for
    ``config.start_timeout_s`` with a log line per attempt, then applies pending migrations.

    Raises :class:`StoreUnavailable` for a bad URL or a server that stays unreachable, and
    :class:`MigrationError` when the schema cannot be brought up to date.
    """
    async with AsyncExitStack() as stack:
        url = config.url
        if not url:
            server = await stack.enter_async_context(embedded.running(config.data_dir))
            url = server.uri
        bridge = await stack.enter_async_context(
            open_bridge(url, max_size=pool_size, start_timeout_s=config.start_timeout_s)
        )
        applied = await bridge.run(apply_migrations, load_migrations())
        if applied:
            log.info("applied migrations %s", ", ".join(f"{v:04d}" for v in applied))
        yield Store(bridge)
