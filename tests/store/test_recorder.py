"""The fire recorder: batches what is queued, retries an absent database without dropping the
batch, and flushes on cancellation within its grace deadline."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from decimal import Decimal

import pytest
import trio
import trio.testing

from engine.errors import StoreUnavailable
from engine.metrics import Metrics
from engine.model import AlertStatus, Direction, Fire, Tick, Trigger
from engine.store import Store, run_fire_recorder


async def _fires(store: Store, n: int) -> list[Fire]:
    owner = await store.create_user("alice", "a@example.com", "h")
    fires = []
    for i in range(n):
        alert = await store.create_alert(
            owner.id, "binance", "BTCUSDT", Decimal(i + 1), Direction.ABOVE, ""
        )
        fires.append(Fire(Tick("binance", "BTCUSDT", Decimal(i + 1)), (alert.trigger(),)))
    return fires


async def _transactions(store: Store) -> tuple[int, int]:
    """(alerts triggered, distinct transactions that triggered them)."""

    async def query(con):
        row = await con.fetchrow(
            "SELECT count(*), count(DISTINCT xmin::text) FROM alerts WHERE status = 'triggered'"
        )
        return tuple(row)

    return await store.bridge.run(query)


@pytest.mark.parametrize(("max_batch", "commits"), [(4096, 1), (3, 3)])
async def test_queued_fires_go_in_one_commit_up_to_the_cap(
    store: Store, max_batch: int, commits: int
) -> None:
    metrics = Metrics()
    with trio.fail_after(20):
        fires = await _fires(store, 7)
        send, receive = trio.open_memory_channel[Fire](64)
        async with send:
            for fire in fires:
                send.send_nowait(fire)
        await run_fire_recorder(store, receive, ["console"], metrics, max_batch=max_batch)
        assert await _transactions(store) == (7, commits)
        assert len(await store.pending_outbox()) == 7
    assert metrics.fires_recorded.get() == 7


async def test_cancellation_flushes_what_is_queued(store: Store) -> None:
    with trio.fail_after(20):
        fires = await _fires(store, 5)
        send, receive = trio.open_memory_channel[Fire](64)
        async with trio.open_nursery() as nursery:
            await nursery.start(run_fire_recorder, store, receive, [], Metrics())
            for fire in fires:
                send.send_nowait(fire)
            nursery.cancel_scope.cancel()
        owner = await store.get_user_by_username("alice")
        assert owner is not None
        _, alerts = await store.list_alerts(owner.id, limit=10)
        assert [a.status for a in alerts] == [AlertStatus.TRIGGERED] * 5


class FlakyStore:
    """Answers ``record_fires`` with StoreUnavailable ``failures`` times, then records."""

    def __init__(self, failures: float) -> None:
        self.failures = failures
        self.calls: list[list[int]] = []
        self.recorded: list[int] = []

    async def record_fires(self, fires: Sequence[Fire], channels: Sequence[str]) -> list[int]:
        ids = [t.id for fire in fires for t in fire.triggers]
        self.calls.append(ids)
        await trio.sleep(0.001)
        if len(self.calls) <= self.failures:
            raise StoreUnavailable("the database is unavailable (test)")
        self.recorded.extend(ids)
        return ids


def _fire(trigger_id: int) -> Fire:
    trigger = Trigger(trigger_id, "binance", "BTCUSDT", Direction.ABOVE, Decimal(1))
    return Fire(Tick("binance", "BTCUSDT", Decimal(2)), (trigger,))


async def test_an_absent_database_is_retried_with_the_same_batch(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    flaky = FlakyStore(failures=6)
    metrics = Metrics()
    send, receive = trio.open_memory_channel[Fire](64)
    with trio.fail_after(120):
        async with send:
            send.send_nowait(_fire(1))
            send.send_nowait(_fire(2))
        start = trio.current_time()
        await run_fire_recorder(flaky, receive, [], metrics)  # type: ignore[arg-type]
    assert flaky.calls == [[1, 2]] * 7 and flaky.recorded == [1, 2]
    assert metrics.store_retries.get() == 6 and metrics.fires_recorded.get() == 2
    retries = [r.getMessage() for r in caplog.records if "retrying in" in r.getMessage()]
    assert len(retries) == 6 and "attempt 6" in retries[-1]
    # capped exponential backoff: 0.05 s doubling, jittered down to half at most
    assert trio.current_time() - start >= sum(0.05 * 2**n / 2 for n in range(6))


async def test_the_backoff_is_capped(autojump_clock: trio.testing.MockClock) -> None:
    flaky = FlakyStore(failures=20)
    send, receive = trio.open_memory_channel[Fire](1)
    with trio.fail_after(600):
        async with send:
            send.send_nowait(_fire(1))
        start = trio.current_time()
        await run_fire_recorder(flaky, receive, [], Metrics())  # type: ignore[arg-type]
    assert trio.current_time() - start < 20 * 5.1


async def test_shutdown_gives_up_after_the_grace_deadline(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)
    flaky = FlakyStore(failures=float("inf"))
    send, receive = trio.open_memory_channel[Fire](64)
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            await nursery.start(
                lambda task_status: run_fire_recorder(
                    flaky, receive, [], Metrics(), grace_s=2.0, task_status=task_status
                )
            )
            send.send_nowait(_fire(1))
            await trio.sleep(0.5)
            send.send_nowait(_fire(2))
            nursery.cancel_scope.cancel()
            cancelled_at = trio.current_time()
    assert 2.0 <= trio.current_time() - cancelled_at < 2.5
    assert flaky.recorded == []
    assert flaky.calls[-1] == [1, 2]  # the final flush took what was queued too
    assert "2 fires not recorded within 2.0 s" in caplog.text


async def test_an_unexpected_error_stops_the_recorder() -> None:
    class Broken:
        async def record_fires(self, fires: Sequence[Fire], channels: Sequence[str]) -> list[int]:
            raise RuntimeError("a bug")

    send, receive = trio.open_memory_channel[Fire](1)
    send.send_nowait(_fire(1))
    with trio.fail_after(5), pytest.raises(RuntimeError, match="a bug"):
        await run_fire_recorder(Broken(), receive, [], Metrics())  # type: ignore[arg-type]
