"""asyncpg on Trio: one connection pool, driven through the trio-asyncio loop.

Why our own wrapper rather than ``triopg``: triopg is unmaintained since 2021 and reaches into
asyncpg's private ``_con``. This module is small on purpose. A store operation is written as a
plain asyncio coroutine function ``fn(con, *args)`` (see ``engine/store/queries.py``);
:meth:`Bridge.run` runs it as one asyncio task with one pooled connection, so each store call
crosses the bridge once, whatever number of statements it runs.

Fairness and per-call cost: calls wait for a connection on the Trio side, in a FIFO
:class:`trio.CapacityLimiter` sized to the pool, so asyncpg's own pool queue (an asyncio queue
that a newcomer can barge: under 100 callers for 10 connections some waited seconds) never
queues anyone. A connection goes back to the pool without asyncpg's reset query (``RESET ALL``,
``UNLISTEN *``, ...: one more round trip per call): no store function changes session state
(the migration lock is transaction-scoped), and asyncpg still rolls back a transaction left open.

Cancellation: cancelling the Trio caller cancels that asyncio task; asyncpg then cancels the
running statement on the server, and the pool resets the connection on release (or closes it if
the reset fails or takes over ``RELEASE_TIMEOUT_S``: a frozen server never answers the cancel).
The Trio side returns only once that is done, so a cancelled call never leaves a connection
half-used, and returns within ``RELEASE_TIMEOUT_S`` whatever the server does.

Errors: a lost connection, a server that is shutting down or unreachable becomes
:class:`StoreUnavailable` (retryable). Values the database refuses become
:class:`StoreRefused` (never retried: the same values fail again): a data error (SQLSTATE class
22: a numeric or datetime overflow, text that is not a number, a NUL byte), an integrity
violation (class 23: a CHECK, a foreign key, NOT NULL, a unique value), a value asyncpg
itself cannot encode (a lone surrogate) among them. The driver's error is kept as
``__cause__`` so a caller can tell one refusal from another (:func:`refused_sqlstate`: a
unique violation on register is a ``Conflict``). Everything else (a bug in our SQL)
propagates as asyncpg raised it.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, Concatenate, ParamSpec, TypeVar

import asyncpg
import asyncpg.exceptions as pgerr
import msgspec
import trio
import trio_asyncio

from engine.backoff import Backoff
from engine.errors import StoreRefused, StoreUnavailable

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

RELEASE_TIMEOUT_S = 1.0  # how long a used connection may take to be made reusable

# The server went away, is shutting down or cannot be reached: try again later.
TRANSIENT: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    pgerr.PostgresConnectionError,
    pgerr.AdminShutdownError,
    pgerr.CrashShutdownError,
    pgerr.CannotConnectNowError,
    pgerr.ConnectionDoesNotExistError,
)
# The database refuses the values: class 22 (data exception) and class 23 (integrity constraint
# violation). A value asyncpg cannot encode (a lone surrogate) is a class-22 DataError too,
# raised by the driver before the server sees it (SQLSTATE 22000).
REFUSED: tuple[type[BaseException], ...] = (
    pgerr.DataError,
    pgerr.IntegrityConstraintViolationError,
)
UNIQUE_VIOLATION = "23505"

# The URL itself is wrong (syntax, database, role, password): retrying will not help.
MISCONFIGURED: tuple[type[BaseException], ...] = (
    pgerr.ClientConfigurationError,
    pgerr.InvalidCatalogNameError,
    pgerr.InvalidAuthorizationSpecificationError,
    ValueError,
)

BACKOFF_FIRST_S = 0.1
BACKOFF_CAP_S = 5.0
CONNECT_TIMEOUT_S = 5.0
CLOSE_GRACE_S = 5.0


def describe(exc: BaseException) -> str:
    """A one-line account of a driver error for logs and our exception messages."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def refused_sqlstate(exc: StoreRefused) -> str:
    """The SQLSTATE of the refusal behind ``exc`` (``"23505"`` for a unique violation;
    ``"22000"`` for a value the driver could not encode), or ``""`` when it has none."""
    return getattr(exc.__cause__, "sqlstate", None) or ""


def redact(url: str) -> str:
    """``url`` without its password, for log lines and error messages."""
    scheme, sep, rest = url.partition("://")
    creds, at, host = rest.rpartition("@")
    if not sep or not at or ":" not in creds:
        return url
    return f"{scheme}://{creds.split(':', 1)[0]}:***@{host}"


async def _init_connection(con: asyncpg.Connection) -> None:
    """Per connection: JSON columns as Python objects (msgspec for speed)."""
    for kind in ("json", "jsonb"):
        await con.set_type_codec(
            kind,
            encoder=lambda value: msgspec.json.encode(value).decode(),
            decoder=msgspec.json.decode,
            schema="pg_catalog",
        )


