"""The store's SQL, as asyncio coroutine functions ``fn(con, ...)`` run by :meth:`Bridge.run`.

Nothing here knows about Trio; each function is one bridge crossing, however many statements it
runs. Rows come back as asyncpg ``Record``s; ``engine/store/store.py`` turns them into our rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

import asyncpg

from engine.model import FireChannels, Trigger
from engine.store.live import TriggerParser

USER_COLUMNS = "id, username, email, password_hash, is_staff, created_at"
ALERT_COLUMNS = (
    "id, owner_id, exchange, symbol, target_price, direction, status, name, created_at, "
    "triggered_at, triggered_price, deleted_at, tick_time, channels"
)
OUTBOX_COLUMNS = (
    "id, alert_id, channel, payload, attempts, next_attempt_at, delivered_at, last_error"
)

# --- users ----------------------------------------------------------------------------------


async def insert_user(
    con: asyncpg.Connection, username: str, email: str, password_hash: str, is_staff: bool
) -> asyncpg.Record:
    return await con.fetchrow(
        f"INSERT INTO users (username, email, password_hash, is_staff) VALUES ($1, $2, $3, $4) "
        f"RETURNING {USER_COLUMNS}",
        username,
        email,
        password_hash,
        is_staff,
    )


async def user_by_id(con: asyncpg.Connection, user_id: int) -> asyncpg.Record | None:
    return await con.fetchrow(f"SELECT {USER_COLUMNS} FROM users WHERE id = $1", user_id)


async def user_by_username(con: asyncpg.Connection, username: str) -> asyncpg.Record | None:
    return await con.fetchrow(
        f"SELECT {USER_COLUMNS} FROM users WHERE lower(username) = lower($1)", username
    )


async def users_page(
    con: asyncpg.Connection, limit: int, offset: int
) -> tuple[int, list[asyncpg.Record]]:
    count = await con.fetchval("SELECT count(*) FROM users")
    rows = await con.fetch(
        f"SELECT {USER_COLUMNS} FROM users ORDER BY id LIMIT $1 OFFSET $2", limit, offset
    )
    return count, rows


# --- alerts ---------------------------------------------------------------------------------


async def insert_alert(
    con: asyncpg.Connection,
    owner_id: int,
    exchange: str,
    symbol: str,
    target_price: Decimal,
    direction: str,
    name: str,
    channels: list[str] | None = None,
) -> asyncpg.Record:
    return await con.fetchrow(
        f"INSERT INTO alerts (owner_id, exchange, symbol, target_price, direction, name, "
        f"channels) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {ALERT_COLUMNS}",
        owner_id,
        exchange,
        symbol,
        target_price,
        direction,
        name,
        channels,
    )


# Many creates in one statement (one round trip, one commit), each decided against the owner's
# limits in the same transaction by ``admit_alerts`` (migration 0007: owners locked in ascending
# id, then a fresh snapshot). The first row carries the verdicts (NULL: every row admitted,
# else one per position: NULL or why not); the admitted rows come from the arrays in order, so
# ids (one nextval per row, as rows are produced) ascend in that order. A row whose owner is
# gone is refused by the verdict, never by the foreign key, so it cannot fail its neighbours.
# Each row's ``channels`` travels as one comma-joined text (NULL: the defaults), since an array
# of arrays must be rectangular; sink names hold no comma (migration 0008's kind pattern).
INSERT_ALERTS = f"""
WITH verdict AS MATERIALIZED (
    SELECT admit_alerts($1::bigint[], $2::text[], $3::text[], $7::bigint, $8::bigint) AS v
), written AS (
    INSERT INTO alerts (owner_id, exchange, symbol, target_price, direction, name, channels)
    SELECT r.owner_id, r.exchange, r.symbol, r.target_price, r.direction, r.name,
           string_to_array(r.channels, ',')
      FROM unnest($1::bigint[], $2::text[], $3::text[], $4::numeric[], $5::text[], $6::text[],
                  $9::text[])
           WITH ORDINALITY AS r (owner_id, exchange, symbol, target_price, direction, name,
                                 channels, n)
     CROSS JOIN verdict
     WHERE verdict.v[r.n] IS NULL
     ORDER BY r.n
    RETURNING {ALERT_COLUMNS}
)
SELECT verdict.v, written.* FROM verdict LEFT JOIN written ON true
"""


async def insert_alerts(
    con: asyncpg.Connection,
    owner_ids: list[int],
    exchanges: list[str],
    symbols: list[str],
    target_prices: list[Decimal],
    directions: list[str],
    names: list[str],
    max_alerts: int | None,
    max_symbols: int | None,
    channels: list[str | None] | None = None,
) -> tuple[list[str | None], list[asyncpg.Record]]:
    """Insert one alert per position of the arrays that the limits admit (None: no limit).
    ``channels``: per position, the alert's sink names joined by commas, or None (defaults).

    Returns (one verdict per position: None when written, else ``'owner'``, ``'alerts'`` or
    ``'symbols'``; the rows written, in position order). Each row is the alert's columns.
    """
    rows = await con.fetch(
        INSERT_ALERTS,
        owner_ids,
        exchanges,
        symbols,
        target_prices,
        directions,
        names,
        max_alerts,
        max_symbols,
        channels if channels is not None else [None] * len(owner_ids),
    )
    verdicts = rows[0][0] or [None] * len(owner_ids)
    written = sorted((row[1:] for row in rows if row[1] is not None), key=lambda row: row[0])
    return verdicts, written


async def alert_of(con: asyncpg.Connection, owner_id: int, alert_id: int) -> asyncpg.Record | None:
    return await con.fetchrow(
        f"SELECT {ALERT_COLUMNS} FROM alerts WHERE id = $1 AND owner_id = $2", alert_id, owner_id
    )


# A filtered page (``alerts_page``), in a read-only REPEATABLE READ transaction so that its count
# and its rows are one snapshot. First the owner's tallies that match the filter (migration
# 0007: a few rows per (status, exchange, symbol) key): their sum is the count, and their keys
# are the streams the page merges. Each stream is one exact key of an index that lists it
# newest first (``alerts_owner_symbol`` when symbols are asked for, else
# ``alerts_owner_exchange``), limited to the page's end; a Merge Append of the streams skips
# ``offset`` entries read from the indexes alone, and only the page's rows are then read from
# the table. So a page reads about ``offset + limit`` index entries and ``limit`` rows, whatever
# the owner holds and however the filter's matches are spread. Measured by
# ``python -m benchmarks.listing``.
MERGE_MAX = 64
"""Streams a page merges at most; past it (an owner with alerts on more (exchange, status) or
(symbol, exchange, status) keys than that matching one filter) the page walks the owner's
listing index instead, still right but as slow as the filter is selective."""

TALLIES = """
SELECT status, exchange, symbol, n FROM alert_tallies
 WHERE owner_id = $1 AND ($2::text IS NULL OR status = $2) AND ($3::text IS NULL OR exchange = $3)
   AND ($4::text[] IS NULL OR symbol = ANY ($4::text[]))
