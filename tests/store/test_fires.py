"""Fires: recorded in one statement per batch, exactly once, racing deletes; the outbox; the
start-up load."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import trio

from engine.model import Alert, AlertStatus, Direction, Fire, Tick
from engine.store import Store

CHANNELS = ["console", "email"]


async def _alerts(store: Store, n: int, symbol: str = "BTCUSDT") -> list[Alert]:
    owner = await store.create_user("alice", "alice@example.com", "h")
    return [
        await store.create_alert(
            owner.id, "binance", symbol, Decimal(100 + i), Direction.ABOVE, f"a{i}"
        )
        for i in range(n)
    ]


async def _bulk_alerts(store: Store, n: int) -> list[int]:
    """``n`` live alerts inserted with one COPY (fast set-up for the big batches)."""
    owner = await store.create_user("bulk", "bulk@example.com", "h")

    async def copy(con):
        await con.copy_records_to_table(
            "alerts",
            records=[(owner.id, "binance", "BTCUSDT", Decimal(i + 1), "above") for i in range(n)],
            columns=["owner_id", "exchange", "symbol", "target_price", "direction"],
        )
        return [row[0] for row in await con.fetch("SELECT id FROM alerts ORDER BY id")]

    return await store.bridge.run(copy)


def _fire(alerts: list[Alert], price: str, exchange_time_ms: int = 0, fired_at_ms: int = 0) -> Fire:
    tick = Tick("binance", "BTCUSDT", Decimal(price), exchange_time_ms=exchange_time_ms)
    return Fire(tick, tuple(a.trigger() for a in alerts), fired_at_ms=fired_at_ms)


async def _outbox(store: Store) -> list[tuple]:
    async def query(con):
        rows = await con.fetch("SELECT alert_id, channel, payload FROM outbox ORDER BY id")
        return [tuple(r) for r in rows]

    return await store.bridge.run(query)


async def test_a_fire_marks_triggered_and_queues_one_row_per_channel(store: Store) -> None:
    with trio.fail_after(10):
        alerts = await _alerts(store, 3)
        moment = datetime(2024, 5, 1, 12, 0, 0, 123000, tzinfo=UTC)
        ms = int(moment.timestamp() * 1000)
        tick_ms = ms - 1500  # the exchange's time of the tick: its own column (tick_time)
        marked = await store.record_fires(
            [_fire(alerts[:2], "101.50", tick_ms, fired_at_ms=ms)], CHANNELS
        )
        assert marked == [alerts[0].id, alerts[1].id]

        fired = await store.get_alert(alerts[0].owner_id, alerts[0].id)
        assert fired is not None and fired.status is AlertStatus.TRIGGERED
        assert fired.triggered_price == Decimal("101.50") and fired.triggered_at == moment
        assert fired.tick_time == moment - timedelta(milliseconds=1500)
        untouched = await store.get_alert(alerts[2].owner_id, alerts[2].id)
        assert untouched is not None and untouched.status is AlertStatus.CREATED

        rows = await _outbox(store)
        assert [(r[0], r[1]) for r in rows] == [
            (alerts[0].id, "console"),
            (alerts[0].id, "email"),
            (alerts[1].id, "console"),
            (alerts[1].id, "email"),
        ]
        payload = rows[0][2]
        assert payload["alert_id"] == alerts[0].id
        assert (payload["username"], payload["email"]) == ("alice", "alice@example.com")
        assert (payload["exchange"], payload["symbol"]) == ("binance", "BTCUSDT")
        assert payload["direction"] == "above" and payload["name"] == "a0"
        assert payload["target_price"] == "100" and payload["triggered_price"] == "101.50"
        assert datetime.fromisoformat(payload["triggered_at"]) == moment


async def test_a_tick_without_exchange_time_uses_the_commit_time(store: Store) -> None:
    with trio.fail_after(10):
        (alert,) = await _alerts(store, 1)
        before = datetime.now(UTC) - timedelta(seconds=5)
        await store.record_fires([_fire([alert], "100")], [])
        fired = await store.get_alert(alert.owner_id, alert.id)
        assert fired is not None and fired.triggered_at is not None
        assert before < fired.triggered_at < datetime.now(UTC) + timedelta(seconds=5)
        assert await _outbox(store) == []


async def test_recording_twice_changes_nothing_the_second_time(store: Store) -> None:
    with trio.fail_after(10):
        alerts = await _alerts(store, 2)
        fire = _fire(alerts, "150")
        assert await store.record_fires([fire], CHANNELS) == [a.id for a in alerts]
        assert await store.record_fires([fire, fire], CHANNELS) == []
        assert len(await _outbox(store)) == 4
        assert await store.record_fires([], CHANNELS) == []


async def test_a_deleted_alert_does_not_fire(store: Store) -> None:
    with trio.fail_after(10):
        alerts = await _alerts(store, 2)
        await store.delete_alert(alerts[0].owner_id, alerts[0].id)
        assert await store.record_fires([_fire(alerts, "150")], CHANNELS) == [alerts[1].id]
        deleted = await store.delete_alert(alerts[1].owner_id, alerts[1].id)
        assert deleted is not None and deleted.status is AlertStatus.TRIGGERED
        assert {r[0] for r in await _outbox(store)} == {alerts[1].id}


async def test_ten_thousand_fires_in_one_commit(store: Store) -> None:
    with trio.fail_after(60):
        ids = await _bulk_alerts(store, 10_000)
        fires = [
            Fire(Tick("binance", "BTCUSDT", Decimal(i + 1)), (trigger,))
            for i, trigger in enumerate(await store.load_live_triggers())
        ]
        assert len(fires) == 10_000
        assert sorted(await store.record_fires(fires, CHANNELS)) == ids

        async def check(con):
            return await con.fetchrow(
                "SELECT count(*), count(DISTINCT xmin::text), "
                "       count(*) FILTER (WHERE triggered_price = target_price) "
                "FROM alerts WHERE status = 'triggered'"
            ), await con.fetchrow("SELECT count(*), count(DISTINCT xmin::text) FROM outbox")

        alerts_row, outbox_row = await store.bridge.run(check)
        # one transaction wrote every row: they all carry the same xmin
        assert tuple(alerts_row) == (10_000, 1, 10_000)
        assert tuple(outbox_row) == (20_000, 1)
        assert await store.load_live_triggers() == []


async def test_a_fire_and_a_delete_that_race_leave_one_winner(store: Store) -> None:
    alerts = await _alerts(store, 120)
    owner_id = alerts[0].owner_id
    marked: list[int] = []
    deletes: dict[int, Alert | None] = {}

    async def fire_in_batches() -> None:
        for start in range(0, len(alerts), 8):
            marked.extend(
                await store.record_fires([_fire(alerts[start : start + 8], "999")], CHANNELS)
            )

    async def delete_each() -> None:
        for alert in reversed(alerts):
            deletes[alert.id] = await store.delete_alert(owner_id, alert.id)

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(fire_in_batches)
            nursery.start_soon(delete_each)
        _, final = await store.list_alerts(owner_id, limit=1000)

    triggered = {a.id for a in final if a.status is AlertStatus.TRIGGERED}
    deleted = {a.id for a in final if a.status is AlertStatus.DELETED}
    assert triggered and deleted, "the two writers never met"
    assert triggered | deleted == {a.id for a in alerts} and not triggered & deleted
    assert set(marked) == triggered and len(marked) == len(triggered)
    for alert_id, seen in deletes.items():
        assert seen is not None
        assert seen.status is (
            AlertStatus.TRIGGERED if alert_id in triggered else AlertStatus.DELETED
        )
    rows = await _outbox(store)
    assert sorted(r[0] for r in rows) == sorted(2 * list(triggered))


async def test_load_live_triggers_returns_exactly_the_created_alerts(store: Store) -> None:
    with trio.fail_after(10):
        alerts = await _alerts(store, 5)
        await store.record_fires([_fire(alerts[:1], "500")], [])
        await store.delete_alert(alerts[1].owner_id, alerts[1].id)
        live = await store.load_live_triggers()
        assert sorted(live, key=lambda t: t.id) == [a.trigger() for a in alerts[2:]]
        assert all(isinstance(t.direction, Direction) for t in live)


async def test_pending_outbox_is_due_undelivered_oldest_first(store: Store) -> None:
    with trio.fail_after(10):
        alerts = await _alerts(store, 3)
        await store.record_fires([_fire(alerts, "500")], ["console"])
        first, second, third = await store.pending_outbox()
        assert [r.alert_id for r in (first, second, third)] == [a.id for a in alerts]
        assert first.channel == "console" and first.attempts == 0 and first.delivered_at is None
        assert first.payload["alert_id"] == alerts[0].id

        assert await store.mark_delivered([first.id]) == 1
        assert await store.mark_delivered([first.id]) == 0
        assert await store.mark_delivered([]) == 0
        later = datetime.now(UTC) + timedelta(hours=1)
        await store.mark_failed(second.id, "smtp said no", later)
        assert [r.id for r in await store.pending_outbox()] == [third.id]
        assert [r.id for r in await store.pending_outbox(limit=0)] == []

        await store.mark_failed(third.id, "x" * 5000, datetime.now(UTC) - timedelta(seconds=1))
        (again,) = await store.pending_outbox()
        assert again.id == third.id and again.attempts == 1 and again.last_error == "x" * 2000


async def test_an_alert_twice_in_one_batch_is_queued_once_per_channel(store: Store) -> None:
    with trio.fail_after(10):
        alerts = await _alerts(store, 2)
        first, again = _fire(alerts, "150"), _fire(alerts[:1], "151")
        assert await store.record_fires([first, again], CHANNELS) == [a.id for a in alerts]
        rows = await _outbox(store)
        assert [(r[0], r[1]) for r in rows] == [(a.id, c) for a in alerts for c in CHANNELS]
