"""Store.create_alerts (the batched create the web's group commit uses) and the listing count."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
import trio

from engine.model import Direction


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