"""


def _merged_page_sql(streams: int, by_symbol: bool) -> str:
    """The statement for a page merging ``streams`` keys: $1 owner, $2 limit, $3 offset, $4
    statuses, $5 exchanges and, ``by_symbol``, $6 symbols (arrays, a position per stream)."""
    key = "status = ($4::text[])[{i}] AND exchange = ($5::text[])[{i}]"
    if by_symbol:
        key += " AND symbol = ($6::text[])[{i}]"
    branches = "\n UNION ALL\n".join(
        f"(SELECT created_at, id FROM alerts WHERE owner_id = $1 AND {key.format(i=i)}"
        f" ORDER BY created_at DESC, id DESC LIMIT $2::bigint + $3::bigint)"
        for i in range(1, streams + 1)
    )
    return (
        f"SELECT {_qualified('a')} FROM (SELECT s.id, s.created_at FROM ({branches}) AS s"
        f" ORDER BY s.created_at DESC, s.id DESC LIMIT $2 OFFSET $3) AS p"
        f" JOIN alerts AS a ON a.id = p.id ORDER BY p.created_at DESC, p.id DESC"
    )


def _walked_page_sql() -> str:
    """The fallback past :data:`MERGE_MAX` streams: the owner's listing index, filtered."""
    return (
        f"SELECT {ALERT_COLUMNS} FROM alerts WHERE owner_id = $1"
        f" AND ($2::text IS NULL OR status = $2) AND ($3::text IS NULL OR exchange = $3)"
        f" AND ($4::text[] IS NULL OR symbol = ANY ($4::text[]))"
        f" ORDER BY created_at DESC, id DESC LIMIT $5 OFFSET $6"
    )


