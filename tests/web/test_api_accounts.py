"""Accounts over real HTTP: register, login, refresh, me, the staff list, limits, aliases."""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest
import trio


def _field(r: Any) -> str | None:
    assert r.headers["content-type"] == "application/problem+json"
    return r.json().get("field")


async def test_register_login_me(api: Any, password: str) -> None:
    with trio.fail_after(20):
        r = await api.client.post(
            "/api/auth/register",
            json={"username": "alice", "password": password, "email": "Alice@Example.COM"},
        )
        assert r.status_code == 201
        assert r.json() == {"id": r.json()["id"], "username": "alice", "email": "Alice@example.com"}
        r = await api.client.post(
            "/api/auth/login", json={"username": "ALICE", "password": password}
        )
        assert r.status_code == 200
        tokens = r.json()
        assert tokens["token_type"] == "Bearer" and tokens["expires_in"] == 900
        me = await api.client.get(
            "/api/users/me", headers={"Authorization": f"Bearer {tokens['access']}"}
        )
        assert me.status_code == 200 and me.json()["username"] == "alice"
        assert me.json()["is_staff"] is False


async def test_register_conflict_is_case_insensitive(api: Any, password: str) -> None:
    with trio.fail_after(20):
        await api.user("bob")
        r = await api.client.post(
            "/api/auth/register", json={"username": "BOB", "password": password, "email": "b@x.io"}
        )
        assert r.status_code == 409
        assert r.json()["type"].endswith(":conflict")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"username": "al", "password": "12345678", "email": "a@b.io"}, "username"),
        ({"username": "alice", "password": "short", "email": "a@b.io"}, "password"),
        ({"username": "alice", "password": "x" * 257, "email": "a@b.io"}, "password"),
        ({"username": "alice", "password": "12345678", "email": "not-an-email"}, "email"),
        ({"username": "alice", "password": "12345678"}, "email"),
        (
            {"username": "alice", "password": "12345678", "email": "a@b.io", "is_staff": True},
            "is_staff",
        ),
        ({"username": 5, "password": "12345678", "email": "a@b.io"}, "username"),
    ],
)
async def test_register_validation(api: Any, body: dict[str, Any], field: str) -> None:
    with trio.fail_after(20):
        r = await api.client.post("/api/auth/register", json=body)
        assert r.status_code == 422 and _field(r) == field
        count, _ = await api.ctx.store.list_users(10, 0)
        assert count == 0  # nothing changed


async def test_login_failures_and_limits(api: Any, password: str) -> None:
    with trio.fail_after(30):
        await api.user("carol")
        r = await api.client.post(
            "/api/auth/login", json={"username": "carol", "password": "nope-nope"}
        )
        assert r.status_code == 401
        r2 = await api.client.post(
            "/api/auth/login", json={"username": "nobody", "password": "x" * 8}
        )
        assert r2.status_code == 401 and r2.json()["detail"] == r.json()["detail"]
        # per (username, address): 3 failures (SETTINGS) lock carol from this address, even
        # with the right password
        for _ in range(2):
            await api.client.post(
                "/api/auth/login", json={"username": "carol", "password": "bad-bad!"}
            )
        r = await api.client.post(
            "/api/auth/login", json={"username": "carol", "password": password}
        )
        assert r.status_code == 429
        assert 1 <= int(r.headers["Retry-After"]) <= 300
        # per address: failures for 6 distinct usernames (SETTINGS: carol, nobody, dave1-4)
        # refuse a 7th username from this address; carol's repeated failures counted once
        for name in ("dave1", "dave2", "dave3", "dave4"):
            r = await api.client.post(
                "/api/auth/login", json={"username": name, "password": "bad-bad!"}
            )
            assert r.status_code == 401
        r = await api.client.post(
            "/api/auth/login", json={"username": "erin", "password": "whatever1"}
        )
        assert r.status_code == 429 and "Retry-After" in r.headers
        assert "usernames" in r.json()["detail"]


