"""The fire journal (engine/store/journal.py) and the recorder's use of it (issue 15, finding 6):
a fire the recorder could not commit because the database was away survives a ``kill -9`` of the
process and is recorded at the next start, once; while the database is away the recorder keeps
taking the book's fires (journalled) instead of holding the book back; a torn line is skipped;
a journal that cannot be written costs nothing but the journal."""

from __future__ import annotations

import signal
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
import trio
import trio.testing

from engine.app import load_book
from engine.errors import StoreUnavailable
from engine.metrics import Metrics
from engine.model import Direction, Fire, FireChannels, Tick, Trigger
from engine.quarantine import Quarantine
from engine.store import (
    FireJournal,
    Store,
    embedded,
    open_store,
    recorder,
    replay,
    run_fire_recorder,
)
from tests.store.test_recorder import _config, _counts, _own_server

CHILD = Path(__file__).with_name("journal_child.py")
CONSOLE = FireChannels(account=("console",))


def _fire(trigger_id: int, price: str = "2") -> Fire:
    trigger = Trigger(trigger_id, "binance", "BTCUSDT", Direction.ABOVE, Decimal(1))
    return Fire(Tick("binance", "BTCUSDT", Decimal(price)), (trigger,), fired_at_ms=1)


async def _lines_until(proc: trio.Process, want: bytes, seen: bytearray) -> None:
    assert proc.stdout is not None
    while want not in seen:
        chunk = await proc.stdout.receive_some()
        if not chunk:
            raise AssertionError(f"the child exited early ({await proc.wait()})")
        seen += chunk


async def test_a_fire_journalled_while_the_database_is_down_survives_kill_9(
    pg_dir: Path, aio_loop: object
) -> None:
    journal = FireJournal(pg_dir.parent / "fires.journal")
    with trio.fail_after(90):
        async with _own_server(pg_dir) as servers, open_store(_config(servers[0].uri)) as store:
            owner = await store.create_user("crash", "crash@example.com", "h")
            alerts = [
                await store.create_alert(
                    owner.id, "binance", "BTCUSDT", Decimal(i + 1), Direction.BELOW, ""
                )
                for i in range(3)
            ]
            proc = await trio.lowlevel.open_process(
                [sys.executable, str(CHILD), servers[0].uri, str(journal.path)],
                stdout=subprocess.PIPE,
                stdin=subprocess.PIPE,
            )
            try:
                seen = bytearray()
                await _lines_until(proc, b"ready\n", seen)
                await trio.to_thread.run_sync(servers[0].stop)  # the database goes away
                assert proc.stdin is not None
                await proc.stdin.send_all(b"fire\n")  # the book fires; the recorder cannot commit
                await _lines_until(proc, b"journalled\n", seen)
            finally:
                proc.send_signal(signal.SIGKILL)
                assert await proc.wait() == -signal.SIGKILL

            servers.append(await trio.to_thread.run_sync(embedded.start, pg_dir))
            assert len(await journal.read()) == 1
            # the next start: the journal first, then the book
            marked = await replay(journal, store, CONSOLE)
            assert marked == [alerts[0].id, alerts[1].id]
            counts = await _counts(store)
            assert counts == {
                alerts[0].id: ("triggered", 1),
                alerts[1].id: ("triggered", 1),
                alerts[2].id: ("created", 0),
            }
            fired = await store.get_alert(owner.id, alerts[0].id)
            assert fired is not None and fired.triggered_price == Decimal("0.5")
            assert fired.triggered_at is not None
            assert journal.path.stat().st_size == 0  # emptied once recorded
            assert await replay(journal, store, CONSOLE) == []
            book = await load_book(store, Quarantine(Metrics()))
            assert [t.id for t in (await store.load_live_triggers())] == [alerts[2].id]
            assert len(book) == 1


class DownStore:
    """Unavailable for ``failures`` calls of ``record_fires`` (None: until ``up`` is set), then
    records (test double of the store's one call the recorder makes)."""

    def __init__(self, failures: int | None) -> None:
        self.failures = failures
        self.up = False
        self.calls: list[list[int]] = []

    async def record_fires(self, fires: list[Fire], channels: object) -> list[int]:
        ids = [t.id for fire in fires for t in fire.triggers]
        self.calls.append(ids)
        if not self.up if self.failures is None else len(self.calls) <= self.failures:
            raise StoreUnavailable("the database is unavailable (test)")
        return ids


