"""Tokens, password hashes, attempt limits and the generated secret, without a server."""

from __future__ import annotations

import base64
import json
import stat
import time
from pathlib import Path

import jwt
import pytest
import trio

from engine.errors import RateLimited, Unauthorized
from web.auth import (
    ACCESS,
    REFRESH,
    AttemptLimiter,
    PasswordHasher,
    TokenCodec,
    bearer_token,
    load_or_create_secret,
)

SECRET = "s" * 64


def codec() -> TokenCodec:
    return TokenCodec(SECRET, access_ttl_s=900, refresh_ttl_s=3600)


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_round_trip_and_claims() -> None:
    token = codec().issue(42, ACCESS)
    claims = codec().verify(token, ACCESS)
    assert claims.user_id == 42 and claims.typ == ACCESS and len(claims.jti) == 32
    raw = jwt.decode(token, SECRET, algorithms=["HS256"])
    assert raw["exp"] - raw["iat"] == 900 and raw["sub"] == "42"
    assert codec().issue(42, ACCESS) != token  # a fresh jti every time


def test_types_are_never_interchangeable() -> None:
    with pytest.raises(Unauthorized):
        codec().verify(codec().issue(1, REFRESH), ACCESS)
    with pytest.raises(Unauthorized):
        codec().verify(codec().issue(1, ACCESS), REFRESH)


def test_alg_none_and_other_algorithms_are_refused() -> None:
    now = int(time.time())
    claims = {"sub": "1", "typ": "access", "iat": now, "exp": now + 60, "jti": "x"}
    unsigned = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}."
    hs512 = jwt.encode(claims, SECRET, algorithm="HS512")
    for token in (unsigned, hs512):
        with pytest.raises(Unauthorized):
            codec().verify(token, ACCESS)


def test_tampered_wrong_key_expired_and_missing_claims() -> None:
    token = codec().issue(1, ACCESS)
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["sub"] = "2"
    tampered = f"{header}.{_b64(claims)}.{signature}"
    other_key = TokenCodec("t" * 48, 900, 3600).issue(1, ACCESS)
    expired = codec().issue(1, ACCESS, now=time.time() - 1000)
    now = int(time.time())
    no_jti = jwt.encode({"sub": "1", "typ": "access", "iat": now, "exp": now + 60}, SECRET)
    bad_sub = jwt.encode(
        {"sub": "root", "typ": "access", "iat": now, "exp": now + 60, "jti": "j"}, SECRET
    )
    for bad in (tampered, other_key, expired, no_jti, bad_sub, "garbage", ""):
        with pytest.raises(Unauthorized):
            codec().verify(bad, ACCESS)
    with pytest.raises(Unauthorized, match="expired"):
        codec().verify(expired, ACCESS)


@pytest.mark.parametrize("header", [None, "", "Basic abc", "Bearer", "Bearer   ", "Token x"])
def test_bearer_header_shapes(header: str | None) -> None:
    with pytest.raises(Unauthorized):
        bearer_token(header)


def test_bearer_header_ok() -> None:
    assert bearer_token("bearer abc.def.ghi") == "abc.def.ghi"


async def test_hasher_runs_in_threads_and_checks() -> None:
    hasher = PasswordHasher(rounds=4, threads=2)
    with trio.fail_after(10):
        digest = await hasher.hash("correct horse")
        assert digest.startswith("sha256$$2b$04$")
        assert await hasher.check("correct horse", digest)
        assert not await hasher.check("wrong horse", digest)
        assert not await hasher.check("correct horse", None)  # unknown user: still hashes


async def test_attempt_limiter_window(autojump_clock: trio.abc.Clock) -> None:
    limiter = AttemptLimiter(limit=3, window_s=60)
    for _ in range(3):
        limiter.check("alice")
        limiter.fail("alice")
    with pytest.raises(RateLimited) as info:
        limiter.check("alice")
    assert 1 <= info.value.retry_after <= 60
    limiter.check("bob")  # other keys are unaffected
    await trio.sleep(61)
    limiter.check("alice")  # the failures left the window
    limiter.fail("alice")
    limiter.reset("alice")
    limiter.check("alice")


async def test_attempt_limiter_bounds_memory(autojump_clock: trio.abc.Clock) -> None:
    limiter = AttemptLimiter(limit=1, window_s=60, max_keys=10)
    for i in range(100):
        limiter.fail(f"k{i}")
    assert len(limiter._failures) == 10
    with pytest.raises(RateLimited):
        limiter.check("k99")


def test_secret_is_created_once_private_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "var" / "auth_secret"
    first = load_or_create_secret(path)
    assert len(first) >= 64
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_secret(path) == first
    path.write_text("")
    with pytest.raises(OSError):
        load_or_create_secret(path)


def test_a_remembered_token_is_refused_once_expired(monkeypatch: pytest.MonkeyPatch) -> None:
    import datetime as dt

    import jwt.api_jwt

    tokens = codec()
    token = tokens.issue(7, ACCESS)
    assert tokens.verify(token, ACCESS).user_id == 7
    assert tokens.verify(token, ACCESS).user_id == 7  # remembered
    later = time.time() + 901  # past the access ttl

    class Later(dt.datetime):
        @classmethod
        def now(cls, tz: dt.tzinfo | None = None) -> Later:  # type: ignore[override]
            return cls.fromtimestamp(later, tz)

    monkeypatch.setattr(time, "time", lambda: later)
    monkeypatch.setattr(jwt.api_jwt, "datetime", Later)
    with pytest.raises(Unauthorized, match="expired"):
        tokens.verify(token, ACCESS)


def test_a_remembered_token_keeps_its_type_and_the_memory_stays_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import web.auth

    tokens = codec()
    access = tokens.issue(3, ACCESS)
    assert tokens.verify(access, ACCESS).typ == ACCESS
    with pytest.raises(Unauthorized, match="refresh token is required"):
        tokens.verify(access, REFRESH)
    monkeypatch.setattr(web.auth, "VERIFIED_CACHE_SIZE", 3)
    issued = [tokens.issue(i, ACCESS) for i in range(10)]
    for i, token in enumerate(issued):
        assert tokens.verify(token, ACCESS).user_id == i
        assert len(tokens._verified) <= 3
