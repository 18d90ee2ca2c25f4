"""store.destinations: owner-only rows, the live cap, and confirmation codes (migration 0008)."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
import trio

from engine.errors import Conflict
from engine.store import Store
from engine.store.destinations import Refused, Verdict


async def test_rows_are_the_owners_and_a_live_copy_conflicts(store: Store) -> None:
    with trio.fail_after(10):
        alice = await store.create_user("alice", "a@example.com", "h")
        bob = await store.create_user("bob", "b@example.com", "h")
        made = await store.destinations.create(
            alice.id, "webhook", "https://x.test/", None, "whsec_x", confirmed=True
        )
        assert not isinstance(made, Refused) and made.confirmed_at is not None
        assert await store.destinations.get(bob.id, made.id) is None
        assert not await store.destinations.delete(bob.id, made.id)
        with pytest.raises(Conflict):
            await store.destinations.create(
                alice.id, "webhook", "https://x.test/", None, None, confirmed=True
            )
        assert await store.destinations.delete(alice.id, made.id)
        again = await store.destinations.create(  # deleted ones do not count
            alice.id, "webhook", "https://x.test/", None, None, confirmed=True
        )
        assert not isinstance(again, Refused)
        assert [d.id for d in await store.destinations.list(alice.id)] == [again.id]
        assert (
            await store.destinations.create(
                404, "webhook", "https://y.test/", None, None, confirmed=True
            )
            is Refused.NO_OWNER
        )


async def test_concurrent_creates_never_pass_the_cap(store: Store) -> None:
    with trio.fail_after(20):
        alice = await store.create_user("alice", "a@example.com", "h")
        results: list[object] = []

        async def one(n: int) -> None:
            results.append(
                await store.destinations.create(
                    alice.id, "probe", f"probe:{n}", None, None, confirmed=True, max_live=3
                )
            )

        async with trio.open_nursery() as nursery:
            for n in range(8):
                nursery.start_soon(one, n)
        assert results.count(Refused.LIMIT) == 5
        assert len(await store.destinations.list(alice.id)) == 3


async def test_codes_are_hashed_expire_and_confirm_once(store: Store) -> None:
    with trio.fail_after(10):
        alice = await store.create_user("alice", "a@example.com", "h")
        made = await store.destinations.create(
            alice.id, "email", "x@example.com", None, None, confirmed=False
        )
        assert not isinstance(made, Refused) and made.confirmed_at is None
        d = store.destinations
        assert (await d.confirm(alice.id, made.id, "123456")).verdict is Verdict.NONE
        code = await d.new_code(alice.id, made.id, made.target, ttl_s=0)
        assert code is not None and len(code) == 6 and code.isdigit()

        async def stored(con: Any) -> list[bytes]:
            rows = await con.fetch("SELECT code_sha256 FROM confirmations")
            return [bytes(r[0]) for r in rows]

        assert await store.bridge.run(stored) == [hashlib.sha256(code.encode()).digest()]
        assert (await d.confirm(alice.id, made.id, code)).verdict is Verdict.EXPIRED
        code = await d.new_code(alice.id, made.id, made.target)
        assert code is not None
        bob = await store.create_user("bob", "b@example.com", "h")
        assert (await d.confirm(bob.id, made.id, code)).verdict is Verdict.NONE  # not bob's
        assert (await d.confirm(alice.id, made.id, code)).verdict is Verdict.CONFIRMED
        row = await d.get(alice.id, made.id)
        assert row is not None and row.confirmed_at is not None
        assert (await d.confirm(alice.id, made.id, code)).verdict is Verdict.NONE  # used
        # the account's own address
        assert not await d.account_confirmed(alice.id)
        code = await d.new_code(alice.id, None, alice.email)
        assert code is not None
        assert (await d.confirm(alice.id, None, code)).verdict is Verdict.CONFIRMED
        assert await d.account_confirmed(alice.id)


async def test_codes_per_hour_are_bounded(store: Store) -> None:
    with trio.fail_after(10):
        alice = await store.create_user("alice", "a@example.com", "h")
        codes = [await store.destinations.new_code(alice.id, None, alice.email, per_hour=3)]
        codes += [await store.destinations.new_code(alice.id, None, alice.email, per_hour=3)]
        codes += [await store.destinations.new_code(alice.id, None, alice.email, per_hour=3)]
        assert None not in codes
        assert await store.destinations.new_code(alice.id, None, alice.email, per_hour=3) is None
        # only the latest code is good
        first = await store.destinations.confirm(alice.id, None, str(codes[0]))
        assert first.verdict in (Verdict.WRONG, Verdict.CONFIRMED)
        if codes[0] != codes[2]:
            assert first.verdict is Verdict.WRONG and first.tries_left == 4