async def test_refresh_and_token_types(api: Any, password: str) -> None:
    with trio.fail_after(20):
        await api.user("frank")
        tokens = (
            await api.client.post(
                "/api/auth/login", json={"username": "frank", "password": password}
            )
        ).json()
        r = await api.client.post("/api/auth/refresh", json={"refresh": tokens["refresh"]})
        assert r.status_code == 200
        new_access = r.json()["access"]
        me = await api.client.get(
            "/api/users/me", headers={"Authorization": f"Bearer {new_access}"}
        )
        assert me.status_code == 200
        # an access token is not a refresh token, and a refresh token is not an access token
        r = await api.client.post("/api/auth/refresh", json={"refresh": tokens["access"]})
        assert r.status_code == 401
        r = await api.client.get(
            "/api/users/me", headers={"Authorization": f"Bearer {tokens['refresh']}"}
        )
        assert r.status_code == 401
        r = await api.client.post("/api/auth/refresh", json={"refresh": 5})
        assert r.status_code == 422 and _field(r) == "refresh"


async def test_token_confusion_over_http(api: Any) -> None:
    with trio.fail_after(20):
        headers = await api.user("grace")
        token = headers["Authorization"].split()[1]
        secret = api.secret()
        now = int(time.time())
        base = {"sub": "1", "typ": "access", "iat": now, "exp": now + 60, "jti": "j"}
        header, payload, sig = token.split(".")
        forged = [
            jwt.encode(base, key="", algorithm="none"),  # alg none
            jwt.encode(base, "another-secret-of-enough-length-0123456789", algorithm="HS256"),
            f"{header}.{payload[:-2]}AA.{sig}",  # tampered payload
            jwt.encode({**base, "typ": "refresh"}, secret, algorithm="HS256"),  # wrong typ
            jwt.encode({**base, "exp": now - 10, "iat": now - 100}, secret, algorithm="HS256"),
            jwt.encode({k: v for k, v in base.items() if k != "typ"}, secret, algorithm="HS256"),
        ]
        for bad in forged:
            r = await api.client.get("/api/users/me", headers={"Authorization": f"Bearer {bad}"})
            assert r.status_code == 401, bad
            assert r.json()["type"].endswith(":unauthorized")
        for value in ("", "Basic Zm9vOmJhcg==", "Bearer"):
            r = await api.client.get("/api/alerts", headers={"Authorization": value})
            assert r.status_code == 401
        r = await api.client.get("/api/alerts")
        assert r.status_code == 401
        # the right secret and claims do work (the forged set failed for its flaw only)
        good = jwt.encode(base, secret, algorithm="HS256")  # grace is user 1
        r = await api.client.get("/api/users/me", headers={"Authorization": f"Bearer {good}"})
        assert r.status_code == 200


async def test_staff_list_users(api: Any) -> None:
    with trio.fail_after(20):
        user = await api.user("heidi")
        staff = await api.user("root", staff=True)
        r = await api.client.get("/api/users", headers=user)
        assert r.status_code == 403
        r = await api.client.get("/api/users?page_size=1", headers=staff)
        assert r.status_code == 200
        page = r.json()
        assert page["count"] == 2 and len(page["results"]) == 1
        assert page["next"].startswith(api.base) and page["previous"] is None
        r = await api.client.get(page["next"], headers=staff)
        assert r.json()["results"][0]["username"] == "root"
        r = await api.client.get("/api/users/", headers=staff)  # historic alias
        assert r.status_code == 200 and r.json()["count"] == 2


async def test_historic_account_routes(api: Any, password: str) -> None:
    with trio.fail_after(20):
        r = await api.client.post(
            "/api/register/", json={"username": "ivan", "password": password, "email": "i@x.io"}
        )
        assert r.status_code == 201
        for path in ("/api/login/", "/api/token/"):
            r = await api.client.post(path, json={"username": "ivan", "password": password})
            assert r.status_code == 200 and set(r.json()) >= {"access", "refresh"}
        r = await api.client.post("/api/token/refresh/", json={"refresh": r.json()["refresh"]})
        assert r.status_code == 200