async def test_while_the_database_is_away_the_recorder_journals_what_the_book_fires(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # (the real clock: journal writes run in threads, which an autojump clock would outrun)
    monkeypatch.setattr(recorder, "BACKOFF_FIRST_S", 4.0)  # one long pause: all of it inside
    journal = FireJournal(tmp_path / "fires.journal")
    down = DownStore(failures=None)
    metrics = Metrics()
    send, receive = trio.open_memory_channel[Fire](1)  # a tiny buffer: the book would block
    journalled: list[int] = []

    async def all_journalled() -> None:
        while True:
            journalled[:] = sorted(f.triggers[0].id for f in await journal.read())
            if journalled == [1, 2, 3, 4, 5]:
                return
            await trio.sleep(0.01)

    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            await nursery.start(
                lambda task_status: run_fire_recorder(
                    down,  # type: ignore[arg-type]
                    receive,
                    [],
                    metrics,
                    Quarantine(metrics),
                    journal=journal,
                    task_status=task_status,
                )
            )
            async with send:
                for i in range(1, 6):  # taken in (and journalled) while the database is away
                    with trio.fail_after(2):  # the book is never held back for a pause
                        await send.send(_fire(i))
                await all_journalled()
                assert len(down.calls) == 1  # all of them during the first backoff pause
                down.up = True
    assert down.calls[-1] == [1, 2, 3, 4, 5]  # recorded together once it was back
    assert metrics.fires_recorded.get() == 5
    assert await journal.read() == []


async def test_a_torn_last_line_is_skipped(tmp_path: Path) -> None:
    journal = FireJournal(tmp_path / "fires.journal")
    await journal.append([_fire(1), _fire(2)])
    with journal.path.open("ab") as file:
        file.write(b'{"tick": {"exchange": "bin')  # a crash in the middle of an append
    assert [f.triggers[0].id for f in await journal.read()] == [1, 2]
    await journal.clear()
    assert await journal.read() == []
    await FireJournal(tmp_path / "none").clear()  # nothing there: nothing to do


async def test_a_journal_that_cannot_be_written_leaves_the_fires_in_memory(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "blocked").write_text("a file where the journal's folder should be")
    journal = FireJournal(tmp_path / "blocked" / "fires.journal")
    down = DownStore(failures=3)
    metrics = Metrics()
    send, receive = trio.open_memory_channel[Fire](4)
    with trio.fail_after(60):
        async with send:
            send.send_nowait(_fire(1))
        await run_fire_recorder(
            down,  # type: ignore[arg-type]
            receive,
            [],
            metrics,
            Quarantine(metrics),
            journal=journal,
        )
    assert down.calls == [[1]] * 4 and metrics.fires_recorded.get() == 1
    assert "the fire journal cannot be written" in caplog.text


async def test_replay_records_a_fire_journalled_twice_once(store: Store, tmp_path: Path) -> None:
    with trio.fail_after(30):
        owner = await store.create_user("two", "two@example.com", "h")
        a, b = [
            await store.create_alert(
                owner.id, "binance", "BTCUSDT", Decimal(p), Direction.ABOVE, ""
            )
            for p in (1, 2)
        ]
        journal = FireJournal(tmp_path / "fires.journal")
        tick = Tick("binance", "BTCUSDT", Decimal(3))
        both = Fire(tick, (a.trigger(), b.trigger()))
        await journal.append([both, Fire(tick, (b.trigger(),)), both])  # a flush wrote it again
        assert await replay(journal, store, CONSOLE) == [a.id, b.id]
        assert {i: c for i, c in (await _counts(store)).items()} == {
            a.id: ("triggered", 1),
            b.id: ("triggered", 1),
        }


async def test_replay_skips_a_fire_the_database_refuses(store: Store, tmp_path: Path) -> None:
    with trio.fail_after(30):
        owner = await store.create_user("ref", "ref@example.com", "h")
        refused, alert = [
            await store.create_alert(
                owner.id, "binance", "BTCUSDT", Decimal(p), Direction.ABOVE, ""
            )
            for p in (1, 2)
        ]
        journal = FireJournal(tmp_path / "fires.journal")
        huge = Fire(Tick("binance", "BTCUSDT", Decimal("1e40")), (refused.trigger(),))
        good = Fire(Tick("binance", "BTCUSDT", Decimal(3)), (alert.trigger(),))
        await journal.append([huge, good])
        assert await replay(journal, store, CONSOLE) == [alert.id]
        assert [t.id for t in await store.load_live_triggers()] == [refused.id]  # back in the book
        assert await journal.read() == []
