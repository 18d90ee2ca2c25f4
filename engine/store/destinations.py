"""Destinations and confirmation codes: where users want notifications (migration 0008).

A destination is one place one sink delivers for one user, beside the account's own address
(a webhook URL with its signing secret, an extra email address, a chat-service URL). The web
(``web/destinations.py``) creates, lists and deletes them through :class:`Destinations`,
attached to the store as ``store.destinations``; the fire statement (``queries.RECORD_FIRES``)
reads the live, confirmed ones of each owner.

Every read and write names the owner: another user's destination is None, exactly as a missing
one (the API's 404). Deleting keeps the row (``deleted_at``), so the notifications that went
through it keep saying where they went; the unique index over the live ones is what makes
adding one twice a :class:`Conflict`.

A confirmation code proves that the owner reads an address before anything is mailed there:
only its SHA-256 is kept, it expires (``limits.CODE_TTL_S``), a few wrong tries end it
(``limits.CODE_TRIES``) and one address gets at most ``limits.CODES_PER_HOUR`` of them. A code
is for a destination, or (``destination_id`` None) for the account's own address
(``users.email_confirmed_at``, asked for by ``[sinks.email] confirm_account``).
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import secrets
from datetime import datetime

import asyncpg
import msgspec

from engine import limits
from engine.errors import Conflict, StoreRefused
from engine.model import Destination
from engine.store.bridge import UNIQUE_VIOLATION, Bridge, refused_sqlstate

COLUMNS = (
    "id, owner_id, kind, target, name, secret, created_at, confirmed_at, disabled_at, "
    "disabled_reason"
)
CODE_DIGITS = 6


class DestinationRow(msgspec.Struct, frozen=True):
    """One destination as stored; :meth:`destination` is what a sink is handed."""

    id: int
    owner_id: int
    kind: str
    target: str
    name: str | None
    secret: str | None
    created_at: datetime
    confirmed_at: datetime | None
    disabled_at: datetime | None
    disabled_reason: str | None

    def destination(self) -> Destination:
        return Destination(self.id, self.owner_id, self.kind, self.target, self.name, self.secret)


class Refused(enum.Enum):
    """Why :meth:`Destinations.create` wrote nothing (besides a :class:`Conflict`)."""

    NO_OWNER = "owner"
    """The owner does not exist (an account deleted while its token still verifies)."""
    LIMIT = "limit"
    """The owner has ``limits.DESTINATIONS_MAX`` live destinations already."""


class Verdict(enum.Enum):
    """What :meth:`Destinations.confirm` made of a code."""

    CONFIRMED = "confirmed"
    WRONG = "wrong"  # one try spent; others may remain
    SPENT = "spent"  # too many wrong tries: ask for a new code
    EXPIRED = "expired"  # too old: ask for a new code
    NONE = "none"  # no code was sent (or it was used): ask for one


class Confirmation(msgspec.Struct, frozen=True):
    """A verdict, with the wrong tries left when it is ``WRONG``."""

    verdict: Verdict
    tries_left: int = 0


class Destinations:
    """The destination and confirmation queries, on the store's connection pool."""

    def __init__(self, bridge: Bridge) -> None:
        self._bridge = bridge

    async def create(
        self,
        owner_id: int,
        kind: str,
        target: str,
        name: str | None,
        secret: str | None,
        *,
        confirmed: bool,
        max_live: int = limits.DESTINATIONS_MAX,
    ) -> DestinationRow | Refused:
        """Add a live destination (confirmed now when ``confirmed``, else once its owner sends
        the code), or say why not: the owner is gone, or at ``max_live`` live ones. The owner
        is locked for the count, so concurrent creates never pass the limit. Raises
        :class:`Conflict` when the owner has a live one of this kind and target already."""
        try:
            row = await self._bridge.run(
                _create, owner_id, kind, target, name, secret, confirmed, max_live
            )
        except StoreRefused as exc:
            if refused_sqlstate(exc) == UNIQUE_VIOLATION:
                raise Conflict(f"you have this {kind} destination already") from None
            raise
        return row if isinstance(row, Refused) else DestinationRow(*row)

    async def list(self, owner_id: int) -> list[DestinationRow]:
        """The owner's live (not deleted) destinations, oldest first."""
        rows = await self._bridge.run(
            _fetch,
            f"SELECT {COLUMNS} FROM destinations WHERE owner_id = $1 AND deleted_at IS NULL "
            "ORDER BY id",
            owner_id,
        )
        return [DestinationRow(*row) for row in rows]

    async def get(self, owner_id: int, destination_id: int) -> DestinationRow | None:
        """The owner's live destination, or None (missing, deleted, or someone else's)."""
        row = await self._bridge.run(
            _fetchrow,
            f"SELECT {COLUMNS} FROM destinations "
            "WHERE id = $1 AND owner_id = $2 AND deleted_at IS NULL",
            destination_id,
            owner_id,
        )
        return None if row is None else DestinationRow(*row)

    async def delete(self, owner_id: int, destination_id: int) -> bool:
        """Soft delete; False when there was no such live destination of the owner. Its
        pending notifications go dead when claimed (``outbox.DESTINATION_GONE``)."""
        return bool(await self._bridge.run(_delete, owner_id, destination_id))

    async def account_confirmed(self, owner_id: int) -> bool:
        """Whether the account's own address is confirmed (False for no such account)."""
        return bool(
            await self._bridge.run(
                _fetchval,
                "SELECT email_confirmed_at IS NOT NULL FROM users WHERE id = $1",
                owner_id,
            )
        )

    async def new_code(
        self,
        owner_id: int,
        destination_id: int | None,
        address: str,
        *,
        ttl_s: float = limits.CODE_TTL_S,
        per_hour: int = limits.CODES_PER_HOUR,
    ) -> str | None:
        """A fresh code for ``address`` (of the destination, or of the account when
        ``destination_id`` is None), ending any earlier one; None when ``per_hour`` codes were
        made for it in the last hour. Only the code's SHA-256 is stored."""
        code = f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"
        made = await self._bridge.run(
            _new_code, owner_id, destination_id, address, _digest(code), ttl_s, per_hour
        )
        return code if made else None

    async def confirm(
        self,
        owner_id: int,
        destination_id: int | None,
        code: str,
        *,
        tries: int = limits.CODE_TRIES,
    ) -> Confirmation:
        """Check ``code`` against the latest code of the destination (or of the account); when
        it matches, the destination (or the account's address) is confirmed and the code used.
        A wrong code spends one of ``tries``; the comparison is constant-time."""
        verdict, left = await self._bridge.run(
            _confirm, owner_id, destination_id, _digest(code), tries
        )
        return Confirmation(Verdict(verdict), left)


