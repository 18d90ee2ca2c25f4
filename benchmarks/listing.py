"""``python -m benchmarks.listing [--json] [--alerts N] [--page-size N]``: filtered alert pages of
one owner with 300,000 alerts, on a fresh embedded Postgres.

The owner's alerts mix every status (1,000 live, the default limit; about two thirds triggered,
the rest deleted), 100 (exchange, symbol) pairs over three exchanges (one coin spelt three ways:
``SOLUSDT``, ``SOL-USDT``, ``SOL/USDT``) and, beside them, 200 other owners with 500 alerts each.
For every filter combination (status, symbol, the three spellings of ``?symbol=sol-usdt``,
exchange, none, and their pairs and triple) it times the first page, a middle page and the
deepest page allowed (``engine.limits.MAX_LIST_OFFSET``) through ``Store.list_alerts``, bridge
crossing included, and prints the median milliseconds of ``--repeat`` runs per case.

The baseline, in the same run and on the same rows: the listing before migration 0007, one
statement that counts the matches on the owner's listing index and walks it for the page,
filtering as it goes (what every filtered page did then).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import trio
import trio_asyncio

from engine.config import DatabaseConfig
from engine.limits import MAX_LIST_OFFSET
from engine.store import Store, open_store, queries

SOL = ["SOLUSDT", "SOL-USDT", "SOL/USDT"]
EXCHANGES = ["binance", "okx", "kraken"]

# One owner's rows, made by the server: pair k of 100 is (EXCHANGES[k % 3], a symbol spelt
# that exchange's way), SOL among them on each exchange; status by position: one in 300 live.
POPULATE = """
INSERT INTO alerts (owner_id, exchange, symbol, target_price, direction, status, name,
                    created_at, triggered_at, triggered_price, deleted_at)
SELECT $1, p.exchange, p.symbol, 100 + g % 1000, CASE WHEN g % 2 = 0 THEN 'above' ELSE 'below' END,
       s.status, '', now() - ($2 - g) * interval '1 second',
       CASE WHEN s.status = 'triggered' THEN now() END,
       CASE WHEN s.status = 'triggered' THEN 100 + g % 1000 END,
       CASE WHEN s.status = 'deleted' THEN now() END
  FROM generate_series(1, $2) AS g
 CROSS JOIN LATERAL (SELECT (hashint4(g) & 2147483647) % 100 AS k) AS pick
 CROSS JOIN LATERAL (
       SELECT (ARRAY['binance', 'okx', 'kraken'])[pick.k % 3 + 1] AS exchange,
              CASE WHEN pick.k < 3 THEN (ARRAY['SOLUSDT', 'SOL-USDT', 'SOL/USDT'])[pick.k + 1]
                   ELSE 'C' || pick.k ||
                        (ARRAY['USDT', '-USDT', '/USDT'])[pick.k % 3 + 1] END AS symbol) AS p
 CROSS JOIN LATERAL (
       SELECT CASE WHEN g % 300 = 0 THEN 'created'
                   WHEN g % 3 = 0 THEN 'deleted' ELSE 'triggered' END AS status) AS s
"""

# The listing before migration 0007 (queries.alerts_page then), for the baseline.
BASELINE = """
SELECT p.*, c.total FROM (SELECT count(*) AS total FROM alerts WHERE {where}) AS c
LEFT JOIN LATERAL (SELECT {columns} FROM alerts WHERE {where}
                   ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3) AS p ON true
