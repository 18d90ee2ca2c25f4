"""Credentials: JWT access and refresh tokens, bcrypt password hashes, login and registration
limits.

Tokens are HS256 JWTs and only HS256 is accepted (``alg: none`` and every other algorithm are
refused before the signature is looked at). A ``typ`` claim separates access from refresh
tokens, so neither is ever accepted in place of the other.

bcrypt runs in worker threads under a :class:`trio.CapacityLimiter`: a hash takes ~0.25 s of CPU
that must never block the Trio loop, and it is what an attacker without an account can make us
spend, so every path to it is bounded (issue 15):

- :class:`PasswordHasher` admits at most ``queue`` hashes waiting for a thread; past it the
  request is refused at once with :class:`Overloaded` (503 with ``Retry-After``), never queued
  without end. Registrations are second class: they hash on at most half the threads (at least
  one) and may fill at most half the queue, so logins of real users keep threads and places
  of their own during a registration flood.
- :class:`LoginGuard` counts a login attempt *before* hashing it (a success takes it back), and
  lets one attempt per username be in flight: a concurrent second one is refused at once (429,
  ``Retry-After: 1``) without hashing. Its keys are chosen so that nobody can lock out someone
  else:

  * ``(username, address)``: ``per_pair`` failures lock this username *from this address*
    only. This is the lock-out a guesser meets; the real user at another address is not
    affected by it.
  * ``username``: ``per_username`` failures from all addresses together, much higher than
    ``per_pair``: one address can add at most ``per_pair`` of them per window, so locking a
    username for everyone takes ``per_username / per_pair`` addresses.
  * ``address``: at most ``per_address`` *distinct usernames* with failures per window (a
    guesser trying many accounts). A user mistyping their own password counts once however
    often they fail (their pair locks first), so the other users behind the same NAT keep
    logging in.

- :class:`RegistrationLimiter` counts registrations per address and in all, within an hour,
  before the username is looked up or anything is hashed (429 with ``Retry-After``).
"""

from __future__ import annotations

import base64
import hashlib
import math
import os
import secrets
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bcrypt
import jwt
import trio

from engine.config import Config
from engine.errors import Overloaded, RateLimited, StoreUnavailable, Unauthorized

ALGORITHM = "HS256"
ACCESS = "access"
REFRESH = "refresh"
SECRET_FILE = "auth_secret"
REQUIRED_CLAIMS = ["exp", "iat", "sub", "jti", "typ"]
VERIFIED_CACHE_SIZE = 10_000


@dataclass(frozen=True, slots=True)
class Claims:
    """A verified token's subject (the user id) and identity."""

    user_id: int
    jti: str
    typ: str


class TokenCodec:
    """Issues and verifies the API's JWTs with one secret.

    A client sends the same access token with every request, and checking its signature and
    claims is a measurable share of a request's cost, so tokens that verified are remembered
    (at most ``VERIFIED_CACHE_SIZE``; the memory is dropped when full) with their validity
    window. A remembered token is accepted again only inside that window (``iat``/``nbf`` <= now
    < ``exp``, as pyjwt checks) and for the same type; anything else takes the full check, so
    every refusal is exactly the uncached one. The signature depends only on the token's bytes
    and our secret, which never changes for a codec.
    """

    def __init__(self, secret: str, access_ttl_s: int, refresh_ttl_s: int) -> None:
        self._secret = secret
        self.access_ttl_s = access_ttl_s
        self.refresh_ttl_s = refresh_ttl_s
        # token -> (claims, valid from, valid until): from pyjwt's successful decode
        self._verified: dict[str, tuple[Claims, float, float]] = {}

    def issue(self, user_id: int, typ: str, *, now: float | None = None) -> str:
        """A signed token of type ``typ`` (``access`` or ``refresh``) for ``user_id``."""
        issued = int(time.time() if now is None else now)
        ttl = self.access_ttl_s if typ == ACCESS else self.refresh_ttl_s
        claims = {
            "sub": str(user_id),
            "typ": typ,
            "iat": issued,
            "exp": issued + ttl,
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM)

    def verify(self, token: str, typ: str) -> Claims:
        """The claims of a valid, unexpired token of type ``typ``.

        Raises :class:`Unauthorized` for a token that is malformed, signed with another key or
        another algorithm (``none`` included), tampered with, expired, missing a claim, or of
        the other type.
        """
        remembered = self._verified.get(token)
        if remembered is not None:
            known, valid_from, valid_until = remembered
            now = time.time()
            if known.typ == typ and valid_from <= now < valid_until:
                return known
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                options={"require": REQUIRED_CLAIMS},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("the token has expired") from None
        except jwt.InvalidTokenError:
            raise Unauthorized("the token is not valid") from None
        if claims.get("typ") != typ:
            raise Unauthorized(f"an {typ} token is required here") from None
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub.isdigit() or len(sub) > 18:
            raise Unauthorized("the token is not valid")
        verified = Claims(int(sub), str(claims["jti"]), typ)
        # pyjwt accepted int(iat) <= now, int(nbf) <= now (when present) and now < int(exp).
        valid_from = max(int(claims["iat"]), int(claims.get("nbf", claims["iat"])))
        if len(self._verified) >= VERIFIED_CACHE_SIZE:
            self._verified.clear()
        self._verified[token] = (verified, valid_from, int(claims["exp"]))
        return verified


