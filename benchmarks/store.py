"""``triggerbook bench store [--json]``: the store on the embedded server, durable commits.

Measures, on a fresh embedded Postgres in a temporary folder (``synchronous_commit = on``, the
default, so every commit waits for its WAL flush):

* ``fires_per_s_batched`` fires committed by ``record_fires`` in batches (one outbox row each),
  against the naive baseline ``fires_per_s_single``: one ``record_fires`` (one commit) per fire;
* ``creates_per_s`` alerts created one by one (each its own commit), as the API does;
* ``startup_load_1m_s`` the start-up load: one million ``created`` alerts read by
  ``load_live_triggers`` and bulk-loaded into a ``TriggerBook``, query included.

Targets: >= 50,000 fires/s batched; the 1M load in < 5 s.

On a shared machine other processes steal the cores at random, so two CPU-time figures go with
the wall-clock ones: ``fires_batched_cpu_us`` (CPU microseconds per batched fire, this process
plus every process of the server, WAL writer and checkpointer included; 1e6 / it is the rate
with no waiting for a core) and ``startup_load_1m_cpu_s`` (the same sum for the 1M load).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path

import psutil
import trio
import trio_asyncio

from engine.book.book import TriggerBook
from engine.config import DatabaseConfig
from engine.model import Direction, Fire, Tick
from engine.store import Store, embedded, open_store, queries
from engine.store.recorder import MAX_BATCH

SYMBOLS = [f"SYM{n:03d}USDT" for n in range(200)]


async def _copy_alerts(store: Store, owner_id: int, n: int) -> None:
    async def copy(con) -> None:
        await con.copy_records_to_table(
            "alerts",
            records=(
                (
                    owner_id,
                    "binance",
                    SYMBOLS[i % len(SYMBOLS)],
                    Decimal(f"{1000 + i % 5000}.{i % 100:02d}"),
                    "above" if i % 2 else "below",
                )
                for i in range(n)
            ),
            columns=["owner_id", "exchange", "symbol", "target_price", "direction"],
        )
        await con.execute("VACUUM ANALYZE alerts")

    await store.bridge.run(copy)


async def _fires(store: Store, owner_id: int, n: int) -> list[Fire]:
    await store.bridge.run(queries.truncate_all)
    owner = await store.create_user("bench", "bench@example.com", "h")
    await _copy_alerts(store, owner.id, n)
    return [
        Fire(
            Tick(t.exchange, t.symbol, t.target, exchange_time_ms=1_700_000_000_000),
            (t,),
            fired_at_ms=1_700_000_000_500,  # the book stamps each fire (engine/book/actor.py)
        )
        for t in await store.load_live_triggers()
    ]


class _CpuClock:
    """CPU seconds used by this process and the server's processes since it was made."""

    def __init__(self, data_dir: Path) -> None:
        self._data_dir = data_dir
        self._start = self._now()

    def _now(self) -> dict[int, float]:
        times = {0: time.process_time()}
        for proc in embedded.postgres_processes(self._data_dir):
            try:
                cpu = proc.cpu_times()
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            times[proc.pid] = cpu.user + cpu.system
        return times

    def elapsed(self) -> float:
        start = self._start
        return sum(t - start.get(pid, 0.0) for pid, t in self._now().items())


async def _bench(quick: bool) -> dict[str, float]:
    results: dict[str, float] = {}
    parent = Path(tempfile.mkdtemp(prefix="triggerbook-bench-"))
    try:
        data_dir = (parent / "pg").resolve()
        config = DatabaseConfig(url="", data_dir=data_dir)
        async with trio_asyncio.open_loop(), open_store(config) as store:
            owner = await store.create_user("bench", "bench@example.com", "h")

            n = 20_000 if quick else 100_000
            fires = await _fires(store, owner.id, n)
            cpu = _CpuClock(data_dir)
            start = time.perf_counter()
            for i in range(0, n, MAX_BATCH):  # the recorder's batch cap
                await store.record_fires(fires[i : i + MAX_BATCH], ["console"])
            results["fires_per_s_batched"] = n / (time.perf_counter() - start)
            results["fires_batched_cpu_us"] = cpu.elapsed() * 1e6 / n

            n = 500 if quick else 2000
            fires = await _fires(store, owner.id, n)
            start = time.perf_counter()
            for fire in fires:
                await store.record_fires([fire], ["console"])
            results["fires_per_s_single"] = n / (time.perf_counter() - start)

            n = 500 if quick else 2000
            start = time.perf_counter()
            for i in range(n):
                await store.create_alert(
                    owner.id, "binance", "BTCUSDT", Decimal(i + 1), Direction.ABOVE, ""
                )
            results["creates_per_s"] = n / (time.perf_counter() - start)

            n = 100_000 if quick else 1_000_000
            await store.bridge.run(queries.truncate_all)
            owner = await store.create_user("bench", "bench@example.com", "h")
            await _copy_alerts(store, owner.id, n)
            cpu = _CpuClock(data_dir)
            start = time.perf_counter()
            book = TriggerBook()
            book.bulk_load(await store.load_live_triggers())
            elapsed = time.perf_counter() - start
            results["startup_load_1m_cpu_s"] = cpu.elapsed() * 1_000_000 / n
            if len(book) != n:
                raise AssertionError(f"the book holds {len(book)} triggers, not {n}")
            results["startup_load_1m_s"] = elapsed * 1_000_000 / n
    finally:
        shutil.rmtree(parent, ignore_errors=True)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; print JSON with ``--json``, else a readable table. Returns 0."""
    parser = argparse.ArgumentParser(prog="triggerbook bench store", description=__doc__)
    parser.add_argument("--json", action="store_true", help='print {"results": {...}}')
    parser.add_argument("--quick", action="store_true", help="smaller sizes (a smoke run)")
    args = parser.parse_args(argv)
    results = trio.run(_bench, args.quick)
    if args.json:
        print(json.dumps({"results": {k: round(v, 3) for k, v in results.items()}}))
        return 0
    print("store benchmark (embedded Postgres, synchronous_commit on)")
    print(f"  fires committed, batched      {results['fires_per_s_batched']:>12,.0f} /s")
    print(f"    CPU per batched fire        {results['fires_batched_cpu_us']:>12.1f} us")
    print(f"  fires committed, one by one   {results['fires_per_s_single']:>12,.0f} /s")
    print(f"  alerts created, one by one    {results['creates_per_s']:>12,.0f} /s")
    print(f"  start-up load of 1M alerts    {results['startup_load_1m_s']:>12.2f} s")
    print(f"    CPU (engine + server)       {results['startup_load_1m_cpu_s']:>12.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
