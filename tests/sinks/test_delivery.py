"""The delivery loops on a real Postgres: at least once, never twice when nothing failed,
retries with backoff, dead rows with their reason, one hung sink never holding up another, two
engines on one database, shutdown within the grace period."""

from __future__ import annotations

import math
from collections.abc import Callable
from decimal import Decimal
from typing import ClassVar

import trio

from engine.errors import DeliveryFailed, DeliveryRefused, DestinationGone, SinkUnavailable
from engine.metrics import Metrics
from engine.model import Direction, Fire, FireChannels, Notification, Tick
from engine.plugins import Sink
from engine.sinks.delivery import Delivery, Outcome
from engine.store import Store


class Recording(Sink):
    """A sink whose behaviour each test scripts: ``script(note)`` runs before each delivery
    and may raise or sleep; every delivered notification is kept."""

    name = "recording"
    reaches_account: ClassVar[bool] = True
    takes_destinations: ClassVar[bool] = True

    def __init__(self, config=None, script: Callable | None = None, name: str = "recording"):
        super().__init__({"timeout_s": 1.0, "max_attempts": 4, **(config or {})})
        self.name = name  # type: ignore[misc]
        self.script = script
        self.delivered: list[Notification] = []
        self.tries: list[Notification] = []

    async def deliver(self, note: Notification) -> None:
        self.tries.append(note)
        if self.script is not None:
            await self.script(note)
        self.delivered.append(note)


async def _fire(
    store: Store, n: int, channels: FireChannels, owner: int | None = None
) -> list[int]:
    if owner is None:
        owner = (await store.create_user("alice", "alice@example.com", "h")).id
    alerts = [
        await store.create_alert(owner, "binance", "BTCUSDT", Decimal(100 + i), Direction.ABOVE, "")
        for i in range(n)
    ]
    tick = Tick("binance", "BTCUSDT", Decimal(1000))
    return await store.record_fires([Fire(tick, tuple(a.trigger() for a in alerts))], channels)


async def _states(store: Store) -> list[tuple]:
    async def query(con):
        rows = await con.fetch(
            "SELECT channel, delivered_at IS NOT NULL, dead_at IS NOT NULL, attempts, last_error "
            "FROM outbox ORDER BY id"
        )
        return [tuple(r) for r in rows]

    return await store.bridge.run(query)


async def _until(predicate: Callable[[], bool], pause: float = 0.01) -> None:
    while not predicate():  # noqa: ASYNC110  (the condition is another task's state)
        await trio.sleep(pause)


async def _until_settled(store: Store, n: int) -> None:
    while sum(1 for s in await _states(store) if s[1] or s[2]) < n:  # noqa: ASYNC110
        await trio.sleep(0.02)


def _delivery(store: Store, *sinks: Sink, sole_engine: bool = True) -> Delivery:
    return Delivery(
        {s.name: s for s in sinks},
        store.outbox,
        Metrics(),
        retry_base_s=0.05,
        sole_engine=sole_engine,
    )


async def test_a_fire_is_delivered_at_once_when_woken_and_settled(store: Store) -> None:
    sink = Recording()
    delivery = _delivery(store, sink)
    assert delivery.fire_channels() == FireChannels(("recording",), (), ("recording",))
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(delivery.run)
            await _fire(store, 3, delivery.fire_channels())
            start = trio.current_time()
            delivery.wake()
            await _until(lambda: len(sink.delivered) == 3)
            assert trio.current_time() - start < 1.0  # woken, not polled
            await _until_settled(store, 3)
            nursery.cancel_scope.cancel()
    assert await _states(store) == [("recording", True, False, 1, None)] * 3
    assert {n.data["triggered_price"] for n in sink.delivered} == {"1000"}
    assert delivery.metrics.deliveries.get(channel="recording") == 3


async def test_rows_queued_before_start_are_delivered_once_on_start(store: Store) -> None:
    sink = Recording()
    await _fire(store, 5, FireChannels(("recording",)))
    delivery = _delivery(store, sink)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(delivery.run)
            await _until_settled(store, 5)
            await trio.sleep(0.2)
            nursery.cancel_scope.cancel()
    assert sorted(n.id for n in sink.delivered) == [1, 2, 3, 4, 5]