async def _keep_session(con: asyncpg.Connection) -> None:
    """The pool's reset: nothing to undo (see the module docstring), so no round trip."""


class Bridge:
    """A pool of asyncpg connections usable from Trio. Built by :func:`open_bridge`."""

    def __init__(
        self, pool: asyncpg.Pool, loop: trio_asyncio.TrioEventLoop, max_size: int = 10
    ) -> None:
        self._pool = pool
        self._loop = loop
        self._slots = trio.CapacityLimiter(max_size)

    async def run(
        self,
        fn: Callable[Concatenate[asyncpg.Connection, P], Awaitable[T]],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """Run the asyncio coroutine function ``fn(con, *args)`` with one pooled connection.

        Raises :class:`StoreUnavailable` when the server is unreachable or the connection is
        lost mid-call, :class:`StoreRefused` (the driver's error as its ``__cause__``) when
        the database refuses a value; other driver errors propagate unchanged. Cancellable (see
        the module docstring).
        """
        try:
            async with self._slots:
                return await self._loop.run_aio_coroutine(self._with_connection(fn, args, kwargs))
        except TRANSIENT as exc:
            raise StoreUnavailable(f"the database is unavailable ({describe(exc)})") from None
        except REFUSED as exc:
            raise StoreRefused(f"the database refused the values ({describe(exc)})") from exc

    async def _with_connection(
        self, fn: Callable[..., Awaitable[T]], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> T:
        con = await self._pool.acquire()
        try:
            return await fn(con, *args, **kwargs)
        finally:
            # Bounded: a cancelled statement is cancelled on the server by a request to the
            # postmaster, and a server that has stopped answering (frozen, partitioned) never
            # acknowledges it; past the bound the connection is dropped instead of reused.
            await self._pool.release(con, timeout=RELEASE_TIMEOUT_S)

    @property
    def size(self) -> int:
        """Connections currently open (idle or in use)."""
        return self._pool.get_size()


async def _create_pool(url: str, min_size: int, max_size: int) -> asyncpg.Pool:
    return await asyncpg.create_pool(
        url,
        min_size=min_size,
        max_size=max_size,
        timeout=CONNECT_TIMEOUT_S,
        init=_init_connection,
        reset=_keep_session,
        server_settings={"application_name": "triggerbook", "timezone": "UTC"},
    )


@asynccontextmanager
async def open_bridge(
    url: str, *, min_size: int = 1, max_size: int = 10, start_timeout_s: float = 30.0
) -> AsyncIterator[Bridge]:
    """Connect a pool to ``url`` and yield a :class:`Bridge`; close the pool on exit.

    Needs ``trio_asyncio.open_loop()`` around it. An unreachable server is retried with capped
    exponential backoff and full jitter (``engine.backoff``), one log line per attempt, for at
    most ``start_timeout_s``; then (or at once for a malformed URL, an unknown database, role or
    bad password) :class:`StoreUnavailable` is raised naming the URL without its password.
    """
    loop = trio_asyncio.current_loop.get()
    if loop is None:
        raise RuntimeError("open_bridge needs trio_asyncio.open_loop() around it")
    pool = await _connect_with_retry(loop, url, min_size, max_size, start_timeout_s)
    try:
        yield Bridge(pool, loop, max_size)
    finally:
        with trio.move_on_after(CLOSE_GRACE_S) as scope:
            scope.shield = True
            await loop.run_aio_coroutine(pool.close())
        if scope.cancelled_caught:
            pool.terminate()


async def _connect_with_retry(
    loop: trio_asyncio.TrioEventLoop, url: str, min_size: int, max_size: int, timeout_s: float
) -> asyncpg.Pool:
    deadline = trio.current_time() + timeout_s
    backoff = Backoff(BACKOFF_FIRST_S, BACKOFF_CAP_S)
    while True:
        try:
            return await loop.run_aio_coroutine(_create_pool(url, min_size, max_size))
        except MISCONFIGURED as exc:
            raise StoreUnavailable(f"cannot use database {redact(url)}: {describe(exc)}") from None
        except TRANSIENT as exc:
            remaining = deadline - trio.current_time()
            if remaining <= 0:
                raise StoreUnavailable(
                    f"database {redact(url)} unreachable after {backoff.attempt + 1} attempts in "
                    f"{timeout_s:g} s: {describe(exc)}"
                ) from None
            pause = min(backoff.next_delay(), remaining)
            log.warning(
                "database %s unreachable (attempt %d, %s); retrying in %.2f s",
                redact(url),
                backoff.attempt,
                describe(exc),
                pause,
            )
            await trio.sleep(pause)
