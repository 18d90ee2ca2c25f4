"""The start-up load through COPY, the restart that rebuilds the same book, and payloads of
awkward text."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import trio
import trio_asyncio

from engine.book.book import TriggerBook
from engine.config import DatabaseConfig
from engine.model import AlertStatus, Direction, Fire, Tick, Trigger
from engine.store import Store, open_store

ODD = ["tab\there", "back\\slash", "new\nline", "cr\rlf", "Ünï€ode 🚀", "quote\"'", "\\N", ""]


async def _populate(store: Store) -> set[int]:
    """Alerts over several exchanges, symbols and directions; some fired, some deleted.
    Returns the ids that must stay live."""
    owner = await store.create_user("restart", "restart@example.com", "h")
    alerts = []
    for i in range(60):
        alerts.append(
            await store.create_alert(
                owner.id,
                ["binance", "kraken", "okx"][i % 3],
                ["BTCUSDT", "ETHUSDT", "XBT/EUR", "SOL-USDT"][i % 4],
                Decimal(f"{100 + i * 7}.{i:03d}"),
                Direction.ABOVE if i % 2 else Direction.BELOW,
                f"alert {i}",
            )
        )
    fired = [a for a in alerts if a.id % 5 == 0]
    fires = [Fire(Tick(a.exchange, a.symbol, a.target_price), (a.trigger(),)) for a in fired]
    assert sorted(await store.record_fires(fires, ["console"])) == [a.id for a in fired]
    deleted = [a for a in alerts if a.id % 7 == 0 and a.id % 5]
    for alert in deleted:
        gone = await store.delete_alert(owner.id, alert.id)
        assert gone is not None and gone.status is AlertStatus.DELETED
    return {a.id for a in alerts} - {a.id for a in fired} - {a.id for a in deleted}


def _book(triggers: list[Trigger]) -> TriggerBook:
    book = TriggerBook()
    book.bulk_load(triggers)
    book._check()
    return book


async def test_a_restart_rebuilds_the_same_book(pg_dir: Path) -> None:
    config = DatabaseConfig(url="", data_dir=pg_dir, start_timeout_s=10.0)
    with trio.fail_after(90):
        async with trio_asyncio.open_loop(), open_store(config, pool_size=2) as store:
            live = await _populate(store)
            before = _book(await store.load_live_triggers())
        # the embedded server stopped with the store; this starts it again on the same data
        async with trio_asyncio.open_loop(), open_store(config, pool_size=2) as store:
            after = _book(await store.load_live_triggers())
            assert len(await store.pending_outbox()) == 12
    assert {t.id for t in before.snapshot()} == live
    assert after.snapshot() == before.snapshot()
    assert after.counts() == before.counts()
    assert len(after) == len(live) == 60 - 12 - 7  # 12 ids divisible by 5, 7 more by 7


async def test_odd_exchange_and_symbol_text_survives_the_load(store: Store) -> None:
    with trio.fail_after(20):
        owner = await store.create_user("odd", "odd@example.com", "h")
        made = [
            await store.create_alert(
                owner.id, f"ex{text}", text, Decimal("0.5") + n, Direction.ABOVE, ""
            )
            for n, text in enumerate(ODD)
        ]
        loaded = sorted(await store.load_live_triggers(), key=lambda t: t.id)
        assert loaded == [a.trigger() for a in made]


async def test_the_payload_quotes_any_text_and_channels_are_queued_once(store: Store) -> None:
    with trio.fail_after(20):
        owner = await store.create_user('o"dd\\\n', "é@example.com", "h")
        alerts = [
            await store.create_alert(
                owner.id, "binance", f"S{text}", Decimal("1.10"), Direction.BELOW, text
            )
            for text in ODD
        ]
        fire = Fire(
            Tick("binance", "S", Decimal("1.05"), exchange_time_ms=1_700_000_000_123),
            tuple(a.trigger() for a in alerts),
            fired_at_ms=1_700_000_001_456,
        )
        await store.record_fires([fire], ["email", "console", "email"])
        rows = await store.pending_outbox()
        assert [(r.alert_id, r.channel) for r in rows] == [
            (a.id, channel) for a in alerts for channel in ("email", "console")
        ]
        for row, alert in zip(rows[::2], alerts, strict=True):
            assert row.payload["name"] == alert.name
            assert row.payload["symbol"] == alert.symbol
            assert row.payload["username"] == 'o"dd\\\n'
            assert row.payload["email"] == "é@example.com"
            assert row.payload["target_price"] == "1.10"
            assert row.payload["triggered_price"] == "1.05"
            assert row.payload["triggered_at"] == "2023-11-14T22:13:21.456+00:00"
