"""Logins and registrations under abuse (issue 15, findings 2 and 3): attempts counted before
bcrypt, one login in flight per username, lock-outs keyed so nobody locks out someone else,
registrations limited and checked before hashing, and a bounded hashing queue (503).

Over real HTTP against the real server and store (``tests/web/conftest.py``), from several
loopback addresses (127.0.0.x: the client binds its own source address), bcrypt at a low cost.
Hashes are counted where bcrypt is called (``bcrypt.checkpw``/``hashpw`` wrapped), so "at
most the limits hash" is measured, not inferred from the statuses.
"""

from __future__ import annotations

import statistics
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import bcrypt
import httpx
import pytest
import trio

from engine.errors import Overloaded, RateLimited, StoreUnavailable
from tests.web.conftest import PASSWORD, SETTINGS, Api, start_api
from web.auth import DistinctLimiter, LoginGuard, PasswordHasher, RegistrationLimiter
from web.context import WebSettings

LOGIN = "/api/auth/login"
REGISTER = "/api/auth/register"


class Counter:
    """Counts calls of one bcrypt function (from the worker threads)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
        self.calls = 0
        self._lock = threading.Lock()
        original: Callable[..., Any] = getattr(bcrypt, name)

        def counted(*args: Any) -> Any:
            with self._lock:
                self.calls += 1
            return original(*args)

        monkeypatch.setattr(bcrypt, name, counted)


@asynccontextmanager
async def client_from(api: Api, address: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client whose connections come from ``address`` (a loopback address of its own)."""
    transport = httpx.AsyncHTTPTransport(local_address=address)
    async with httpx.AsyncClient(base_url=api.base, timeout=20, transport=transport) as client:
        yield client


async def register(client: httpx.AsyncClient, name: str) -> httpx.Response:
    body = {"username": name, "password": PASSWORD, "email": f"{name}@example.com"}
    return await client.post(REGISTER, json=body)


async def login(client: httpx.AsyncClient, name: str, password: str = PASSWORD) -> httpx.Response:
    return await client.post(LOGIN, json={"username": name, "password": password})


@asynccontextmanager
async def server(
    store: Any,
    nursery: trio.Nursery,
    tmp_path: Path,
    settings: WebSettings = SETTINGS,
    **environ: str,
) -> AsyncIterator[Api]:
    env = {f"TRIGGERBOOK_AUTH_{k.upper()}": v for k, v in environ.items()}
    async with start_api(store, nursery, tmp_path, env, settings=settings) as api:
        yield api


def refused_politely(r: httpx.Response, status: int) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert 1 <= int(r.headers["Retry-After"]) <= 3600


# --- the login limiter over HTTP -------------------------------------------------------------