def _qualified(alias: str) -> str:
    return ", ".join(f"{alias}.{column.strip()}" for column in ALERT_COLUMNS.split(","))


async def alerts_page(
    con: asyncpg.Connection,
    owner_id: int,
    status: str | None,
    exchange: str | None,
    symbols: Sequence[str] | None,
    limit: int,
    offset: int,
) -> tuple[int, list[asyncpg.Record]]:
    """(number of the owner's alerts matching every given filter, the page of them newest
    first). ``symbols``: any of these spellings. See :data:`MERGE_MAX` above."""
    wanted = None if symbols is None else list(symbols)
    async with con.transaction(isolation="repeatable_read", readonly=True):
        keys = await con.fetch(TALLIES, owner_id, status, exchange, wanted)
        count = sum(key[3] for key in keys)
        if offset >= count or limit <= 0:
            return count, []
        by_symbol = wanted is not None
        streams = sorted({(k[0], k[1], k[2] if by_symbol else "") for k in keys})
        if len(streams) > MERGE_MAX:
            walked = _walked_page_sql()
            rows = await con.fetch(walked, owner_id, status, exchange, wanted, limit, offset)
            return count, rows
        keyed = [[s[0] for s in streams], [s[1] for s in streams]]
        if by_symbol:
            keyed.append([s[2] for s in streams])
        sql = _merged_page_sql(len(streams), by_symbol)
        rows = await con.fetch(sql, owner_id, limit, offset, *keyed)
    return count, rows


# Many owners' unfiltered pages in one statement (the web's list batcher): one page per
# (owner, limit, offset) triple, tagged with its position n, each with its total: the owner's
# ``alert_count`` (migration 0004), read in the same snapshot as the page, so no counting. A
# page past the end is one row of NULLs carrying the total.
ALERT_PAGES = f"""
SELECT a.*, c.total, q.n
  FROM unnest($1::bigint[], $2::bigint[], $3::bigint[]) WITH ORDINALITY AS q (owner, lim, off, n)
 CROSS JOIN LATERAL (SELECT alert_count AS total FROM users WHERE id = q.owner) AS c
  LEFT JOIN LATERAL (
       SELECT {ALERT_COLUMNS}
         FROM alerts
        WHERE owner_id = q.owner
        ORDER BY created_at DESC, id DESC
        LIMIT q.lim OFFSET q.off) AS a ON true
 ORDER BY q.n, a.created_at DESC, a.id DESC
"""


async def alert_pages(
    con: asyncpg.Connection, owner_ids: list[int], limits: list[int], offsets: list[int]
) -> list[tuple[int, list[asyncpg.Record]]]:
    """``alerts_page`` without filters for each (owner, limit, offset), in one round trip."""
    pages: list[tuple[int, list[asyncpg.Record]]] = [(0, []) for _ in owner_ids]
    for row in await con.fetch(ALERT_PAGES, owner_ids, limits, offsets):
        i = row[-1] - 1
        if row[0] is None:
            pages[i] = (row[-2], [])
        else:
            pages[i] = (row[-2], pages[i][1])
            pages[i][1].append(row)
    return pages