async def test_a_failure_is_retried_with_the_same_id_then_delivered_once(store: Store) -> None:
    async def fail_first(note: Notification) -> None:
        if note.attempts == 0:
            raise DeliveryFailed("451 try again later")

    sink = Recording(script=fail_first)
    delivery = _delivery(store, sink)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(delivery.run)
            await _fire(store, 1, delivery.fire_channels())
            delivery.wake()
            await _until_settled(store, 1)
            nursery.cancel_scope.cancel()
    assert [n.id for n in sink.tries] == [1, 1]
    assert [n.attempts for n in sink.tries] == [0, 1]
    assert len(sink.delivered) == 1
    assert await _states(store) == [("recording", True, False, 2, None)]
    assert delivery.metrics.delivery_failures.get(channel="recording") == 1


async def test_retry_after_is_honoured(store: Store) -> None:
    async def busy(note: Notification) -> None:
        if note.attempts == 0:
            raise DeliveryFailed("429 slow down", retry_after_s=0.6)

    sink = Recording(script=busy)
    delivery = _delivery(store, sink)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(delivery.run)
            await _fire(store, 1, delivery.fire_channels())
            delivery.wake()
            await _until(lambda: len(sink.tries) == 1)
            first = trio.current_time()
            await _until(lambda: len(sink.delivered) == 1)
            assert trio.current_time() - first >= 0.5
            nursery.cancel_scope.cancel()


async def test_refused_is_dead_with_its_reason_and_gives_up_after_max_attempts(
    store: Store,
) -> None:
    async def script(note: Notification) -> None:
        if note.alert_id == 1:
            raise DeliveryRefused("550 no such mailbox")
        raise DeliveryFailed("421 busy")

    sink = Recording(script=script)
    delivery = _delivery(store, sink)
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            await nursery.start(delivery.run)
            await _fire(store, 2, delivery.fire_channels())
            delivery.wake()
            await _until_settled(store, 2)
            nursery.cancel_scope.cancel()
    assert await _states(store) == [
        ("recording", False, True, 1, "550 no such mailbox"),
        ("recording", False, True, 4, "gave up after 4 attempts: 421 busy"),
    ]
    assert delivery.metrics.notifications_dead.get(channel="recording") == 2


async def test_a_gone_destination_is_disabled_and_queues_nothing_more(store: Store) -> None:
    async def gone(note: Notification) -> None:
        raise DestinationGone("410 Gone")

    sink = Recording(script=gone)
    delivery = _delivery(store, sink)
    channels = FireChannels(destinations=("recording",))
    owner = (await store.create_user("alice", "a@example.com", "h")).id

    async def add(con):
        return await con.fetchval(
            "INSERT INTO destinations (owner_id, kind, target, confirmed_at) "
            "VALUES ($1, 'recording', 'x', now()) RETURNING id",
            owner,
        )

    destination = await store.bridge.run(add)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(delivery.run)
            await _fire(store, 1, channels, owner)
            delivery.wake()
            await _until_settled(store, 1)
            nursery.cancel_scope.cancel()
    assert sink.tries[0].destination is not None
    assert sink.tries[0].destination.id == destination
    reason = await store.bridge.run(
        lambda con: con.fetchval(
            "SELECT disabled_reason FROM destinations WHERE id = $1", destination
        )
    )
    assert reason == "410 Gone"
    assert await _fire(store, 1, channels, owner)  # fires, but queues nothing for it
    assert len(await _states(store)) == 1


async def test_a_hung_sink_times_out_while_another_keeps_delivering(store: Store) -> None:
    hang_once: set[int] = set()

    async def hang(note: Notification) -> None:
        if note.id not in hang_once:
            hang_once.add(note.id)
            await trio.sleep_forever()

    slow = Recording({"timeout_s": 0.3}, script=hang, name="slow")
    fast = Recording(name="fast")
    delivery = _delivery(store, slow, fast)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(delivery.run)
            await _fire(store, 20, FireChannels(("fast", "slow")))
            delivery.wake()
            await _until(lambda: len(fast.delivered) == 20)
            assert slow.delivered == []  # every slow delivery is still hanging
            await _until_settled(store, 40)
            nursery.cancel_scope.cancel()
    assert len(slow.delivered) == 20
    slow_rows = [s for s in await _states(store) if s[0] == "slow"]
    assert {(s[3], s[4]) for s in slow_rows} == {(2, None)}


