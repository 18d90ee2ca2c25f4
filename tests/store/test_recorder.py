"""The fire recorder: batches what is queued, retries an absent database without dropping the
batch (the real server, stopped and started again), flushes on cancellation within its grace
deadline, and never dies of data: a fire the database refuses is isolated by bisection, retried
once without its tick time, then quarantined, and everything else is recorded."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
import trio
import trio.testing

from engine.config import DatabaseConfig
from engine.errors import StoreUnavailable
from engine.metrics import Metrics
from engine.model import AlertStatus, Direction, Fire, Tick, Trigger
from engine.quarantine import Quarantine
from engine.store import Store, embedded, open_store, recorder, run_fire_recorder
from tests.test_backoff import spy_on


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
        await run_fire_recorder(
            store, receive, ["console"], metrics, Quarantine(metrics), max_batch=max_batch
        )
        assert await _transactions(store) == (7, commits)
        assert len(await store.pending_outbox()) == 7
    assert metrics.fires_recorded.get() == 7


async def test_cancellation_flushes_what_is_queued(store: Store) -> None:
    with trio.fail_after(20):
        fires = await _fires(store, 5)
        send, receive = trio.open_memory_channel[Fire](64)
        async with trio.open_nursery() as nursery:
            metrics = Metrics()
            await nursery.start(run_fire_recorder, store, receive, [], metrics, Quarantine(metrics))
            for fire in fires:
                send.send_nowait(fire)
            nursery.cancel_scope.cancel()
        owner = await store.get_user_by_username("alice")
        assert owner is not None
        _, alerts = await store.list_alerts(owner.id, limit=10)
        assert [a.status for a in alerts] == [AlertStatus.TRIGGERED] * 5


def _q() -> tuple[Metrics, Quarantine]:
    metrics = Metrics()
    return metrics, Quarantine(metrics)


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
        await run_fire_recorder(flaky, receive, [], metrics, Quarantine(metrics))  # type: ignore[arg-type]
    assert flaky.calls == [[1, 2]] * 7 and flaky.recorded == [1, 2]
    assert metrics.store_retries.get() == 6 and metrics.fires_recorded.get() == 2
    retries = [r.getMessage() for r in caplog.records if "retrying in" in r.getMessage()]
    assert len(retries) == 6 and "attempt 6" in retries[-1]
    # capped exponential backoff with full jitter: each pause at most 0.05 s doubling
    pauses = [float(m.rsplit(" ", 2)[-2]) for m in retries]
    assert all(0 <= p <= 0.05 * 2**n + 0.005 for n, p in enumerate(pauses)), pauses
    assert trio.current_time() - start <= sum(0.05 * 2**n for n in range(6)) + 7 * 0.001 + 1e-6


async def test_the_retries_wait_with_the_shared_backoff(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = spy_on(monkeypatch, recorder)  # engine.backoff.Backoff: tests/test_backoff.py
    flaky = FlakyStore(failures=4)
    send, receive = trio.open_memory_channel[Fire](8)
    with trio.fail_after(120):
        async with send:
            send.send_nowait(_fire(1))
        start = trio.current_time()
        await run_fire_recorder(flaky, receive, [], *_q())  # type: ignore[arg-type]
    (backoff,) = spy.made  # one per batch, every success resets: 0.05 s up to 5 s
    assert (backoff.base_s, backoff.cap_s, backoff.healthy_after_s) == (0.05, 5.0, 0.0)
    assert len(spy.delays) == 4
    # the time went in the backoff's pauses and the five calls' 1 ms each, nothing else
    assert trio.current_time() - start == pytest.approx(sum(spy.delays) + 5 * 0.001)


async def test_the_backoff_is_capped(autojump_clock: trio.testing.MockClock) -> None:
    flaky = FlakyStore(failures=20)
    send, receive = trio.open_memory_channel[Fire](1)
    with trio.fail_after(600):
        async with send:
            send.send_nowait(_fire(1))
        start = trio.current_time()
        await run_fire_recorder(flaky, receive, [], *_q())  # type: ignore[arg-type]
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
                    flaky, receive, [], *_q(), grace_s=2.0, task_status=task_status
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
        await run_fire_recorder(Broken(), receive, [], *_q())  # type: ignore[arg-type]


# --- a real outage: the test's own embedded server, stopped mid-run and started again ----------


def _config(url: str) -> DatabaseConfig:
    return DatabaseConfig(url=url, data_dir=Path("unused"), start_timeout_s=10.0)


@asynccontextmanager
async def _own_server(pg_dir: Path) -> AsyncIterator[list[embedded.EmbeddedServer]]:
    """A server of the test's own in ``pg_dir`` (see tests/store/conftest.py for why it is not
    under pytest's basetemp). The list holds the running one: a test that restarts it puts the
    new handle there, and the last one is stopped on exit."""
    servers = [await trio.to_thread.run_sync(embedded.start, pg_dir)]
    try:
        yield servers
    finally:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(servers[-1].stop)


async def _until(condition: Callable[[], bool]) -> None:
    while True:
        if condition():
            return
        await trio.sleep(0.01)


async def _counts(store: Store) -> dict[int, tuple[str, int]]:
    """Per alert: (status, outbox rows)."""

    async def query(con):
        rows = await con.fetch(
            "SELECT a.id, a.status, (SELECT count(*) FROM outbox o WHERE o.alert_id = a.id) "
            "FROM alerts a ORDER BY a.id"
        )
        return {row[0]: (row[1], row[2]) for row in rows}

    return await store.bridge.run(query)


async def test_a_stopped_server_is_retried_until_it_is_back_and_each_fire_recorded_once(
    pg_dir: Path, aio_loop: object, caplog: pytest.LogCaptureFixture
) -> None:
    metrics = Metrics()
    quarantine = Quarantine(metrics)
    send, receive = trio.open_memory_channel[Fire](64)
    with trio.fail_after(90):
        async with _own_server(pg_dir) as servers, open_store(_config(servers[0].uri)) as store:
            fires = await _fires(store, 6)
            async with trio.open_nursery() as nursery:
                await nursery.start(
                    run_fire_recorder, store, receive, ["console", "email"], metrics, quarantine
                )
                await send.send(fires[0])
                await _until(lambda: metrics.fires_recorded.get() >= 1)

                await trio.to_thread.run_sync(servers[0].stop)  # the database goes away
                for fire in fires[1:]:
                    await send.send(fire)
                await _until(lambda: metrics.store_retries.get() >= 2)  # the recorder keeps trying
                assert metrics.fires_recorded.get() == 1

                servers.append(await trio.to_thread.run_sync(embedded.start, pg_dir))
                await _until(lambda: metrics.fires_recorded.get() >= 6)
                await send.aclose()  # the recorder returns once its channel is drained
            counts = await _counts(store)
    assert counts == {fire.triggers[0].id: ("triggered", 2) for fire in fires}
    assert metrics.fires_recorded.get() == 6 and quarantine.counts == {}
    assert "retrying in" in caplog.text


async def test_shutdown_with_the_server_away_gives_up_after_the_grace_deadline(
    pg_dir: Path, aio_loop: object, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)
    send, receive = trio.open_memory_channel[Fire](64)
    with trio.fail_after(60):
        async with _own_server(pg_dir) as servers, open_store(_config(servers[0].uri)) as store:
            fires = await _fires(store, 2)
            await trio.to_thread.run_sync(servers[0].stop)
            async with trio.open_nursery() as nursery:
                await nursery.start(
                    lambda task_status: run_fire_recorder(
                        store, receive, [], *_q(), grace_s=1.0, task_status=task_status
                    )
                )
                send.send_nowait(fires[0])
                await trio.sleep(0.2)
                send.send_nowait(fires[1])
                nursery.cancel_scope.cancel()
                cancelled_at = trio.current_time()
            assert 1.0 <= trio.current_time() - cancelled_at < 3.0
            servers.append(await trio.to_thread.run_sync(embedded.start, pg_dir))
            # nothing was recorded: both alerts are still live, for the next start's book
            assert len(await store.load_live_triggers()) == 2
    assert "2 fires not recorded within 1.0 s" in caplog.text


# --- refused fires: isolated, retried once without the tick time, quarantined -----------------

GOOD_MS = int(datetime(2024, 5, 1, tzinfo=UTC).timestamp() * 1000)
BAD_MS = 10_000_000_000_000_000  # the replayed tick of issue 12, case 2: year 318857


async def test_refused_fires_are_isolated_and_everything_else_recorded(
    fresh_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    metrics = Metrics()
    quarantine = Quarantine(metrics)
    calls: list[int] = []
    with trio.fail_after(60):
        async with open_store(_config(fresh_url)) as store:
            owner = await store.create_user("alice", "a@example.com", "h")
            alerts = [
                await store.create_alert(
                    owner.id, "binance", "BTCUSDT", Decimal(100), Direction.ABOVE, name
                )
                for name in ["a", "b", "time", "c", "price", "d", "refuse-me", "e", "later"]
            ]
            by_name = {a.name: a for a in alerts}

            async def refuse(con) -> None:  # a row the database refuses to fire
                await con.execute(
                    "ALTER TABLE alerts ADD CONSTRAINT test_refused "
                    "CHECK (status <> 'triggered' OR name <> 'refuse-me')"
                )

            await store.bridge.run(refuse)

            def fire(price: str, ms: int, *names: str) -> Fire:
                tick = Tick("binance", "BTCUSDT", Decimal(price), exchange_time_ms=ms)
                return Fire(tick, tuple(by_name[n].trigger() for n in names), fired_at_ms=1)

            batch = [
                fire("150", GOOD_MS, "a", "b"),
                fire("150", BAD_MS, "time"),  # recorded without its tick time
                fire("150", GOOD_MS, "c"),
                fire("1E+200000", GOOD_MS, "price"),  # overflows NUMERIC: quarantined
                fire("150", GOOD_MS, "d", "refuse-me", "e"),  # one trigger of three refused
            ]

            class Counting:
                async def record_fires(self, fires, channels):
                    calls.append(sum(len(f.triggers) for f in fires))
                    return await store.record_fires(fires, channels)

            send, receive = trio.open_memory_channel[Fire](64)
            async with trio.open_nursery() as nursery:
                await nursery.start(
                    run_fire_recorder, Counting(), receive, ["console"], metrics, quarantine
                )
                for f in batch:
                    send.send_nowait(f)  # queued together: one batch
                await _until(lambda: metrics.fires_recorded.get() >= 6)
                await send.send(fire("150", GOOD_MS, "later"))  # the recorder still runs
                await _until(lambda: metrics.fires_recorded.get() >= 7)
                await send.aclose()

            _, rows = await store.list_alerts(owner.id, limit=20)
            got = {a.name: a for a in rows}
    triggered = {n for n, a in got.items() if a.status == AlertStatus.TRIGGERED}
    assert triggered == {"a", "b", "time", "c", "d", "e", "later"}
    assert got["price"].status == got["refuse-me"].status == AlertStatus.CREATED
    assert got["time"].tick_time is None and got["a"].tick_time is not None
    assert quarantine.counts == {"tick": 1, "fire": 2}
    assert "NumericValueOutOfRange" in (quarantine.reason_for(by_name["price"].id) or "")
    assert "CheckViolation" in (quarantine.reason_for(by_name["refuse-me"].id) or "")
    assert "tick time" in (quarantine.reason_for(by_name["time"].id) or "")
    assert metrics.quarantined.get(kind="fire") == 2
    assert metrics.fires_recorded.get() == 7
    assert calls[0] == 8  # the batch was tried whole first, then bisected
    assert "quarantined (fire)" in caplog.text