async def soft_delete(
    con: asyncpg.Connection, owner_id: int, alert_id: int
) -> tuple[bool, asyncpg.Record | None]:
    """Mark a live alert deleted; (True, row) if this call did it, else (False, current row).

    Two statements, not one with a CTE: when a concurrent fire wins, the second statement
    takes a fresh snapshot and so reports the row as triggered, not as it was before."""
    row = await con.fetchrow(
        f"UPDATE alerts SET status = 'deleted', deleted_at = now() "
        f"WHERE id = $1 AND owner_id = $2 AND status = 'created' RETURNING {ALERT_COLUMNS}",
        alert_id,
        owner_id,
    )
    if row is not None:
        return True, row
    return False, await alert_of(con, owner_id, alert_id)


# --- fires and the outbox -------------------------------------------------------------------

# One statement, hence one transaction and one round trip for a whole batch of fires. The
# conditional update (status = 'created') lets exactly one of a fire and a racing delete win;
# only the rows this statement changed get outbox rows, which is what keeps a notification from
# being queued twice (a retried batch changes nothing the second time). Each fired alert gets
# one row per channel it notifies: the enabled account channels (console, the account's email:
# ``FireChannels.account``, in that order; those in ``confirmed_account`` only once the account's
# address is confirmed) and one per live, confirmed destination of its owner whose kind is an
# enabled sink (``FireChannels.destinations``); an alert's own ``channels`` narrows both.
#
# Measured choices (``triggerbook bench store``, EXPLAIN ANALYZE of 4096-fire batches):
# * prices travel as text and times (the fire's wall clock, the tick's exchange time) as epoch
#   milliseconds: cheaper to encode on our side than binary NUMERIC and datetimes, exact either
#   way (``float8 * interval`` is exact for whole milliseconds up to 2^53 microseconds);
# * the payload is concatenated text cast to json, with every free-text value quoted by
#   ``to_json``: about half the server time of ``json_build_object`` (which looks up the type
#   of each of its 22 arguments on every row);
# * ``a.id = ANY($1)`` as well as the join on f.id: without it, a custom plan (asyncpg's first
#   five executions on a connection) sees unnest() as 4096 rows and hash-joins the whole alerts
#   table (35 ms a batch at 100k alerts, growing with the table); with it, both the custom and
#   the generic plan read exactly the batch's rows through the primary key (one index search
#   over the sorted array, 140 buffer hits rather than 12,288 for a lookup per row);
# * the tick's exchange time goes to its column (tick_time) but not into the payload:
#   ``to_json`` of one more timestamptz cost about 1.7 us a fire (14% of a batched fire's CPU,
#   this process's and the server's), for a detail the alert itself shows.
RECORD_FIRES = """
WITH fired AS (
    UPDATE alerts AS a
       SET status = 'triggered',
           triggered_at = coalesce('epoch'::timestamptz + f.ms * interval '1 millisecond', now()),
           triggered_price = f.price,
           tick_time = 'epoch'::timestamptz + f.tick_ms * interval '1 millisecond'
      FROM unnest($1::bigint[], $2::text[]::numeric[], $3::bigint[], $4::bigint[])
           AS f (id, price, ms, tick_ms)
     WHERE a.id = ANY($1::bigint[]) AND a.id = f.id AND a.status = 'created'
 RETURNING a.id, a.owner_id, a.exchange, a.symbol, a.direction, a.target_price, a.name,
           a.created_at, a.triggered_at, a.triggered_price, a.channels
), queued AS (
    INSERT INTO outbox (alert_id, channel, destination_id, payload)
    SELECT fired.id, t.channel, t.destination_id, (
               '{"alert_id":' || fired.id ||
               ',"name":' || to_json(fired.name) ||
               ',"username":' || to_json(u.username) ||
               ',"email":' || to_json(u.email) ||
               ',"exchange":' || to_json(fired.exchange) ||
               ',"symbol":' || to_json(fired.symbol) ||
               ',"direction":' || to_json(fired.direction) ||
               ',"target_price":"' || fired.target_price ||
               '","triggered_price":"' || fired.triggered_price ||
               '","created_at":' || to_json(fired.created_at) ||
               ',"triggered_at":' || to_json(fired.triggered_at) || '}')::json
      FROM fired
      JOIN users AS u ON u.id = fired.owner_id
     CROSS JOIN LATERAL (
            SELECT c.channel, NULL::bigint, c.n
              FROM unnest($5::text[]) WITH ORDINALITY AS c (channel, n)
             WHERE (fired.channels IS NULL OR c.channel = ANY (fired.channels))
               AND (u.email_confirmed_at IS NOT NULL OR c.channel <> ALL ($6::text[]))
            UNION ALL
            SELECT d.kind, d.id, 0
              FROM destinations AS d
             WHERE d.owner_id = fired.owner_id AND d.deleted_at IS NULL
               AND d.disabled_at IS NULL AND d.confirmed_at IS NOT NULL
               AND d.kind = ANY ($7::text[])
               AND (fired.channels IS NULL OR d.kind = ANY (fired.channels))
           ) AS t (channel, destination_id, n)
     ORDER BY fired.id, t.destination_id NULLS FIRST, t.n
)
SELECT id, owner_id FROM fired ORDER BY id
"""


