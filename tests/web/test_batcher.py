"""The create batcher (web/batcher.py): group commit, per-row refusals and errors, the per-user
limits under concurrency, shutdown."""

from __future__ import annotations

from decimal import Decimal
from functools import partial
from typing import Any

import pytest
import trio
import trio.testing

from engine.config import LimitsConfig
from engine.errors import (
    LimitReached,
    ShuttingDown,
    StoreRefused,
    StoreUnavailable,
    Unauthorized,
)
from engine.model import AddTrigger, BookCommand, Direction
from web.batcher import CreateBatcher


class CountingStore:
    """The real store, counting ``create_alerts`` calls and their sizes; can be made to fail."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.sizes: list[int] = []
        self.unavailable = False
        self.broken = False

    async def create_alerts(self, rows: Any, **limits: Any) -> Any:
        self.sizes.append(len(rows))
        if self.unavailable:
            raise StoreUnavailable("the database is unavailable (test)")
        if self.broken:
            raise RuntimeError("a bug in the store (test)")
        return await self.store.create_alerts(rows, **limits)


async def _queued_then_run(batcher: Any, calls: list[Any]) -> None:
    """Queue every call before the batcher runs (so they batch as queued), then run them all."""
    async with trio.open_nursery() as nursery:
        async with trio.open_nursery() as clients:
            for call in calls:
                clients.start_soon(call)
            await trio.testing.wait_all_tasks_blocked()
            await nursery.start(batcher.run)
        nursery.cancel_scope.cancel()


def _drain(receive: trio.MemoryReceiveChannel[BookCommand]) -> list[BookCommand]:
    commands = []
    while True:
        try:
            commands.append(receive.receive_nowait())
        except trio.WouldBlock:
            return commands


async def _owner(store: Any, name: str) -> int:
    user = await store.create_user(name, f"{name}@example.com", "x")
    return int(user.id)


async def test_concurrent_creates_share_a_commit_and_keep_their_rows(store: Any) -> None:
    with trio.fail_after(30):
        owners = [await _owner(store, f"u{i}") for i in range(3)]
        counting = CountingStore(store)
        send, receive = trio.open_memory_channel[BookCommand](1000)
        batcher = CreateBatcher(counting, send)  # type: ignore[arg-type]
        got: dict[int, Any] = {}

        async def create(i: int) -> None:
            got[i] = await batcher.create(
                owners[i % 3],
                "binance",
                "BTCUSDT",
                Decimal(f"{100 + i}.5"),
                Direction.ABOVE,
                str(i),
            )

        async with trio.open_nursery() as nursery:
            await nursery.start(batcher.run)
            async with trio.open_nursery() as clients:
                for i in range(60):
                    clients.start_soon(create, i)
            nursery.cancel_scope.cancel()

        assert sum(counting.sizes) == 60
        assert len(counting.sizes) < 60  # some creates shared a statement
        for i, alert in got.items():
            assert (alert.owner_id, alert.name) == (owners[i % 3], str(i))
            assert alert.target_price == Decimal(f"{100 + i}.5")
            assert await store.get_alert(owners[i % 3], alert.id) == alert
        commands = []
        while True:
            try:
                commands.append(receive.receive_nowait())
            except trio.WouldBlock:
                break
        assert all(isinstance(c, AddTrigger) for c in commands)
        assert sorted(c.trigger.id for c in commands) == sorted(a.id for a in got.values())


async def test_a_token_whose_user_is_gone_fails_only_its_own_request(store: Any) -> None:
    """Issue 12 case 3: the missing owner was a foreign-key error (a 500) that made the whole
    batch retry row by row. Now its request alone gets Unauthorized, in one statement."""
    with trio.fail_after(30):
        owner = await _owner(store, "alice")
        counting = CountingStore(store)
        send, receive = trio.open_memory_channel[BookCommand](1000)
        batcher = CreateBatcher(counting, send)  # type: ignore[arg-type]
        outcomes: dict[int, Any] = {}

        async def create(i: int, owner_id: int) -> None:
            try:
                outcomes[i] = await batcher.create(
                    owner_id, "binance", "ETHUSDT", Decimal("10"), Direction.BELOW
                )
            except Unauthorized as exc:
                outcomes[i] = exc

        # id 999999 is nobody; all 20 queued first: one batch
        calls = [partial(create, i, 999_999 if i == 7 else owner) for i in range(20)]
        await _queued_then_run(batcher, calls)

        assert counting.sizes == [20]  # one statement, no retry row by row
        refused = outcomes.pop(7)
        assert isinstance(refused, Unauthorized) and "no longer exists" in str(refused)
        assert all(a.owner_id == owner for a in outcomes.values())
        count, _ = await store.list_alerts(owner)
        assert count == 19
        added = _drain(receive)
        assert sorted(c.trigger.id for c in added) == sorted(a.id for a in outcomes.values())


async def test_a_value_the_database_refuses_fails_only_its_own_request(store: Any) -> None:
    """A batch the database refuses as a whole (StoreRefused) is split: the bad row's request
    gets the refusal, every other row is written."""
    with trio.fail_after(30):
        owner = await _owner(store, "erin")
        counting = CountingStore(store)
        send, receive = trio.open_memory_channel[BookCommand](1000)
        batcher = CreateBatcher(counting, send)  # type: ignore[arg-type]
        outcomes: dict[int, Any] = {}

        async def create(i: int) -> None:
            name = "nul\x00byte" if i == 3 else f"n{i}"  # Postgres text cannot hold NUL
            try:
                outcomes[i] = await batcher.create(
                    owner, "binance", "ETHUSDT", Decimal(i + 1), Direction.BELOW, name
                )
            except StoreRefused as exc:
                outcomes[i] = exc

        await _queued_then_run(batcher, [partial(create, i) for i in range(6)])

        assert counting.sizes == [6, 1, 1, 1, 1, 1, 1]
        assert isinstance(outcomes.pop(3), StoreRefused)
        assert sorted(a.name for a in outcomes.values()) == ["n0", "n1", "n2", "n4", "n5"]
        assert (await store.list_alerts(owner))[0] == 5
        assert len(_drain(receive)) == 5


async def test_any_other_error_goes_to_every_request_of_the_batch(store: Any) -> None:
    with trio.fail_after(30):
        owner = await _owner(store, "frank")
        counting = CountingStore(store)
        counting.broken = True
        send, receive = trio.open_memory_channel[BookCommand](10)
        batcher = CreateBatcher(counting, send)  # type: ignore[arg-type]
        failures: list[BaseException] = []

        async def create() -> None:
            with pytest.raises(RuntimeError, match="a bug") as caught:
                await batcher.create(owner, "binance", "BTCUSDT", Decimal("1"), Direction.ABOVE)
            failures.append(caught.value)

        await _queued_then_run(batcher, [create] * 4)
        assert len(failures) == 4 and counting.sizes == [4]  # never retried one by one
        assert _drain(receive) == []


async def test_the_limits_hold_for_concurrent_creates_of_one_owner(store: Any) -> None:
    """Many creates of one owner in one batch and in batches after it: exactly the limit is
    written, the rest get LimitReached naming the field, and nothing else changes."""
    with trio.fail_after(30):
        owner = await _owner(store, "gina")
        other = await _owner(store, "hugo")
        counting = CountingStore(store)
        send, receive = trio.open_memory_channel[BookCommand](1000)
        limits = LimitsConfig(max_live_alerts=10, max_symbols=3)
        batcher = CreateBatcher(counting, send, max_batch=8, limits=limits)  # type: ignore[arg-type]
        outcomes: dict[int, Any] = {}

        async def create(i: int, owner_id: int, symbol: str) -> None:
            try:
                outcomes[i] = await batcher.create(
                    owner_id, "binance", symbol, Decimal(i + 1), Direction.ABOVE, str(i)
                )
            except LimitReached as exc:
                outcomes[i] = exc

        # five symbols for gina (only three may be live), then hugo, who has room
        calls = [partial(create, i, owner, f"S{i % 5}") for i in range(40)]
        calls += [partial(create, i, other, f"S{i % 3}") for i in range(40, 45)]
        await _queued_then_run(batcher, calls)

        assert len(counting.sizes) > 1  # several batches, some of them full of gina
        theirs = {i: outcomes[i] for i in range(40)}
        written = [a for a in theirs.values() if not isinstance(a, Exception)]
        refused = [e for e in theirs.values() if isinstance(e, Exception)]
        assert len(written) == 10 and len(refused) == 30
        assert len({a.symbol for a in written}) == 3
        assert {e.field for e in refused} <= {None, "symbol"}
        assert any(e.field == "symbol" and "3 distinct symbols" in e.detail for e in refused)
        assert any(e.field is None and "10 live alerts" in e.detail for e in refused)
        assert all(not isinstance(outcomes[i], Exception) for i in range(40, 45))
        assert (await store.list_alerts(owner))[0] == 10
        assert (await store.list_alerts(other))[0] == 5
        assert len(_drain(receive)) == 15


async def test_an_unavailable_store_fails_the_batch(store: Any) -> None:
    with trio.fail_after(30):
        owner = await _owner(store, "bob")
        counting = CountingStore(store)
        counting.unavailable = True
        send, receive = trio.open_memory_channel[BookCommand](10)
        batcher = CreateBatcher(counting, send)  # type: ignore[arg-type]
        failures: list[StoreUnavailable] = []

        async def create() -> None:
            with pytest.raises(StoreUnavailable) as caught:
                await batcher.create(owner, "binance", "BTCUSDT", Decimal("1"), Direction.ABOVE)
            failures.append(caught.value)

        async with trio.open_nursery() as nursery:
            await nursery.start(batcher.run)
            async with trio.open_nursery() as clients:
                for _ in range(5):
                    clients.start_soon(create)
            nursery.cancel_scope.cancel()
        assert len(failures) == 5
        assert sum(counting.sizes) == 5  # tried once each, never retried one by one
        with pytest.raises(trio.WouldBlock):
            receive.receive_nowait()


async def test_a_stopped_batcher_refuses_and_fails_what_was_queued(store: Any) -> None:
    with trio.fail_after(30):
        owner = await _owner(store, "carol")
        send, _receive = trio.open_memory_channel[BookCommand](10)
        batcher = CreateBatcher(store, send)
        queued: list[BaseException] = []

        async def create() -> None:
            try:
                await batcher.create(owner, "binance", "BTCUSDT", Decimal("1"), Direction.ABOVE)
            except StoreUnavailable as exc:
                queued.append(exc)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(create)  # queued before the batcher ever runs
            await trio.testing.wait_all_tasks_blocked()
            with trio.CancelScope() as scope:
                scope.cancel()
                await batcher.run()
        assert len(queued) == 1
        with pytest.raises(StoreUnavailable, match="shutting down"):
            await batcher.create(owner, "binance", "BTCUSDT", Decimal("1"), Direction.ABOVE)
        count, _ = await store.list_alerts(owner)
        assert count == 0


async def test_concurrent_lists_share_a_read_and_match_the_store(store: Any) -> None:
    from web.batcher import ListBatcher

    with trio.fail_after(30):
        owners = [await _owner(store, f"l{i}") for i in range(4)]
        await store.create_alerts(
            [
                (owners[i % 4], "binance", "BTCUSDT", Decimal(i + 1), Direction.ABOVE, "")
                for i in range(30)
            ]
        )
        calls: list[int] = []

        class Counting:
            async def list_alert_pages(self, pages: Any) -> Any:
                calls.append(len(pages))
                return await store.list_alert_pages(pages)

        batcher = ListBatcher(Counting())  # type: ignore[arg-type]
        got: dict[int, Any] = {}

        async def page(i: int) -> None:
            got[i] = await batcher.page(owners[i % 4], 3, i % 3)

        async with trio.open_nursery() as nursery:
            await nursery.start(batcher.run)
            async with trio.open_nursery() as clients:
                for i in range(40):
                    clients.start_soon(page, i)
            nursery.cancel_scope.cancel()
        assert sum(calls) == 40 and len(calls) < 40
        for i, result in got.items():
            assert result == await store.list_alerts(owners[i % 4], limit=3, offset=i % 3)


async def test_a_book_that_is_gone_still_answers_the_committed_alert(store: Any) -> None:
    # The book stopped (its command channel closed) while the web still takes creates: a
    # committed row is answered with its alert (a 201, never a 500 a client would retry into a
    # duplicate); it is ``created``, so the next start loads it into the book.
    with trio.fail_after(30):
        owner = await _owner(store, "dora")
        send, receive = trio.open_memory_channel[BookCommand](10)
        batcher = CreateBatcher(store, send)
        async with trio.open_nursery() as nursery:
            await nursery.start(batcher.run)
            await receive.aclose()  # the book stopped listening
            first = await batcher.create(owner, "binance", "BTCUSDT", Decimal("1"), Direction.ABOVE)
            send.close()  # the sender's side closed too: ClosedResourceError, same answer
            second = await batcher.create(
                owner, "binance", "BTCUSDT", Decimal("2"), Direction.ABOVE
            )
            nursery.cancel_scope.cancel()
        count, alerts = await store.list_alerts(owner)
        assert count == 2
        assert {a.id for a in alerts} == {first.id, second.id}
        assert len(await store.load_live_triggers()) == 2  # loaded at the next start


async def test_stop_taking_refuses_new_creates_and_commits_the_queued_ones(store: Any) -> None:
    with trio.fail_after(30):
        owner = await _owner(store, "erin")
        send, receive = trio.open_memory_channel[BookCommand](10)
        batcher = CreateBatcher(store, send)
        made: list[int] = []

        async def create(price: int) -> None:
            alert = await batcher.create(
                owner, "binance", "ETHUSDT", Decimal(price), Direction.ABOVE
            )
            made.append(alert.id)

        async with trio.open_nursery() as nursery:
            for price in range(1, 4):
                nursery.start_soon(create, price)
            await trio.testing.wait_all_tasks_blocked()  # three queued, none run yet
            batcher.stop_taking()
            batcher.stop_taking()  # idempotent
            with pytest.raises(ShuttingDown) as refused:
                await batcher.create(owner, "binance", "ETHUSDT", Decimal(9), Direction.ABOVE)
            assert refused.value.retry_after > 0
            await batcher.run()  # runs what was queued, then returns by itself
        assert len(made) == 3
        assert [c.trigger.id for c in _drain(receive)] == sorted(made)  # type: ignore[union-attr]
        count, alerts = await store.list_alerts(owner)
        assert count == 3 and {a.id for a in alerts} == set(made)


async def test_a_page_asked_for_twice_in_one_batch_is_read_once_and_answered_to_each(
    store: Any,
) -> None:
    with trio.fail_after(30):
        owner = await _owner(store, "twice")
        await store.create_alerts(
            [(owner, "binance", "BTCUSDT", Decimal(i + 1), Direction.ABOVE, "") for i in range(5)]
        )
        asks = [(owner, 2, 0), (owner, 2, 0), (owner, 2, 9), (owner, 2, 9), (owner, 2, 4)]
        pages = await store.list_alert_pages(asks)
        assert pages[0] == pages[1] == await store.list_alerts(owner, limit=2, offset=0)
        assert pages[0][1] is not pages[1][1]
        assert pages[2] == pages[3] == (5, [])
        assert pages[4] == await store.list_alerts(owner, limit=2, offset=4)
        assert [a.target_price for a in pages[4][1]] == [Decimal(1)]
