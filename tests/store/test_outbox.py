"""The outbox as a delivery queue: which rows a fire queues (channels and destinations), claims
with leases and SKIP LOCKED, settling outcomes, and what an alert's owner sees of them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import trio

from engine.model import Alert, Direction, Fire, FireChannels, Tick
from engine.store import Store
from engine.store.outbox import DESTINATION_DISABLED, DESTINATION_GONE, Outcomes

ALL = FireChannels(
    account=("console", "email"),
    confirmed_account=(),
    destinations=("webhook", "email"),
)


async def _user(store: Store, name: str = "alice") -> int:
    return (await store.create_user(name, f"{name}@example.com", "h")).id


async def _alert(store: Store, owner: int, channels: list[str] | None = None) -> Alert:
    alert = await store.create_alert(
        owner, "binance", "BTCUSDT", Decimal(100), Direction.ABOVE, "a"
    )
    if channels is not None:
        await store.bridge.run(
            lambda con: con.execute(
                "UPDATE alerts SET channels = $2 WHERE id = $1", alert.id, channels
            )
        )
    return alert


async def _destination(
    store: Store,
    owner: int,
    kind: str,
    target: str,
    *,
    confirmed: bool = True,
    deleted: bool = False,
    disabled: bool = False,
) -> int:
    async def insert(con):
        return await con.fetchval(
            "INSERT INTO destinations (owner_id, kind, target, secret, confirmed_at, deleted_at, "
            "disabled_at) VALUES ($1, $2, $3, 'whsec_x', CASE WHEN $4 THEN now() END, "
            "CASE WHEN $5 THEN now() END, CASE WHEN $6 THEN now() END) RETURNING id",
            owner,
            kind,
            target,
            confirmed,
            deleted,
            disabled,
        )

    return await store.bridge.run(insert)


def _fire(*alerts: Alert) -> Fire:
    return Fire(Tick("binance", "BTCUSDT", Decimal("101.5")), tuple(a.trigger() for a in alerts))


async def _queued(store: Store) -> list[tuple]:
    async def query(con):
        rows = await con.fetch("SELECT alert_id, channel, destination_id FROM outbox ORDER BY id")
        return [tuple(r) for r in rows]

    return await store.bridge.run(query)


async def test_a_fire_queues_account_channels_then_each_live_confirmed_destination(
    store: Store,
) -> None:
    with trio.fail_after(10):
        alice = await _user(store)
        bob = await _user(store, "bob")
        hook = await _destination(store, alice, "webhook", "https://example.com/a")
        mail = await _destination(store, alice, "email", "extra@example.com")
        await _destination(store, alice, "email", "pending@example.com", confirmed=False)
        await _destination(store, alice, "webhook", "https://example.com/gone", deleted=True)
        await _destination(store, alice, "webhook", "https://example.com/410", disabled=True)
        await _destination(store, alice, "chat", "ntfy://x")  # no such sink enabled
        await _destination(store, bob, "webhook", "https://example.com/bob")
        alert = await _alert(store, alice)
        assert await store.record_fires([_fire(alert)], ALL) == [alert.id]
        assert await _queued(store) == [
            (alert.id, "console", None),
            (alert.id, "email", None),
            (alert.id, "webhook", hook),
            (alert.id, "email", mail),
        ]


async def test_an_alerts_channels_narrow_what_it_queues(store: Store) -> None:
    with trio.fail_after(10):
        alice = await _user(store)
        hook = await _destination(store, alice, "webhook", "https://example.com/a")
        await _destination(store, alice, "email", "extra@example.com")
        only_hook = await _alert(store, alice, ["webhook"])
        only_console = await _alert(store, alice, ["console"])
        nothing = await _alert(store, alice, [])
        await store.record_fires([_fire(only_hook, only_console, nothing)], ALL)
        assert await _queued(store) == [
            (only_hook.id, "webhook", hook),
            (only_console.id, "console", None),
        ]


async def test_the_account_address_waits_for_its_confirmation_when_asked(store: Store) -> None:
    with trio.fail_after(10):
        alice = await _user(store)
        channels = FireChannels(account=("console", "email"), confirmed_account=("email",))
        first = await _alert(store, alice)
        await store.record_fires([_fire(first)], channels)
        assert [row[1] for row in await _queued(store)] == ["console"]
        await store.bridge.run(
            lambda con: con.execute(
                "UPDATE users SET email_confirmed_at = now() WHERE id = $1", alice
            )
        )
        second = await _alert(store, alice)
        await store.record_fires([_fire(second)], channels)
        assert [row[1] for row in await _queued(store)] == ["console", "console", "email"]


async def test_claims_lease_rows_so_a_second_claimer_skips_them(store: Store) -> None:
    with trio.fail_after(10):
        alice = await _user(store)
        hook = await _destination(store, alice, "webhook", "https://example.com/a")
        alerts = [await _alert(store, alice) for _ in range(5)]
        await store.record_fires([_fire(*alerts)], ALL)
        first = await store.outbox.claim("webhook", 3, lease_s=60)
        second = await store.outbox.claim("webhook", 10, lease_s=60)
        assert [c.note.alert_id for c in first] == [a.id for a in alerts[:3]]
        assert [c.note.alert_id for c in second] == [a.id for a in alerts[3:]]
        assert await store.outbox.claim("webhook", 10, lease_s=60) == []
        note = first[0].note
        assert note.channel == "webhook" and note.attempts == 0 and note.event == "fire"
        assert note.destination is not None
        assert (note.destination.id, note.destination.target) == (hook, "https://example.com/a")
        assert note.destination.secret == "whsec_x"
        assert note.data["triggered_price"] == "101.5"
        assert note.data["username"] == "alice"
        due = await store.outbox.next_due("webhook")
        assert due is not None and due > datetime.now(UTC) + timedelta(seconds=50)


async def test_concurrent_claims_never_take_one_row_twice(store: Store) -> None:
    with trio.fail_after(20):
        alice = await _user(store)
        alerts = [await _alert(store, alice) for _ in range(60)]
        await store.record_fires([_fire(*alerts)], ["console"])
        taken: list[int] = []

        async def claimer() -> None:
            while batch := await store.outbox.claim("console", 7, lease_s=60):
                taken.extend(c.note.id for c in batch)

        async with trio.open_nursery() as nursery:
            for _ in range(4):
                nursery.start_soon(claimer)
        assert sorted(taken) == sorted(set(taken)) and len(taken) == 60


async def test_settle_records_each_outcome_once_and_shows_it_to_the_owner(store: Store) -> None:
    with trio.fail_after(10):
        alice = await _user(store)
        alerts = [await _alert(store, alice) for _ in range(3)]
        await store.record_fires([_fire(*alerts)], ["console"])
        a, b, c = (x.note.id for x in await store.outbox.claim("console", 10, lease_s=0))
        soon = datetime.now(UTC) + timedelta(seconds=30)
        outcomes = Outcomes([a], [(b, "421 try later", soon)], [(c, "550 no such user")])
        assert await store.outbox.settle(outcomes) == (1, 1, 1)
        assert await store.outbox.settle(Outcomes([a], [], [(a, "late")])) == (0, 0, 0)
        assert await store.outbox.settle(Outcomes()) == (0, 0, 0)
        shown = await store.outbox.notifications_of([x.id for x in alerts])
        states = {n.id: (n.state, n.attempts, n.last_error) for ns in shown.values() for n in ns}
        assert states == {
            a: ("delivered", 1, None),
            b: ("pending", 1, "421 try later"),
            c: ("dead", 1, "550 no such user"),
        }
        assert shown[alerts[0].id][0].delivered_at is not None
        assert await store.outbox.claim("console", 10, lease_s=60) == []  # b is not due yet
        due = await store.outbox.next_due("console")
        assert due is not None and abs((due - soon).total_seconds()) < 1
        backlog = await store.outbox.backlog()
        assert list(backlog) == ["console"] and backlog["console"][0] == 1
        assert await store.outbox.notifications_of([]) == {}


async def test_a_claimed_row_of_a_deleted_or_disabled_destination_says_why(store: Store) -> None:
    with trio.fail_after(10):
        alice = await _user(store)
        gone = await _destination(store, alice, "webhook", "https://example.com/a")
        off = await _destination(store, alice, "webhook", "https://example.com/b")
        await store.record_fires([_fire(await _alert(store, alice))], ALL)

        async def change(con):
            await con.execute("UPDATE destinations SET deleted_at = now() WHERE id = $1", gone)

        await store.bridge.run(change)
        await store.outbox.disable_destination(off, "410 Gone")
        claimed = await store.outbox.claim("webhook", 10, lease_s=60)
        assert [(c.note.destination.id, c.dead_reason) for c in claimed] == [
            (gone, DESTINATION_GONE),
            (off, DESTINATION_DISABLED),
        ]
        # a disabled destination queues nothing more
        await store.record_fires([_fire(await _alert(store, alice))], ALL)
        assert await store.outbox.claim("webhook", 10, lease_s=60) == []
