"""The outbox as the sinks' delivery queue: claim due rows, settle their outcomes, show them.

Each row is one notification (``migrations/0008``): pending until delivered or dead. The
delivery loop of each sink (``engine/sinks/delivery.py``) works through it with three calls:

- :meth:`Outbox.claim` takes up to ``limit`` due rows of one channel with ``FOR UPDATE SKIP
  LOCKED`` and leases them in the same statement (``next_attempt_at`` moves ``lease_s`` ahead):
  a second claimer, in this process or another engine on the same database, skips them while
  they are in flight, and a process killed mid-delivery leaves them due again once the lease
  ends. One statement, so the row lock is held only for that statement's transaction;
- :meth:`Outbox.settle` records a batch of outcomes in one statement: delivered, retry at a
  time (``attempts`` + 1, ``last_error``), dead (refused, or out of attempts);
- :meth:`Outbox.release_leases` (at a start, one engine per database) makes the rows that a
  killed process had in flight due at once;
- :meth:`Outbox.next_due` says when the channel's next row is due, so an idle loop sleeps
  exactly until then (or until the fire recorder wakes it).

Only rows still pending change when settled, so settling twice (a retried call after a lost
answer) does nothing the second time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import asyncpg
import msgspec

from engine.model import Destination, Notification
from engine.store.bridge import Bridge

# The reason a notification through a destination its owner deleted (or a webhook disabled)
# is dead rather than delivered somewhere nobody wants it any more.
DESTINATION_GONE = "the destination was deleted"
DESTINATION_DISABLED = "the destination is disabled"

CLAIM = """
WITH due AS (
    SELECT id
      FROM outbox
     WHERE channel = $1 AND delivered_at IS NULL AND dead_at IS NULL
       AND next_attempt_at <= now()
     ORDER BY next_attempt_at, id
     LIMIT $2
       FOR UPDATE SKIP LOCKED
), leased AS (
    UPDATE outbox AS o
       SET next_attempt_at = now() + $3 * interval '1 second', claimed_at = now()
      FROM due
     WHERE o.id = due.id
 RETURNING o.id, o.alert_id, o.channel, o.payload, o.attempts, o.destination_id
)
SELECT l.id, l.alert_id, l.channel, l.payload, l.attempts,
       d.id, d.owner_id, d.kind, d.target, d.name, d.secret, d.deleted_at, d.disabled_at
  FROM leased AS l
  LEFT JOIN destinations AS d ON d.id = l.destination_id
 ORDER BY l.id
"""

# delivered: ids; retry: (id, error, when); dead: (id, error). Each row counts one attempt.
SETTLE = """
WITH delivered AS (
    UPDATE outbox
       SET delivered_at = now(), attempts = attempts + 1, last_error = NULL, claimed_at = NULL
     WHERE id = ANY ($1::bigint[]) AND delivered_at IS NULL AND dead_at IS NULL
 RETURNING id
), retried AS (
    UPDATE outbox AS o
       SET attempts = o.attempts + 1, last_error = r.error, next_attempt_at = r.due,
           claimed_at = NULL
      FROM unnest($2::bigint[], $3::text[], $4::timestamptz[]) AS r (id, error, due)
     WHERE o.id = r.id AND o.delivered_at IS NULL AND o.dead_at IS NULL
 RETURNING o.id
), died AS (
    UPDATE outbox AS o
       SET attempts = o.attempts + 1, last_error = r.error, dead_at = now(), claimed_at = NULL
      FROM unnest($5::bigint[], $6::text[]) AS r (id, error)
     WHERE o.id = r.id AND o.delivered_at IS NULL AND o.dead_at IS NULL
 RETURNING o.id
)
SELECT (SELECT count(*) FROM delivered), (SELECT count(*) FROM retried),
       (SELECT count(*) FROM died)
"""

# Every lease back: due now. Only for a start that knows no other engine shares the database.
RELEASE_LEASES = """
UPDATE outbox SET next_attempt_at = now(), claimed_at = NULL
 WHERE claimed_at IS NOT NULL AND delivered_at IS NULL AND dead_at IS NULL
"""

NEXT_DUE = """
SELECT min(next_attempt_at) FROM outbox
 WHERE channel = $1 AND delivered_at IS NULL AND dead_at IS NULL
"""

BACKLOG = """
SELECT channel, count(*), min(created_at) FROM outbox
 WHERE delivered_at IS NULL AND dead_at IS NULL
 GROUP BY channel
"""

NOTIFICATIONS_OF = """
SELECT alert_id, id, channel, destination_id,
       CASE WHEN delivered_at IS NOT NULL THEN 'delivered'
            WHEN dead_at IS NOT NULL THEN 'dead'
            ELSE 'pending' END,
       attempts, last_error, delivered_at
  FROM outbox
 WHERE alert_id = ANY ($1::bigint[])
 ORDER BY alert_id, id
