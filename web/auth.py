"""Credentials: JWT access and refresh tokens, bcrypt password hashes, login attempt limits.

Tokens are HS256 JWTs and only HS256 is accepted (``alg: none`` and every other algorithm are
refused before the signature is looked at). A ``typ`` claim separates access from refresh
tokens, so neither is ever accepted in place of the other. bcrypt runs in worker threads under a
:class:`trio.CapacityLimiter`: a hash takes ~0.25 s of CPU that must never block the Trio loop.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bcrypt
import jwt
import trio

from engine.config import Config
from engine.errors import RateLimited, Unauthorized

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
    """

    def __init__(self, rounds: int = 12, threads: int = 2) -> None:
        self.rounds = rounds
        self.limiter = trio.CapacityLimiter(threads)
        self._dummy: bytes | None = None  # made on first need, in a thread

    async def hash(self, password: str) -> str:
        """The stored hash of ``password``: ``sha256$`` and bcrypt's output (in a thread)."""
        salt = bcrypt.gensalt(self.rounds)
        digest = await trio.to_thread.run_sync(
            bcrypt.hashpw, _prehash(password), salt, limiter=self.limiter
        )
        return PREHASHED + digest.decode("ascii")

    async def check(self, password: str, hashed: str | None) -> bool:
        """Whether ``password`` matches ``hashed``; ``None`` (no such user) is always False."""
        secret = _prehash(password)
        if hashed is None:
            if self._dummy is None:
                self._dummy = (await self.hash("not-a-password")).encode("ascii")
            target = self._dummy.removeprefix(PREHASHED.encode("ascii"))
        elif hashed.startswith(PREHASHED):
            target = hashed.removeprefix(PREHASHED).encode("ascii")
        else:  # a plain bcrypt hash from before the SHA-256 step
            target = hashed.encode("ascii")
            raw = password.encode("utf-8", "surrogatepass")
            secret = raw if len(raw) <= 72 else b""  # longer was never accepted: cannot match
        ok = await trio.to_thread.run_sync(bcrypt.checkpw, secret, target, limiter=self.limiter)
        return bool(ok) and hashed is not None


@dataclass
class AttemptLimiter:
    """At most ``limit`` failures per key within a sliding ``window_s``.

    Keys are a username or a client address. Memory stays bounded: a key's record disappears
    once its failures leave the window, and past ``max_keys`` the oldest keys are dropped.
    Runtime complexity: O(1) amortised per call. ``clock`` defaults to ``trio.current_time`` so
    tests drive it with the ``autojump_clock``.
    """

    limit: int
    window_s: float
    max_keys: int = 100_000
    clock: Callable[[], float] = trio.current_time
    _failures: dict[str, deque[float]] = field(default_factory=dict)

    def check(self, key: str) -> None:
        """Raise :class:`RateLimited` (with ``retry_after`` seconds) if ``key`` is at its limit."""
        record = self._prune(key)
        if record is not None and len(record) >= self.limit:
            retry = max(1, int(record[0] + self.window_s - self.clock() + 0.999))
            raise RateLimited("too many failed login attempts; try again later", retry)

    def fail(self, key: str) -> None:
        """Count one failure for ``key``."""
        record = self._prune(key)
        if record is None:
            if len(self._failures) >= self.max_keys:
                del self._failures[next(iter(self._failures))]
            record = self._failures[key] = deque()
        record.append(self.clock())

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