ORDER BY p.created_at DESC, p.id DESC
"""


def _baseline_sql(status: bool, exchange: bool, symbols: bool) -> str:
    where = ["owner_id = $1"]
    for present, clause in (
        (status, "status = ${}"),
        (exchange, "exchange = ${}"),
        (symbols, "symbol = ANY (${}::text[])"),
    ):
        if present:
            where.append(clause.format(len(where) + 3))
    return BASELINE.format(where=" AND ".join(where), columns=queries.ALERT_COLUMNS)


async def _populate(store: Store, alerts: int, others: int, each: int) -> int:
    owner = (await store.create_user("big", "big@example.com", "h")).id

    async def fill(con: Any) -> None:
        await con.execute(POPULATE, owner, alerts)
        for n in range(others):
            user = await con.fetchval(
                "INSERT INTO users (username, email, password_hash) VALUES ($1, '', '') "
                "RETURNING id",
                f"other{n}",
            )
            await con.execute(POPULATE, user, each)
        await con.execute("VACUUM ANALYZE")

    await store.bridge.run(fill)
    return owner


def _cases() -> list[tuple[str, dict[str, Any]]]:
    statuses: list[dict[str, Any]] = [
        {},
        *({"status": s} for s in ("created", "triggered", "deleted")),
    ]
    symbols: list[dict[str, Any]] = [{}, {"symbols": ["C12USDT"]}, {"symbols": SOL}]
    exchanges: list[dict[str, Any]] = [{}, {"exchange": "okx"}]
    cases = []
    for st in statuses:
        for sy in symbols:
            for ex in exchanges:
                if sy.get("symbols") == ["C12USDT"] and ex:
                    continue  # C12USDT is binance's only
                filters = {**st, **sy, **ex}
                name = " ".join(
                    f"{k}={'|'.join(v) if isinstance(v, list) else v}" for k, v in filters.items()
                )
                cases.append((name or "(none)", filters))
    return cases


async def _median_ms(call: Callable[[], Awaitable[Any]], repeat: int) -> float:
    await call()  # warm: prepare the statement, read the pages in
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        await call()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


async def _bench(alerts: int, page_size: int, repeat: int, baseline: bool) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    parent = Path(tempfile.mkdtemp(prefix="triggerbook-listing-"))
    try:
        config = DatabaseConfig(url="", data_dir=(parent / "pg").resolve())
        async with trio_asyncio.open_loop(), open_store(config) as store:
            owner = await _populate(store, alerts, others=200, each=500)
            for name, filters in _cases():
                count, _ = await store.list_alerts(owner, limit=1, **filters)
                last = max(0, (count - 1) // page_size * page_size)
                deepest = min(last, MAX_LIST_OFFSET)
                offsets = {"first": 0, "middle": deepest // 2 // page_size * page_size}
                offsets["deepest"] = deepest
                for page, offset in offsets.items():

                    async def ours(offset: int = offset, filters: dict[str, Any] = filters) -> Any:
                        return await store.list_alerts(
                            owner, limit=page_size, offset=offset, **filters
                        )

                    row: dict[str, Any] = {
                        "filter": name,
                        "page": page,
                        "offset": offset,
                        "count": count,
                        "ms": await _median_ms(ours, repeat),
                    }
                    if baseline:
                        sql = _baseline_sql(
                            "status" in filters, "exchange" in filters, "symbols" in filters
                        )
                        args = [
                            filters[k] for k in ("status", "exchange", "symbols") if k in filters
                        ]

                        async def old(
                            offset: int = offset, sql: str = sql, args: list[Any] = args
                        ) -> Any:
                            return await store.bridge.run(
                                lambda con: con.fetch(sql, owner, page_size, offset, *args)
                            )

                        row["baseline_ms"] = await _median_ms(old, max(3, repeat // 3))
                    results.append(row)
    finally:
        shutil.rmtree(parent, ignore_errors=True)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; print JSON with ``--json``, else a table. Returns 0."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.listing", description=__doc__)
    parser.add_argument("--json", action="store_true", help='print {"results": [...]}')
    parser.add_argument("--alerts", type=int, default=300_000, help="the owner's alerts")
    parser.add_argument("--page-size", type=int, default=100, help="rows a page (API max 100)")
    parser.add_argument("--repeat", type=int, default=15, help="timed runs per case")
    parser.add_argument("--no-baseline", action="store_true", help="skip the old listing")
    args = parser.parse_args(argv)
    results = trio.run(_bench, args.alerts, args.page_size, args.repeat, not args.no_baseline)
    if args.json:
        print(json.dumps({"results": results}))
        return 0
    print(
        f"listing benchmark: one owner with {args.alerts:,} alerts, pages of {args.page_size}, "
        f"median of {args.repeat} (ms)"
    )
    print(f"  {'filter':<44} {'page':<8} {'offset':>7} {'count':>8} {'ms':>7} {'baseline':>9}")
    for r in results:
        old = f"{r['baseline_ms']:>9.2f}" if "baseline_ms" in r else ""
        print(
            f"  {r['filter']:<44} {r['page']:<8} {r['offset']:>7} {r['count']:>8} "
            f"{r['ms']:>7.2f} {old}"
        )
    worst = max(results, key=lambda r: r["ms"])
    print(f"  slowest: {worst['filter']} {worst['page']} page, {worst['ms']:.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