"""


class NotificationState(msgspec.Struct, frozen=True):
    """One notification as its alert's owner sees it (``GET /api/alerts/{id}``)."""

    id: int
    channel: str
    destination_id: int | None
    state: str  # pending | delivered | dead
    attempts: int
    last_error: str | None
    delivered_at: datetime | None


class Claimed(msgspec.Struct, frozen=True):
    """A claimed row: the notification to deliver, or why it is dead without trying."""

    note: Notification
    dead_reason: str | None = None


@dataclass(slots=True)
class Outcomes:
    """A batch of delivery outcomes to settle in one statement."""

    delivered: list[int] = field(default_factory=list)
    retry: list[tuple[int, str, datetime]] = field(default_factory=list)
    dead: list[tuple[int, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.delivered) + len(self.retry) + len(self.dead)


class Outbox:
    """The outbox queries, on the store's connection pool."""

    def __init__(self, bridge: Bridge) -> None:
        self._bridge = bridge

    async def claim(self, channel: str, limit: int, lease_s: float) -> list[Claimed]:
        """Up to ``limit`` due rows of ``channel``, soonest first, leased for ``lease_s``."""
        rows = await self._bridge.run(_fetch, CLAIM, channel, limit, lease_s)
        return [_claimed(row) for row in rows]

    async def settle(self, outcomes: Outcomes) -> tuple[int, int, int]:
        """Record ``outcomes``; returns how many rows were (delivered, retried, dead)."""
        if not outcomes:
            return (0, 0, 0)
        retry_ids, retry_errors, retry_due = _columns(outcomes.retry, 3)
        dead_ids, dead_errors = _columns(outcomes.dead, 2)
        row = await self._bridge.run(
            _fetchrow,
            SETTLE,
            outcomes.delivered,
            retry_ids,
            [e[:2000] for e in retry_errors],
            retry_due,
            dead_ids,
            [e[:2000] for e in dead_errors],
        )
        return (row[0], row[1], row[2])

    async def release_leases(self) -> int:
        """Make every leased pending row due now; returns how many. Only at a start that knows
        no other engine delivers from this database: the leases' holder is gone (killed
        mid-delivery), and waiting for the leases to end would only delay its notifications."""
        status = await self._bridge.run(_execute, RELEASE_LEASES)
        return int(status.rsplit(" ", 1)[1])

    async def next_due(self, channel: str) -> datetime | None:
        """When the next pending row of ``channel`` is due (None: none pending)."""
        return await self._bridge.run(_fetchval, NEXT_DUE, channel)

    async def backlog(self) -> dict[str, tuple[int, datetime]]:
        """Per channel with pending rows: how many, and when the oldest was queued."""
        rows = await self._bridge.run(_fetch, BACKLOG)
        return {row[0]: (row[1], row[2]) for row in rows}

    async def notifications_of(
        self, alert_ids: Sequence[int]
    ) -> dict[int, list[NotificationState]]:
        """Every notification of these alerts, oldest first, by alert id."""
        out: dict[int, list[NotificationState]] = {}
        if not alert_ids:
            return out
        rows = await self._bridge.run(_fetch, NOTIFICATIONS_OF, list(alert_ids))
        for row in rows:
            out.setdefault(row[0], []).append(NotificationState(*row[1:]))
        return out

    async def disable_destination(self, destination_id: int, reason: str) -> None:
        """Stop queueing for a destination that is gone for good (a webhook's 410)."""
        await self._bridge.run(
            _execute,
            "UPDATE destinations SET disabled_at = now(), disabled_reason = $2 "
            "WHERE id = $1 AND disabled_at IS NULL",
            destination_id,
            reason[:2000],
        )


def _claimed(row: asyncpg.Record) -> Claimed:
    destination = None
    dead_reason = None
    if row[5] is not None:
        destination = Destination(row[5], row[6], row[7], row[8], row[9], row[10])
        if row[11] is not None:
            dead_reason = DESTINATION_GONE
        elif row[12] is not None:
            dead_reason = DESTINATION_DISABLED
    note = Notification(row[0], row[1], row[2], row[3], destination, row[4])
    return Claimed(note, dead_reason)


def _columns(rows: list[tuple], width: int) -> list[list]:
    return [list(col) for col in zip(*rows, strict=True)] if rows else [[] for _ in range(width)]


async def _fetch(con: asyncpg.Connection, sql: str, *args: object) -> list[asyncpg.Record]:
    return await con.fetch(sql, *args)


async def _fetchrow(con: asyncpg.Connection, sql: str, *args: object) -> asyncpg.Record:
    return await con.fetchrow(sql, *args)


async def _fetchval(con: asyncpg.Connection, sql: str, *args: object) -> object:
    return await con.fetchval(sql, *args)


async def _execute(con: asyncpg.Connection, sql: str, *args: object) -> str:
    return await con.execute(sql, *args)
