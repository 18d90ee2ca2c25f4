"""Filtered listing pages (Store.list_alerts) against a plain reading of every row, and the
tallies (migration 0007) that give their counts, through creates, fires and deletes."""

from __future__ import annotations

import itertools
import random
from decimal import Decimal
from typing import Any

import pytest
import trio

from engine.limits import MAX_LIST_OFFSET
from engine.model import Alert, AlertStatus, Direction, Fire, Tick
from engine.store import Store, queries

# (exchange, symbol): one coin spelt three ways, and a spelling two exchanges share
PAIRS = [
    ("binance", "SOLUSDT"),
    ("okx", "SOL-USDT"),
    ("kraken", "SOL/USDT"),
    ("binance", "BTCUSDT"),
    ("okx", "BTCUSDT"),
    ("binance", "ETHUSDT"),
]
SPELLINGS = ["SOLUSDT", "SOL-USDT", "SOL/USDT"]


async def _every_row(store: Store, owner: int) -> list[Alert]:
    """The owner's alerts, newest first, read plainly (no index choice, no tallies)."""
    _, alerts = await store.list_alerts(owner, limit=10_000)
    return alerts


async def _tallies_match_the_rows(store: Store) -> None:
    async def read(con: Any) -> tuple[list[Any], list[Any]]:
        kept = await con.fetch("SELECT * FROM alert_tallies ORDER BY 1, 2, 3, 4")
        counted = await con.fetch(
            "SELECT owner_id, status, exchange, symbol, count(*) FROM alerts "
            "GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4"
        )
        return kept, counted

    kept, counted = await store.bridge.run(read)
    assert [tuple(r) for r in kept] == [tuple(r) for r in counted]


async def _populate(store: Store, seed: int) -> tuple[int, int]:
    rng = random.Random(seed)
    owner = (await store.create_user("owner", "o@example.com", "x")).id
    other = (await store.create_user("other", "p@example.com", "x")).id
    for _ in range(4):  # batches, so created_at ties within one and differs between them
        rows = []
        for i in range(40):
            exchange, symbol = rng.choice(PAIRS)
            who = owner if rng.random() < 0.8 else other
            rows.append((who, exchange, symbol, Decimal(i + 1), Direction.ABOVE, f"n{i}"))
        await store.create_alerts(rows)
        await _tallies_match_the_rows(store)
    alerts = await _every_row(store, owner) + await _every_row(store, other)
    rng.shuffle(alerts)
    fired = alerts[: len(alerts) // 3]
    for alert in fired[:5]:  # one by one, and then a batch
        await store.record_fires(
            [Fire(Tick(alert.exchange, alert.symbol, Decimal(1)), (alert.trigger(),))], []
        )
    batch = [Fire(Tick(a.exchange, a.symbol, Decimal(1)), (a.trigger(),)) for a in fired[5:]]
    await store.record_fires(batch, ["console"])
    await _tallies_match_the_rows(store)
    for alert in alerts[len(alerts) // 3 : len(alerts) // 2]:
        await store.delete_alert(alert.owner_id, alert.id)
    await store.delete_alert(fired[0].owner_id, fired[0].id)  # fired already: no change
    await _tallies_match_the_rows(store)
    return owner, other


def _plain(
    rows: list[Alert], status: str | None, exchange: str | None, symbols: list[str] | None
) -> list[Alert]:
    return [
        a
        for a in rows
        if (status is None or a.status.value == status)
        and (exchange is None or a.exchange == exchange)
        and (symbols is None or a.symbol in symbols)
    ]


@pytest.mark.parametrize("merge_max", [queries.MERGE_MAX, 1])
async def test_every_filter_and_page_matches_a_plain_reading(
    store: Store, monkeypatch: pytest.MonkeyPatch, merge_max: int
) -> None:
    """Every combination of status, exchange and symbols, at several depths; with
    ``merge_max`` 1 most pages take the fallback walk instead of the merge."""
    monkeypatch.setattr(queries, "MERGE_MAX", merge_max)
    with trio.fail_after(60):
        owner, other = await _populate(store, seed=12)
        everything = await _every_row(store, owner)
        assert len({a.status for a in everything}) == 3
        statuses = [None, *(s.value for s in AlertStatus)]
        exchanges = [None, "binance", "okx", "kraken", "nowhere"]
        symbol_sets = [None, ["BTCUSDT"], SPELLINGS, ["SOLUSDT", "BTCUSDT"], ["NOPE"]]
        for status, exchange, symbols in itertools.product(statuses, exchanges, symbol_sets):
            want = _plain(everything, status, exchange, symbols)
            for offset in sorted({0, 3, 7, max(0, len(want) - 2), len(want), len(want) + 5}):
                got = await store.list_alerts(
                    owner,
                    status=status,
                    exchange=exchange,
                    symbols=symbols,
                    limit=7,
                    offset=offset,
                )
                assert got == (len(want), want[offset : offset + 7]), (status, exchange, symbols)
        # one symbol as before, and another owner's alerts never show
        count, page = await store.list_alerts(owner, symbol="BTCUSDT", exchange="okx", limit=50)
        assert page == _plain(everything, None, "okx", ["BTCUSDT"]) and count == len(page)
        theirs = await _every_row(store, other)
        assert await store.list_alerts(other, symbols=SPELLINGS, limit=100) == (
            len(_plain(theirs, None, None, SPELLINGS)),
            _plain(theirs, None, None, SPELLINGS),
        )


async def test_pages_are_bounded_in_depth(store: Store) -> None:
    with trio.fail_after(20):
        owner = (await store.create_user("owner", "o@example.com", "x")).id
        await store.create_alerts(
            [(owner, "binance", "BTCUSDT", Decimal(1), Direction.ABOVE, "")] * 3
        )
        for filters in ({}, {"status": "created"}, {"symbols": ["BTCUSDT"]}):
            assert await store.list_alerts(owner, offset=MAX_LIST_OFFSET, **filters) == (3, [])
            with pytest.raises(ValueError, match="offset"):
                await store.list_alerts(owner, offset=MAX_LIST_OFFSET + 1, **filters)
            with pytest.raises(ValueError, match="offset"):
                await store.list_alerts(owner, offset=-1, **filters)
        with pytest.raises(ValueError, match="symbol or symbols"):
            await store.list_alerts(owner, symbol="BTCUSDT", symbols=["BTCUSDT"])
