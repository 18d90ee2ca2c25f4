"""Store.create_alerts (the batched create the web's group commit uses) and the listing count."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
import trio

from engine.model import Direction, Fire, Tick


async def test_create_alerts_keeps_the_order_given(store: Any) -> None:
    with trio.fail_after(20):
        a = (await store.create_user("a", "a@example.com", "x")).id
        b = (await store.create_user("b", "b@example.com", "x")).id
        rows = [
            (
                a if i % 2 else b,
                "binance",
                f"S{i}",
                Decimal(f"{i + 1}.25"),
                Direction.BELOW,
                f"n{i}",
            )
            for i in range(50)
        ]
        alerts = await store.create_alerts(rows)
        assert [(x.owner_id, x.symbol, x.target_price, x.name) for x in alerts] == [
            (r[0], r[2], r[3], r[5]) for r in rows
        ]
        assert [x.id for x in alerts] == sorted(x.id for x in alerts)
        assert await store.create_alerts([]) == []
        count, page = await store.list_alerts(a, limit=10, offset=0)
        assert (count, [x.symbol for x in page][:2]) == (25, ["S49", "S47"])
        assert await store.list_alerts(a, limit=10, offset=30) == (25, [])
        assert await store.list_alerts(a, symbol="nope", limit=10, offset=0) == (0, [])


@pytest.mark.parametrize("target", [Decimal(0), Decimal(-1), Decimal("NaN"), 1.5])
async def test_create_alerts_refuses_a_bad_target_and_writes_nothing(
    store: Any, target: Any
) -> None:
    with trio.fail_after(20):
        a = (await store.create_user("a", "a@example.com", "x")).id
        good = (a, "binance", "BTCUSDT", Decimal(1), Direction.ABOVE, "")
        with pytest.raises(ValueError, match="target_price"):
            await store.create_alerts(
                [good, (a, "binance", "BTCUSDT", target, Direction.ABOVE, "")]
            )
        assert await store.list_alerts(a) == (0, [])


async def test_list_alert_pages_matches_list_alerts_per_owner(store: Any) -> None:
    with trio.fail_after(20):
        a = (await store.create_user("a", "a@example.com", "x")).id
        b = (await store.create_user("b", "b@example.com", "x")).id
        nobody = (await store.create_user("c", "c@example.com", "x")).id
        await store.create_alerts(
            [(a, "binance", f"A{i}", Decimal(i + 1), Direction.ABOVE, "") for i in range(7)]
            + [(b, "binance", f"B{i}", Decimal(i + 1), Direction.BELOW, "") for i in range(3)]
        )
        asks = [(a, 3, 0), (b, 10, 0), (a, 3, 6), (nobody, 5, 0), (a, 3, 9), (b, 2, 1)]
        pages = await store.list_alert_pages(asks)
        for (owner, limit, offset), page in zip(asks, pages, strict=True):
            assert page == await store.list_alerts(owner, limit=limit, offset=offset)
        assert [x.symbol for x in pages[0][1]] == ["A6", "A5", "A4"]
        assert pages[4] == (7, []) and pages[3] == (0, [])
        assert await store.list_alert_pages([]) == []


async def test_the_listing_total_follows_every_way_alerts_come_and_go(store: Any) -> None:
    """The batched listing reads each owner's kept total (migration 0004); it must equal a count
    of the rows after single and batched creates, concurrent batches, deletes and fires."""
    with trio.fail_after(30):
        a = (await store.create_user("a", "a@example.com", "x")).id
        b = (await store.create_user("b", "b@example.com", "x")).id

        async def totals() -> list[int]:
            return [total for total, _ in await store.list_alert_pages([(a, 1, 0), (b, 1, 0)])]

        async def counted() -> list[int]:
            return [(await store.list_alerts(owner, limit=1))[0] for owner in (a, b)]

        assert await totals() == [0, 0]
        first = await store.create_alert(a, "binance", "BTCUSDT", Decimal("1"), Direction.ABOVE)
        assert await totals() == await counted() == [1, 0]

        def rows(owner: int, n: int) -> list[tuple]:
            return [
                (owner, "binance", f"S{i}", Decimal(i + 1), Direction.BELOW, "") for i in range(n)
            ]

        async with trio.open_nursery() as nursery:  # batches locking both owners at once
            for _ in range(4):
                nursery.start_soon(store.create_alerts, rows(b, 5) + rows(a, 3))
                nursery.start_soon(store.create_alerts, rows(a, 2) + rows(b, 1))
        assert await totals() == await counted() == [1 + 4 * 5, 4 * 6]
        await store.delete_alert(a, first.id)
        tick = Tick("binance", "S0", Decimal("0.5"))
        (fired,) = (await store.list_alerts(b, limit=1))[1]
        await store.record_fires([Fire(tick, (fired.trigger(),))], [])
        assert await totals() == await counted() == [21, 24]  # a delete or a fire keeps the row