def _digest(code: str) -> bytes:
    return hashlib.sha256(code.strip().encode("utf-8")).digest()


async def _create(
    con: asyncpg.Connection,
    owner_id: int,
    kind: str,
    target: str,
    name: str | None,
    secret: str | None,
    confirmed: bool,
    max_live: int,
) -> asyncpg.Record | Refused:
    async with con.transaction():
        if await con.fetchval("SELECT id FROM users WHERE id = $1 FOR UPDATE", owner_id) is None:
            return Refused.NO_OWNER
        live = await con.fetchval(
            "SELECT count(*) FROM destinations WHERE owner_id = $1 AND deleted_at IS NULL",
            owner_id,
        )
        if live >= max_live:
            return Refused.LIMIT
        return await con.fetchrow(
            "INSERT INTO destinations (owner_id, kind, target, name, secret, confirmed_at) "
            "VALUES ($1, $2, $3, $4, $5, CASE WHEN $6 THEN now() END) "
            f"RETURNING {COLUMNS}",
            owner_id,
            kind,
            target,
            name,
            secret,
            confirmed,
        )


async def _delete(con: asyncpg.Connection, owner_id: int, destination_id: int) -> bool:
    async with con.transaction():
        deleted = await con.fetchval(
            "UPDATE destinations SET deleted_at = now() "
            "WHERE id = $1 AND owner_id = $2 AND deleted_at IS NULL RETURNING id",
            destination_id,
            owner_id,
        )
        if deleted is not None:
            await con.execute("DELETE FROM confirmations WHERE destination_id = $1", deleted)
        return deleted is not None


