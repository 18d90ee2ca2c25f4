"""Users and alerts: create, read, list, soft delete, through a real Postgres."""

from __future__ import annotations

from decimal import Decimal

import pytest
import trio

from engine.errors import Conflict
from engine.model import AlertStatus, Direction
from engine.store import Store


async def test_create_and_get_user(store: Store) -> None:
    with trio.fail_after(10):
        user = await store.create_user("Alice", "alice@example.com", "hash", is_staff=True)
        assert user.id > 0
        assert (user.username, user.email, user.is_staff) == ("Alice", "alice@example.com", True)
        assert await store.get_user(user.id) == user
        assert await store.get_user_by_username("aLiCe") == user
        assert await store.get_user(user.id + 1) is None
        assert await store.get_user_by_username("bob") is None


async def test_username_taken_whatever_its_case(store: Store) -> None:
    with trio.fail_after(10):
        await store.create_user("alice", "a@example.com", "h")
        with pytest.raises(Conflict, match=r"ALICE.* taken"):
            await store.create_user("ALICE", "b@example.com", "h")
        count, users = await store.list_users(10, 0)
        assert count == 1 and [u.email for u in users] == ["a@example.com"]


async def test_list_users_pages_in_id_order(store: Store) -> None:
    with trio.fail_after(10):
        for n in range(5):
            await store.create_user(f"user{n}", f"u{n}@example.com", "h")
        count, page = await store.list_users(2, 2)
        assert count == 5
        assert [u.username for u in page] == ["user2", "user3"]


async def test_alert_round_trip_keeps_the_price_exact(store: Store) -> None:
    with trio.fail_after(10):
        owner = await store.create_user("alice", "a@example.com", "h")
        target = Decimal("70000.00000001")
        alert = await store.create_alert(
            owner.id, "binance", "BTCUSDT", target, Direction.ABOVE, "moon"
        )
        assert alert.target_price == target and str(alert.target_price) == "70000.00000001"
        assert alert.status is AlertStatus.CREATED and alert.direction is Direction.ABOVE
        assert alert.triggered_at is None and alert.deleted_at is None
        assert await store.get_alert(owner.id, alert.id) == alert
        assert alert.trigger().target == target


async def test_alerts_are_private_to_their_owner(store: Store) -> None:
    with trio.fail_after(10):
        alice = await store.create_user("alice", "a@example.com", "h")
        bob = await store.create_user("bob", "b@example.com", "h")
        alert = await store.create_alert(
            alice.id, "binance", "ETHUSDT", Decimal(3000), Direction.BELOW, ""
        )
        assert await store.get_alert(bob.id, alert.id) is None
        assert await store.delete_alert(bob.id, alert.id) is None
        assert await store.list_alerts(bob.id) == (0, [])
        still = await store.get_alert(alice.id, alert.id)
        assert still is not None and still.status is AlertStatus.CREATED


@pytest.mark.parametrize("bad", [Decimal(0), Decimal("-1"), Decimal("NaN"), Decimal("Infinity")])
async def test_create_alert_rejects_a_bad_target(store: Store, bad: Decimal) -> None:
    with trio.fail_after(10):
        owner = await store.create_user("alice", "a@example.com", "h")
        with pytest.raises(ValueError, match="target_price"):
            await store.create_alert(owner.id, "binance", "BTCUSDT", bad, Direction.ABOVE, "")
        assert await store.list_alerts(owner.id) == (0, [])


async def test_list_alerts_filters_and_pages_newest_first(store: Store) -> None:
    with trio.fail_after(10):
        owner = await store.create_user("alice", "a@example.com", "h")
        made = []
        for n, symbol in enumerate(["BTCUSDT", "ETHUSDT", "BTCUSDT", "BTCUSDT", "ETHUSDT"]):
            made.append(
                await store.create_alert(
                    owner.id, "binance", symbol, Decimal(100 + n), Direction.ABOVE, f"a{n}"
                )
            )
        await store.delete_alert(owner.id, made[2].id)

        count, page = await store.list_alerts(owner.id, limit=2, offset=0)
        assert count == 5 and [a.id for a in page] == [made[4].id, made[3].id]
        count, page = await store.list_alerts(owner.id, limit=2, offset=4)
        assert count == 5 and [a.id for a in page] == [made[0].id]

        count, page = await store.list_alerts(owner.id, symbol="BTCUSDT")
        assert count == 3 and [a.id for a in page] == [made[3].id, made[2].id, made[0].id]
        count, page = await store.list_alerts(owner.id, status="created", symbol="BTCUSDT")
        assert count == 2 and [a.id for a in page] == [made[3].id, made[0].id]
        count, page = await store.list_alerts(owner.id, status=AlertStatus.DELETED)
        assert count == 1 and page[0].id == made[2].id
        assert await store.list_alerts(owner.id, exchange="okx") == (0, [])
        count, _ = await store.list_alerts(owner.id, exchange="binance", limit=1)
        assert count == 5


async def test_list_alerts_rejects_an_unknown_status(store: Store) -> None:
    with trio.fail_after(10):
        owner = await store.create_user("alice", "a@example.com", "h")
        with pytest.raises(ValueError, match="bogus"):
            await store.list_alerts(owner.id, status="bogus")


async def test_soft_delete_keeps_the_row_and_is_idempotent(store: Store) -> None:
    with trio.fail_after(10):
        owner = await store.create_user("alice", "a@example.com", "h")
        alert = await store.create_alert(
            owner.id, "binance", "BTCUSDT", Decimal(1), Direction.ABOVE, ""
        )
        deleted = await store.delete_alert(owner.id, alert.id)
        assert deleted is not None
        assert deleted.status is AlertStatus.DELETED and deleted.deleted_at is not None
        again = await store.delete_alert(owner.id, alert.id)
        assert again == deleted
        assert await store.get_alert(owner.id, alert.id) == deleted
        assert await store.delete_alert(owner.id, alert.id + 100) is None
        assert await store.load_live_triggers() == []


async def test_ping(store: Store) -> None:
    with trio.fail_after(10):
        await store.ping()
