"""A fire is dated when the engine fired it; the exchange's time of the tick is kept apart.

A replay of ticks recorded in 2023 fires alerts today: ``triggered_at`` is today (the book
actor's wall clock, ``Fire.fired_at_ms``), ``tick_time`` is 2023.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from decimal import Decimal

import trio

from engine.model import Direction, Fire, Tick
from engine.store import Store

TICK_2023 = datetime(2023, 3, 1, 9, 30, 0, 250000, tzinfo=UTC)


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


async def test_a_replayed_tick_fires_today_and_keeps_its_own_time(store: Store) -> None:
    with trio.fail_after(10):
        owner = await store.create_user("alice", "a@example.com", "h")
        alert = await store.create_alert(
            owner.id, "binance", "BTCUSDT", Decimal(100), Direction.ABOVE, "replayed"
        )
        fired_at = datetime.now(UTC).replace(microsecond=123000)
        tick = Tick("binance", "BTCUSDT", Decimal("100.5"), exchange_time_ms=_ms(TICK_2023))
        fire = Fire(tick, (alert.trigger(),), fired_at_ms=_ms(fired_at))
        assert await store.record_fires([fire], ["console"]) == [alert.id]

        got = await store.get_alert(owner.id, alert.id)
        assert got is not None
        assert got.triggered_at == fired_at
        assert got.tick_time == TICK_2023
        assert got.triggered_price == Decimal("100.5")
        (row,) = await store.pending_outbox()
        assert row.payload["triggered_at"].startswith(fired_at.strftime("%Y-%m-%dT%H:%M:%S.123"))


async def test_a_tick_without_a_time_has_no_tick_time(store: Store) -> None:
    with trio.fail_after(10):
        owner = await store.create_user("alice", "a@example.com", "h")
        alert = await store.create_alert(
            owner.id, "binance", "BTCUSDT", Decimal(100), Direction.ABOVE
        )
        before = datetime.now(UTC)
        # neither a tick time nor a fire time (a caller that sets none): the commit's time
        await store.record_fires(
            [Fire(Tick("binance", "BTCUSDT", Decimal(101)), (alert.trigger(),))], ["console"]
        )
        got = await store.get_alert(owner.id, alert.id)
        assert got is not None and got.tick_time is None
        assert got.triggered_at is not None and got.triggered_at >= before.replace(microsecond=0)


async def test_an_alert_not_fired_has_no_tick_time(store: Store) -> None:
    with trio.fail_after(10):
        owner = await store.create_user("alice", "a@example.com", "h")
        alert = await store.create_alert(
            owner.id, "binance", "BTCUSDT", Decimal(100), Direction.ABOVE
        )
        assert alert.tick_time is None and alert.triggered_at is None
        # appended after the older columns (then channels, 0008): positional code reading
        # the older columns keeps working
        assert list(type(alert).__struct_fields__)[-2:] == ["tick_time", "channels"]


def test_fire_times_are_wall_clock_milliseconds() -> None:
    now_ms = time.time_ns() // 1_000_000
    fire = Fire(Tick("binance", "BTCUSDT", Decimal(1)), (), fired_at_ms=now_ms)
    assert fire.fired_at_ms == now_ms and Fire(fire.tick, ()).fired_at_ms == 0