async def record_fires(
    con: asyncpg.Connection,
    ids: list[int],
    prices: list[str],
    times_ms: list[int | None],
    tick_times_ms: list[int | None],
    channels: FireChannels,
) -> list[tuple[int, int]]:
    """``prices`` are decimal strings, ``times_ms`` the fires' epoch milliseconds (None: the
    commit's time), ``tick_times_ms`` the ticks' (None: none sent); ``channels`` which sinks
    queue what; see :data:`RECORD_FIRES`."""
    rows = await con.fetch(
        RECORD_FIRES,
        ids,
        prices,
        times_ms,
        tick_times_ms,
        list(channels.account),
        list(channels.confirmed_account),
        list(channels.destinations),
    )
    return [(row[0], row[1]) for row in rows]


LIVE_TRIGGERS = (
    "SELECT id, exchange, symbol, direction, target_price FROM alerts WHERE status = 'created'"
)


async def live_triggers(
    con: asyncpg.Connection, refused: list[tuple[int | None, str]] | None = None
) -> list[Trigger]:
    """Every ``created`` alert as a :class:`Trigger`: one ``COPY ... TO STDOUT`` in text form,
    each chunk parsed as it arrives (see ``engine/store/live.py``). A row that is not a trigger
    is skipped into ``refused`` as (alert id or None, reason)."""
    parser = TriggerParser()

    async def sink(data: bytes) -> None:
        parser.feed(data)

    await con.copy_from_query(LIVE_TRIGGERS, output=sink)
    triggers = parser.finish()
    if refused is not None:
        refused.extend(parser.refused)
    return triggers


async def pending_outbox(con: asyncpg.Connection, limit: int) -> list[asyncpg.Record]:
    return await con.fetch(
        f"SELECT {OUTBOX_COLUMNS} FROM outbox "
        f"WHERE delivered_at IS NULL AND dead_at IS NULL AND next_attempt_at <= now() "
        f"ORDER BY id LIMIT $1",
        limit,
    )


async def mark_delivered(con: asyncpg.Connection, outbox_ids: list[int]) -> int:
    status = await con.execute(
        "UPDATE outbox SET delivered_at = now(), attempts = attempts + 1, last_error = NULL "
        "WHERE id = ANY($1::bigint[]) AND delivered_at IS NULL",
        outbox_ids,
    )
    return int(status.rsplit(" ", 1)[1])


async def mark_failed(
    con: asyncpg.Connection, outbox_id: int, error: str, retry_at: datetime
) -> None:
    await con.execute(
        "UPDATE outbox SET attempts = attempts + 1, last_error = $2, next_attempt_at = $3 "
        "WHERE id = $1 AND delivered_at IS NULL",
        outbox_id,
        error,
        retry_at,
    )


async def ping(con: asyncpg.Connection) -> None:
    await con.fetchval("SELECT 1")


async def truncate_all(con: asyncpg.Connection) -> None:
    """Empty every table and restart the ids (tests and benchmarks only)."""
    await con.execute("TRUNCATE outbox, alerts, users RESTART IDENTITY CASCADE")
