"""Run by ``test_journal.py`` as a child process: a fire recorder with a journal, on the
database at ``argv[1]`` (journal file ``argv[2]``). It loads the live triggers and prints
``ready``; on a line ``fire`` from stdin (sent once the database is stopped) it sends one fire of
the first two triggers at price 0.5, prints ``journalled`` once the journal holds it, then waits
to be killed."""

from __future__ import annotations

import sys
from decimal import Decimal
from pathlib import Path

import trio
import trio_asyncio

from engine.config import DatabaseConfig
from engine.metrics import Metrics
from engine.model import Fire, Tick
from engine.quarantine import Quarantine
from engine.store import FireJournal, open_store, run_fire_recorder

FIRED_AT_MS = 1_700_000_000_000


async def main(url: str, journal_path: Path) -> None:
    config = DatabaseConfig(url=url, data_dir=Path("unused"), start_timeout_s=10.0)
    metrics = Metrics()
    send, receive = trio.open_memory_channel[Fire](16)
    journal = FireJournal(journal_path)
    async with trio_asyncio.open_loop(), open_store(config) as store:
        triggers = sorted(await store.load_live_triggers(), key=lambda t: t.id)
        async with trio.open_nursery() as nursery:
            await nursery.start(
                lambda task_status: run_fire_recorder(
                    store,
                    receive,
                    ["console"],
                    metrics,
                    Quarantine(metrics),
                    journal=journal,
                    task_status=task_status,
                )
            )
            print("ready", flush=True)
            assert (await trio.to_thread.run_sync(sys.stdin.readline)).strip() == "fire"
            tick = Tick("binance", "BTCUSDT", Decimal("0.5"), exchange_time_ms=FIRED_AT_MS - 7)
            await send.send(Fire(tick, tuple(triggers[:2]), fired_at_ms=FIRED_AT_MS))
            path = trio.Path(journal_path)
            while True:  # the recorder failed, journalled the fire, and retries
                if await path.exists() and (await path.stat()).st_size > 0:
                    break
                await trio.sleep(0.01)
            print("journalled", flush=True)
            await trio.sleep_forever()


if __name__ == "__main__":
    trio.run(main, sys.argv[1], Path(sys.argv[2]))