def bearer_token(header: str | None) -> str:
    """The token of an ``Authorization: Bearer <token>`` header; :class:`Unauthorized` if none."""
    if not header:
        raise Unauthorized("an Authorization: Bearer <access token> header is required")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("the Authorization header must be 'Bearer <access token>'")
    return token.strip()


PREHASHED = "sha256$"  # marks a hash of the password's SHA-256, not of the password itself


def _prehash(password: str) -> bytes:
    """What bcrypt sees of a password: its SHA-256, base64 (44 bytes, no NUL). bcrypt reads at
    most 72 bytes (and bcrypt>=5 refuses more), so hashing the digest lets a password be any
    length and any text, a lone surrogate included, with every character counting."""
    digest = hashlib.sha256(password.encode("utf-8", "surrogatepass")).digest()
    return base64.b64encode(digest)


class PasswordHasher:
    """bcrypt of the password's SHA-256, in worker threads, at most ``threads`` at a time.

    ``rounds`` is bcrypt's cost (12 by default, ~0.25 s per hash; tests use 4). ``check`` of an
    unknown user still hashes (against a dummy hash) so timing does not reveal which usernames
    exist. Hashes made before the SHA-256 step (plain bcrypt, no ``sha256$`` prefix) still
    verify against the password's own bytes.

    At most ``queue`` hashes wait for a thread (default ``4 * threads``); one more raises
    :class:`Overloaded` at once. ``hash`` (registrations, the ``users`` command) is the lesser
    class: at most ``register_threads`` (half the threads, at least one) of them run at a time
    and at most ``register_threads + queue // 2`` are admitted, so ``check`` (logins) always has
    threads and queue places that registrations cannot take. ``hashes`` counts bcrypt runs.
    """

    def __init__(self, rounds: int = 12, threads: int = 2, queue: int | None = None) -> None:
        self.rounds = rounds
        self.threads = threads
        self.queue = 4 * threads if queue is None else queue
        self.limiter = trio.CapacityLimiter(threads)
        self.register_threads = max(1, threads // 2)
        self._register_limiter = trio.CapacityLimiter(self.register_threads)
        self.capacity = threads + self.queue  # admitted at once: running and waiting
        self.register_capacity = self.register_threads + self.queue // 2
        self.admitted = 0
        self.registering = 0
        self.hashes = 0
        self._seconds = 0.0  # a recent hash's duration, for Retry-After
        self._dummy: bytes | None = None  # made on first need, in a thread

    async def hash(self, password: str) -> str:
        """The stored hash of ``password``: ``sha256$`` and bcrypt's output (in a thread).

        Raises :class:`Overloaded` when the registrations' share of the queue is full.
        """
        return await self._hash(password, registering=True)

    async def check(self, password: str, hashed: str | None) -> bool:
        """Whether ``password`` matches ``hashed``; ``None`` (no such user) is always False.

        Raises :class:`Overloaded` when the queue is full.
        """
        secret = _prehash(password)
        if hashed is None:
            if self._dummy is None:
                made = await self._hash("not-a-password", registering=False)
                self._dummy = made.encode("ascii")
            target = self._dummy.removeprefix(PREHASHED.encode("ascii"))
        elif hashed.startswith(PREHASHED):
            target = hashed.removeprefix(PREHASHED).encode("ascii")
        else:  # a plain bcrypt hash from before the SHA-256 step
            target = hashed.encode("ascii")
            raw = password.encode("utf-8", "surrogatepass")
            secret = raw if len(raw) <= 72 else b""  # longer was never accepted: cannot match
        ok = await self._run(bcrypt.checkpw, secret, target, registering=False)
        return bool(ok) and hashed is not None

    async def _hash(self, password: str, *, registering: bool) -> str:
        salt = bcrypt.gensalt(self.rounds)
        digest = await self._run(bcrypt.hashpw, _prehash(password), salt, registering=registering)
        return PREHASHED + digest.decode("ascii")

    def retry_after(self) -> int:
        """Whole seconds until the hashes admitted now should be done (1 to 60)."""
        estimate = self._seconds * self.admitted / max(1, self.threads)
        return min(60, max(1, math.ceil(estimate)))

    async def _run(self, fn: Callable[..., Any], *args: Any, registering: bool) -> Any:
        full = self.admitted >= self.capacity
        if full or (registering and self.registering >= self.register_capacity):
            raise Overloaded(
                "the server is busy checking passwords; try again shortly", self.retry_after()
            )
        self.admitted += 1
        self.registering += registering
        try:
            if registering:
                async with self._register_limiter:
                    return await self._thread(fn, *args)
            return await self._thread(fn, *args)
        finally:
            self.admitted -= 1
            self.registering -= registering

    async def _thread(self, fn: Callable[..., Any], *args: Any) -> Any:
        result, seconds = await trio.to_thread.run_sync(_timed, fn, *args, limiter=self.limiter)
        self.hashes += 1
        self._seconds = seconds
        return result


def _timed(fn: Callable[..., Any], *args: Any) -> tuple[Any, float]:
    started = time.perf_counter()
    result = fn(*args)
    return result, time.perf_counter() - started


@dataclass
class AttemptLimiter:
    """At most ``limit`` counted attempts per key within a sliding ``window_s``.

    Memory stays bounded: a key's record disappears once its attempts leave the window, and
    past ``max_keys`` the oldest keys are dropped. Runtime complexity: O(1) amortised per call.
    ``clock`` defaults to ``trio.current_time`` so tests drive it with the ``autojump_clock``;
    ``what`` is the refusal's words.
    """

    limit: int
    window_s: float
    max_keys: int = 100_000
    clock: Callable[[], float] = trio.current_time
    what: str = "too many failed login attempts; try again later"
    _failures: dict[str, deque[float]] = field(default_factory=dict)

    def check(self, key: str) -> None:
        """Raise :class:`RateLimited` (with ``retry_after`` seconds) if ``key`` is at its limit."""
        record = self._prune(key)
        if record is not None and len(record) >= self.limit:
            retry = max(1, int(record[0] + self.window_s - self.clock() + 0.999))
            raise RateLimited(self.what, retry)

    def fail(self, key: str) -> None:
        """Count one attempt (a failure) for ``key``."""
        record = self._prune(key)
        if record is None:
            if len(self._failures) >= self.max_keys:
                del self._failures[next(iter(self._failures))]
            record = self._failures[key] = deque()
        record.append(self.clock())

    def undo(self, key: str) -> None:
        """Take back the last attempt counted for ``key`` (it turned out not to count)."""
        record = self._failures.get(key)
        if record:
            record.pop()
        if not record:
            self._failures.pop(key, None)

    def reset(self, key: str) -> None:
        """Forget ``key``'s failures (after a successful login)."""
        self._failures.pop(key, None)

    def _prune(self, key: str) -> deque[float] | None:
        record = self._failures.get(key)
        if record is None:
            return None
        horizon = self.clock() - self.window_s
        while record and record[0] <= horizon:
            record.popleft()
        if not record:
            del self._failures[key]
            return None
        return record


@dataclass
class DistinctLimiter:
    """At most ``limit`` distinct items (usernames) per key (an address) within ``window_s``.

    An item already counted for the key is always let through again (its own limits apply);
    a new one past the limit raises :class:`RateLimited`. Each item keeps its last time, so a
    key's record is pruned from its oldest item; bounded like :class:`AttemptLimiter`.
    """

    limit: int
    window_s: float
    max_keys: int = 100_000
    clock: Callable[[], float] = trio.current_time
    _seen: dict[str, dict[str, float]] = field(default_factory=dict)

    def check(self, key: str, item: str) -> None:
        """Raise :class:`RateLimited` if ``item`` is new for ``key`` and ``key`` is full."""
        record = self._prune(key)
        if record is not None and item not in record and len(record) >= self.limit:
            oldest = next(iter(record.values()))
            retry = max(1, int(oldest + self.window_s - self.clock() + 0.999))
            raise RateLimited("too many usernames tried from this address; try again later", retry)

    def add(self, key: str, item: str) -> None:
        """Count ``item`` for ``key`` now."""
        record = self._prune(key)
        if record is None:
            if len(self._seen) >= self.max_keys:
                del self._seen[next(iter(self._seen))]
            record = self._seen[key] = {}
        record.pop(item, None)  # re-inserted last: the dict stays in time order
        record[item] = self.clock()

    def discard(self, key: str, item: str) -> None:
        """Forget ``item`` for ``key``."""
        record = self._seen.get(key)
        if record is not None:
            record.pop(item, None)
            if not record:
                del self._seen[key]

    def _prune(self, key: str) -> dict[str, float] | None:
        record = self._seen.get(key)
        if record is None:
            return None
        horizon = self.clock() - self.window_s
        while record:
            item, seen = next(iter(record.items()))
            if seen > horizon:
                break
            del record[item]
        if not record:
            del self._seen[key]
            return None
        return record


@dataclass
class Attempt:
    """One login attempt admitted by :meth:`LoginGuard.attempt`; ``succeeded`` when it did."""

    succeeded: bool = False


# Errors after which no password was checked: the attempt is taken back, not counted.
NOT_CHECKED = (Overloaded, StoreUnavailable)


class LoginGuard:
    """Login attempts, counted before hashing, with one in flight per username (see the module
    docstring for the keys). ``window_s`` is the sliding window of every limit."""

    def __init__(
        self,
        per_pair: int,
        per_username: int,
        per_address: int,
        window_s: float,
        *,
        max_keys: int = 100_000,
        clock: Callable[[], float] = trio.current_time,
    ) -> None:
        self.pairs = AttemptLimiter(per_pair, window_s, max_keys, clock)
        self.usernames = AttemptLimiter(per_username, window_s, max_keys, clock)
        self.addresses = DistinctLimiter(per_address, window_s, max_keys, clock)
        self._in_flight: set[str] = set()

    @contextmanager
    def attempt(self, username: str, address: str) -> Iterator[Attempt]:
        """Admit one login attempt, counted as a failure until the body sets ``succeeded``.

        Raises :class:`RateLimited` at once, before anything is looked up or hashed, when an
        attempt for this username is in flight, or when the pair, the username or the address
        is at its limit. A success clears the pair's failures and the address's count of this
        username; an :class:`Overloaded` or :class:`StoreUnavailable` in the body takes the
        attempt back (nothing was checked).
        """
        name = username.lower()
        pair = f"{name}\x00{address}"
        if name in self._in_flight:
            raise RateLimited("a login for this username is already in progress", 1)
        self.pairs.check(pair)
        self.usernames.check(name)
        self.addresses.check(address, name)
        had_address = self.pairs._prune(pair) is not None
        self.pairs.fail(pair)
        self.usernames.fail(name)
        self.addresses.add(address, name)
        self._in_flight.add(name)
        outcome = Attempt()
        try:
            yield outcome
        except NOT_CHECKED:
            self.pairs.undo(pair)
            self.usernames.undo(name)
            if not had_address:
                self.addresses.discard(address, name)
            raise
        finally:
            self._in_flight.discard(name)
        if outcome.succeeded:
            self.pairs.reset(pair)
            self.usernames.undo(name)
            self.addresses.discard(address, name)


class RegistrationLimiter:
    """Registrations per address and in all within ``window_s`` (an hour), each counted when
    admitted, before the username is looked up or the password hashed; a 409 for a taken
    username counts too (probing names costs the same). Refusals are :class:`RateLimited`."""

    EVERYONE = "*"

    def __init__(
        self,
        per_address: int,
        in_all: int,
        window_s: float = 3600.0,
        *,
        max_keys: int = 100_000,
        clock: Callable[[], float] = trio.current_time,
    ) -> None:
        what = "too many registrations; try again later"
        self.by_address = AttemptLimiter(per_address, window_s, max_keys, clock, what)
        self.everyone = AttemptLimiter(in_all, window_s, 1, clock, what)

    def admit(self, address: str) -> None:
        """Count one registration from ``address``; :class:`RateLimited` past a limit."""
        self.by_address.check(address)
        self.everyone.check(self.EVERYONE)
        self.by_address.fail(address)
        self.everyone.fail(self.EVERYONE)

    def undo(self, address: str) -> None:
        """Take back an admitted registration that did nothing (the server was busy)."""
        self.by_address.undo(address)
        self.everyone.undo(self.EVERYONE)


def secret_path(config: Config) -> Path:
    """Where a generated secret is kept: beside the database directory."""
    return config.database.data_dir.parent / SECRET_FILE


def load_or_create_secret(path: Path) -> str:
    """The secret stored at ``path``, created (mode 0600, exclusively) on first use.

    Blocking file I/O: call it through ``trio.to_thread.run_sync``. Raises ``OSError`` when the
    directory cannot be created or the file cannot be read.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        secret = path.read_text(encoding="ascii").strip()
        if secret:
            return secret
        raise OSError(f"{path} is empty; delete it to generate a new secret") from None
    secret = secrets.token_urlsafe(48)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(secret + "\n")
    return secret


async def resolve_secret(config: Config) -> str:
    """``config.auth.secret``, or the generated one kept beside the data directory."""
    if config.auth.secret:
        return config.auth.secret
    return await trio.to_thread.run_sync(load_or_create_secret, secret_path(config))