async def test_a_sink_bug_is_logged_and_retried_not_fatal(store: Store) -> None:
    async def buggy(note: Notification) -> None:
        if note.attempts == 0:
            raise KeyError("oops")

    sink = Recording(script=buggy)
    delivery = _delivery(store, sink)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(delivery.run)
            await _fire(store, 1, delivery.fire_channels())
            delivery.wake()
            await _until(lambda: len(sink.delivered) == 1)
            nursery.cancel_scope.cancel()


async def test_an_unavailable_channel_shows_until_a_delivery_succeeds(store: Store) -> None:
    down = True

    async def login(note: Notification) -> None:
        if down:
            raise SinkUnavailable("535 authentication failed")

    sink = Recording(script=login)
    delivery = _delivery(store, sink)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(delivery.run)
            await _fire(store, 1, delivery.fire_channels())
            delivery.wake()
            await _until(lambda: bool(delivery.problems()))
            assert delivery.problems() == {"recording": "535 authentication failed"}
            down = False
            await _until(lambda: len(sink.delivered) == 1)
            assert delivery.problems() == {}
            nursery.cancel_scope.cancel()


async def test_two_engines_on_one_database_deliver_each_row_once(store: Store) -> None:
    one, two = Recording({"concurrency": 3}), Recording({"concurrency": 5})
    first = _delivery(store, one, sole_engine=False)
    second = _delivery(store, two, sole_engine=False)
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            await nursery.start(first.run)
            await nursery.start(second.run)
            await _fire(store, 300, FireChannels(("recording",)))
            first.wake()
            second.wake()
            await _until_settled(store, 300)
            nursery.cancel_scope.cancel()
    ids = [n.id for n in one.delivered + two.delivered]
    assert sorted(ids) == list(range(1, 301))
    # (which engine takes how many depends on timing: a claim takes up to 256 rows)


async def test_shutdown_lets_deliveries_in_flight_finish_and_settles_them(store: Store) -> None:
    started = trio.Event()

    async def slowish(note: Notification) -> None:
        started.set()
        await trio.sleep(0.3)

    sink = Recording({"timeout_s": 30.0}, script=slowish)
    delivery = _delivery(store, sink)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(delivery.run)
            await _fire(store, 1, delivery.fire_channels())
            delivery.wake()
            await started.wait()
            nursery.cancel_scope.cancel()
    assert len(sink.delivered) == 1
    assert await _states(store) == [("recording", True, False, 1, None)]


async def test_send_now_delivers_outside_the_outbox_and_says_what_happened(store: Store) -> None:
    async def script(note: Notification) -> None:
        if note.data.get("refuse"):
            raise DeliveryRefused("550 no")
        if note.data.get("hang"):
            await trio.sleep(math.inf)

    sink = Recording({"timeout_s": 0.2}, script=script)
    delivery = _delivery(store, sink)
    note = Notification(0, 0, "recording", {}, event="test", key="test-1")
    assert await delivery.send_now(note) == Outcome("failed", "the recording sink is not running")
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(delivery.run)
            assert await delivery.send_now(note) == Outcome("delivered")
            refused = Notification(0, 0, "recording", {"refuse": 1}, event="test")
            assert await delivery.send_now(refused) == Outcome("refused", "550 no")
            hung = Notification(0, 0, "recording", {"hang": 1}, event="test")
            assert await delivery.send_now(hung) == Outcome("failed", "timed out after 0.2 s")
            nursery.cancel_scope.cancel()
    assert await _states(store) == []


async def test_a_sole_engine_takes_back_the_leases_of_a_killed_one(store: Store) -> None:
    await _fire(store, 2, FireChannels(("recording",)))
    # What a process killed mid-delivery leaves: claimed, leased for minutes, never settled.
    assert len(await store.outbox.claim("recording", 10, lease_s=600)) == 2
    sink = Recording()
    shared = _delivery(store, sink, sole_engine=False)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(shared.run)
            await trio.sleep(0.3)
            assert sink.delivered == []  # another engine may still hold them: wait for the lease
            nursery.cancel_scope.cancel()
        sole = _delivery(store, sink)
        async with trio.open_nursery() as nursery:
            await nursery.start(sole.run)
            await _until_settled(store, 2)
            nursery.cancel_scope.cancel()
    assert sorted(n.id for n in sink.delivered) == [1, 2]