async def test_sixty_concurrent_wrong_logins_hash_at_most_the_limits(
    store: Any, nursery: trio.Nursery, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Finding 2: 60 simultaneous wrong-password logins for 3 usernames from one address all
    ran bcrypt. Now at most ``login_per_user`` (3 in SETTINGS) per username hash; the rest are
    429 with Retry-After, without hashing."""
    with trio.fail_after(60):
        async with server(store, nursery, tmp_path) as api:
            names = ("vic1", "vic2", "vic3")
            for name in names:
                assert (await register(api.client, name)).status_code == 201
            checks = Counter(monkeypatch, "checkpw")
            statuses: list[httpx.Response] = []

            async def wrong(name: str) -> None:
                statuses.append(await login(api.client, name, "wrong-password"))

            async with trio.open_nursery() as flood:
                for i in range(60):
                    flood.start_soon(wrong, names[i % 3])
            codes = [r.status_code for r in statuses]
            assert set(codes) <= {401, 429}, codes
            assert checks.calls == codes.count(401) <= 3 * SETTINGS.login_per_user
            assert codes.count(429) >= 60 - 3 * SETTINGS.login_per_user
            for r in statuses:
                if r.status_code == 429:
                    refused_politely(r, 429)
            # (the flood may have hashed fewer: concurrent ones for a username in flight are
            # refused.) Failing on to the pair's limit locks vic1 from this address, even
            # with the right password, and nothing refused is hashed ...
            for _ in range(SETTINGS.login_per_user):
                codes.append((await login(api.client, "vic1", "wrong-password")).status_code)
            refused_politely(await login(api.client, "vic1"), 429)
            assert checks.calls == codes.count(401) <= 3 * SETTINGS.login_per_user
            # ... but the users themselves, at their own address, are not locked out
            async with client_from(api, "127.0.0.2") as own:
                for name in names:
                    assert (await login(own, name)).status_code == 200


async def test_failing_for_one_username_does_not_lock_the_address(
    store: Any, nursery: trio.Nursery, tmp_path: Path
) -> None:
    """One user mistyping behind a NAT locks only their own (username, address) pair; other
    users from the same address keep logging in."""
    with trio.fail_after(60):
        async with server(store, nursery, tmp_path) as api:
            for name in ("clumsy", "neighbour"):
                assert (await register(api.client, name)).status_code == 201
            codes = [
                (await login(api.client, "clumsy", "typo-typo")).status_code for _ in range(10)
            ]
            assert codes == [401] * SETTINGS.login_per_user + [429] * (10 - SETTINGS.login_per_user)
            assert (await login(api.client, "neighbour")).status_code == 200


async def test_an_attacker_cannot_lock_the_victim_out(
    store: Any, nursery: trio.Nursery, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An attacker's address failing for the victim's username locks only that address; the
    victim logs in from their own. Only many addresses together reach the per-username limit
    (5 here: two attacker addresses of 3 each)."""
    settings = WebSettings(bcrypt_rounds=4, login_per_user=3, login_per_username=5, grace_s=1.0)
    with trio.fail_after(60):
        async with server(store, nursery, tmp_path, settings) as api:
            assert (await register(api.client, "victim")).status_code == 201
            checks = Counter(monkeypatch, "checkpw")
            async with client_from(api, "127.0.0.2") as attacker:
                codes = [
                    (await login(attacker, "victim", "guess-0001")).status_code for _ in range(8)
                ]
                assert codes == [401] * 3 + [429] * 5
                refused_politely(await login(attacker, "victim"), 429)
            assert checks.calls == 3
            ok = await login(api.client, "victim")  # the victim's own address
            assert ok.status_code == 200, ok.text
            # a success clears the victim's own attempt, not the attacker's failures
            async with (
                client_from(api, "127.0.0.3") as second,
                client_from(api, "127.0.0.4") as third,
            ):
                assert [
                    (await login(second, "victim", "guess-0002")).status_code for _ in range(3)
                ] == [
                    401,
                    401,
                    429,
                ]  # 3 + 2 = 5 failures of the username from all addresses
                refused_politely(await login(third, "victim", "guess-0003"), 429)
                assert "too many failed login attempts" in (await login(api.client, "victim")).text
            assert checks.calls == 3 + 1 + 2  # attacker, the victim's success, second


# --- registrations ---------------------------------------------------------------------------


async def test_register_looks_up_the_username_before_hashing_and_is_rate_limited(
    store: Any, nursery: trio.Nursery, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A taken username is a 409 without bcrypt; registrations per address and in all are
    limited (429 with Retry-After, documented); another address has its own allowance."""
    with trio.fail_after(60):
        async with server(
            store, nursery, tmp_path, register_per_hour="3", register_global_per_hour="5"
        ) as api:
            hashes = Counter(monkeypatch, "hashpw")
            assert (await register(api.client, "first")).status_code == 201
            taken = await register(api.client, "FIRST")
            assert taken.status_code == 409 and taken.json()["type"].endswith("conflict")
            assert hashes.calls == 1  # the 409 ran no bcrypt
            assert (await register(api.client, "second")).status_code == 201
            r = await register(api.client, "third")  # the address's 4th this hour
            refused_politely(r, 429)
            assert "registrations" in r.json()["detail"]
            async with client_from(api, "127.0.0.2") as other:
                assert (await register(other, "third")).status_code == 201
                assert (await register(other, "fourth")).status_code == 201
                # 5 registrations in all this hour: everyone's cap, from any address
            async with client_from(api, "127.0.0.3") as fresh:
                refused_politely(await register(fresh, "fifth"), 429)
            assert hashes.calls == 4
            assert (await login(api.client, "fourth")).status_code == 200


async def test_a_registration_flood_does_not_starve_logins(
    store: Any, nursery: trio.Nursery, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Finding 3: 20 concurrent clients registering taken and new usernames. With the rate
    limit out of the way (so the hasher's priority is what is tested), registrations are
    refused (503: their share of the queue is full) or delayed, taken usernames hash nothing,
    and a real user's login stays within a generous bound of its quiet time."""
    settings = WebSettings(bcrypt_rounds=8, login_per_user=100, grace_s=1.0)
    with trio.fail_after(120):
        async with server(store, nursery, tmp_path, settings, register_per_hour="100000") as api:
            assert (await register(api.client, "real")).status_code == 201
            for i in range(5):
                assert (await register(api.client, f"taken{i}")).status_code == 201

            async def timed_logins(client: httpx.AsyncClient, n: int) -> list[float]:
                seconds = []
                for _ in range(n):
                    started = trio.current_time()
                    r = await login(client, "real")
                    assert r.status_code == 200, r.text
                    seconds.append(trio.current_time() - started)
                return seconds

            async with client_from(api, "127.0.0.2") as user:
                quiet = statistics.median(await timed_logins(user, 5))
                hashes = Counter(monkeypatch, "hashpw")
                answers: list[int] = []
                stop = trio.Event()

                async def flooder(k: int) -> None:
                    async with client_from(api, "127.0.0.9") as client:
                        n = 0
                        while not stop.is_set():
                            name = f"taken{n % 5}" if n % 2 else f"flood{k}x{n}"
                            answers.append((await register(client, name)).status_code)
                            n += 1

                async with trio.open_nursery() as flood:
                    for k in range(20):
                        flood.start_soon(flooder, k)
                    await trio.sleep(0.5)  # the flood is under way
                    busy = await timed_logins(user, 5)
                    stop.set()
            assert set(answers) <= {201, 409, 503}, set(answers)
            assert answers.count(409) > 0 and answers.count(201) > 0
            assert hashes.calls == answers.count(201)  # neither 409 nor 503 hashed
            assert statistics.median(busy) < 5 * quiet + 1.0, (quiet, busy)
            print(
                f"login quiet p50 {quiet * 1000:.0f} ms, during flood p50 "
                f"{statistics.median(busy) * 1000:.0f} ms max {max(busy) * 1000:.0f} ms; "
                f"flood answers 201={answers.count(201)} 409={answers.count(409)} "
                f"503={answers.count(503)}"
            )


async def test_a_full_hashing_queue_answers_503_with_retry_after(
    store: Any, nursery: trio.Nursery, tmp_path: Path
) -> None:
    """One thread and one waiting place: of 12 simultaneous logins (distinct usernames) the
    ones past the queue are refused at once with 503 ``overloaded`` and Retry-After, and their
    attempts are not counted (the same usernames then get their 401)."""
    settings = WebSettings(bcrypt_rounds=10, bcrypt_threads=1, hash_queue=1, grace_s=1.0)
    with trio.fail_after(60):
        async with server(store, nursery, tmp_path, settings) as api:
            assert (await register(api.client, "known")).status_code == 201
            answers: dict[str, httpx.Response] = {}

            async def one(name: str) -> None:
                answers[name] = await login(api.client, name, "wrong-password")

            async with trio.open_nursery() as burst:
                for i in range(12):
                    burst.start_soon(one, f"user{i}")
            busy = [r for r in answers.values() if r.status_code == 503]
            assert busy and {r.status_code for r in answers.values()} <= {401, 503}
            for r in busy:
                refused_politely(r, 503)
                assert r.json()["type"] == "urn:triggerbook:problem:overloaded"
            for name, r in answers.items():
                if r.status_code == 503:  # not counted: the username's own limit is untouched
                    again = await login(api.client, name, "wrong-password")
                    assert again.status_code == 401, again.text


# --- the parts, without a server -------------------------------------------------------------


def test_login_guard_one_attempt_in_flight_per_username() -> None:
    guard = LoginGuard(3, 10, 5, 60, clock=lambda: 0.0)
    with guard.attempt("Alice", "10.0.0.1"):
        for address in ("10.0.0.1", "10.0.0.2"):
            with pytest.raises(RateLimited) as info, guard.attempt("alice", address):
                pass
            assert info.value.retry_after == 1
        with guard.attempt("bob", "10.0.0.1"):  # other usernames are not held up
            pass
    with guard.attempt("alice", "10.0.0.1") as attempt:  # done: the next one is admitted
        attempt.succeeded = True


def test_login_guard_counts_before_and_takes_back_what_was_not_checked() -> None:
    guard = LoginGuard(2, 10, 5, 60, clock=lambda: 0.0)
    for error in (Overloaded("busy", 1), StoreUnavailable("down")):
        with pytest.raises(type(error)), guard.attempt("carol", "a"):
            assert len(guard.pairs._failures["carol\x00a"]) == 1  # counted while in flight
            raise error
        assert guard.pairs._failures == {} and guard.usernames._failures == {}
        assert guard.addresses._seen == {}
    for _ in range(2):
        with pytest.raises(KeyError), guard.attempt("carol", "a"):
            raise KeyError("a wrong password counts")  # any other error: it was checked
    with pytest.raises(RateLimited), guard.attempt("carol", "a"):
        pass
    with guard.attempt("carol", "b") as attempt:  # another address: its own pair
        attempt.succeeded = True
    assert "carol\x00b" not in guard.pairs._failures
    assert len(guard.usernames._failures["carol"]) == 2  # the others' failures remain


async def test_distinct_limiter_counts_usernames_not_failures(
    autojump_clock: trio.abc.Clock,
) -> None:
    limiter = DistinctLimiter(limit=2, window_s=60)
    for _ in range(5):
        limiter.check("addr", "u1")
        limiter.add("addr", "u1")
    limiter.add("addr", "u2")
    limiter.check("addr", "u2")  # already counted: let through
    with pytest.raises(RateLimited) as info:
        limiter.check("addr", "u3")
    assert 1 <= info.value.retry_after <= 60
    limiter.check("other", "u3")
    limiter.discard("addr", "u1")
    limiter.check("addr", "u3")
    await trio.sleep(61)
    assert limiter._prune("addr") is None and limiter._seen == {}
    bounded = DistinctLimiter(limit=1, window_s=60, max_keys=3)
    for i in range(10):
        bounded.add(f"a{i}", "u")
    assert len(bounded._seen) == 3


def test_registration_limiter_per_address_and_in_all() -> None:
    limiter = RegistrationLimiter(per_address=2, in_all=3, clock=lambda: 0.0)
    limiter.admit("a")
    limiter.admit("a")
    with pytest.raises(RateLimited, match="registrations"):
        limiter.admit("a")
    limiter.undo("a")
    limiter.admit("a")
    limiter.admit("b")
    with pytest.raises(RateLimited) as info:
        limiter.admit("c")  # everyone's 3 are used
    assert info.value.retry_after == 3600


async def test_hasher_queue_is_bounded_and_registrations_take_a_share() -> None:
    """threads=2, queue=2: 4 admitted at once; registrations 1 thread + 1 waiting place."""
    hasher = PasswordHasher(rounds=4, threads=2, queue=2)
    assert (hasher.capacity, hasher.register_capacity) == (4, 2)
    release = threading.Event()

    def slow(*_: Any) -> bool:
        release.wait(10)
        return True

    refused: list[str] = []

    async def run(kind: str) -> None:
        try:
            await hasher._run(slow, registering=kind == "register")
        except Overloaded as busy:
            assert busy.retry_after >= 1
            refused.append(kind)

    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            for kind in ("register", "register", "register", "login", "login", "login"):
                nursery.start_soon(run, kind)
                await trio.sleep(0.01)
            assert refused == ["register", "login"]
            assert hasher.admitted == 4
            release.set()
        assert hasher.admitted == 0 and hasher.registering == 0 and hasher.hashes == 4
        digest = await hasher.hash("pw")
        assert await hasher.check("pw", digest)