async def _new_code(
    con: asyncpg.Connection,
    owner_id: int,
    destination_id: int | None,
    address: str,
    digest: bytes,
    ttl_s: float,
    per_hour: int,
) -> bool:
    async with con.transaction():
        # the owner's row serialises code requests, so the hourly bound holds under a race
        await con.execute("SELECT id FROM users WHERE id = $1 FOR UPDATE", owner_id)
        recent = await con.fetchval(
            "SELECT count(*) FROM confirmations WHERE owner_id = $1 "
            "AND destination_id IS NOT DISTINCT FROM $2 "
            "AND created_at > now() - interval '1 hour'",
            owner_id,
            destination_id,
        )
        if recent >= per_hour:
            return False
        # earlier codes end now; their rows stay an hour for the bound above
        await con.execute(
            "UPDATE confirmations SET expires_at = least(expires_at, now()) "
            "WHERE owner_id = $1 AND destination_id IS NOT DISTINCT FROM $2",
            owner_id,
            destination_id,
        )
        await con.execute(
            "DELETE FROM confirmations WHERE owner_id = $1 "
            "AND destination_id IS NOT DISTINCT FROM $2 "
            "AND created_at <= now() - interval '1 hour'",
            owner_id,
            destination_id,
        )
        await con.execute(
            "INSERT INTO confirmations (owner_id, destination_id, address, code_sha256, "
            "expires_at) VALUES ($1, $2, $3, $4, now() + $5 * interval '1 second')",
            owner_id,
            destination_id,
            address,
            digest,
            ttl_s,
        )
        return True


async def _confirm(
    con: asyncpg.Connection,
    owner_id: int,
    destination_id: int | None,
    digest: bytes,
    tries: int,
) -> tuple[str, int]:
    async with con.transaction():
        row = await con.fetchrow(
            "SELECT id, code_sha256, attempts, expires_at > now(), address FROM confirmations "
            "WHERE owner_id = $1 AND destination_id IS NOT DISTINCT FROM $2 "
            "ORDER BY id DESC LIMIT 1 FOR UPDATE",
            owner_id,
            destination_id,
        )
        if row is None:
            return Verdict.NONE.value, 0
        if row[2] >= tries:
            return Verdict.SPENT.value, 0
        if not row[3]:
            return Verdict.EXPIRED.value, 0
        if not hmac.compare_digest(bytes(row[1]), digest):
            await con.execute(
                "UPDATE confirmations SET attempts = attempts + 1 WHERE id = $1", row[0]
            )
            left = tries - row[2] - 1
            return (Verdict.WRONG.value if left else Verdict.SPENT.value), left
        if destination_id is None:
            # the address the code went to: a code cannot confirm an address changed since
            await con.execute(
                "UPDATE users SET email_confirmed_at = now() WHERE id = $1 AND email = $2",
                owner_id,
                row[4],
            )
        else:
            await con.execute(
                "UPDATE destinations SET confirmed_at = now() "
                "WHERE id = $1 AND owner_id = $2 AND target = $3 AND confirmed_at IS NULL",
                destination_id,
                owner_id,
                row[4],
            )
        # confirmed: this code and every earlier one are done with
        await con.execute(
            "DELETE FROM confirmations WHERE owner_id = $1 "
            "AND destination_id IS NOT DISTINCT FROM $2",
            owner_id,
            destination_id,
        )
        return Verdict.CONFIRMED.value, 0


async def _fetch(con: asyncpg.Connection, sql: str, *args: object) -> list[asyncpg.Record]:
    return await con.fetch(sql, *args)


async def _fetchrow(con: asyncpg.Connection, sql: str, *args: object) -> asyncpg.Record | None:
    return await con.fetchrow(sql, *args)


async def _fetchval(con: asyncpg.Connection, sql: str, *args: object) -> object:
    return await con.fetchval(sql, *args)
