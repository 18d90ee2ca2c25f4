"""``python -m benchmarks.symbol_churn [--symbols 150000] [--creates 40]``: what a large watched
set costs the rest of the engine (issue 15, finding 4).

It seeds ``--symbols`` live alerts, one symbol each (spread over owners of 1,000 alerts, written
straight into a fresh embedded Postgres), then starts the whole engine (``engine.app.run_engine``:
store, book, feeds, web) with the Binance feed on a local exchange server
(``engine.feeds.testing``) that every symbol gets subscribed on, and waits until they all are.
Then, from this process, on loopback:

- ``--creates`` alert creates by one user, alternating a symbol nobody watches yet (the watched
  set grows by one: demand, the feed's placement, a subscription) and a symbol already watched,
  one at a time with a pause between: p50/max of each, and the ratio of the p50s (the issue's
  target: a create on a new symbol within 2x one on an existing symbol);
- meanwhile ``/healthz`` every 10 ms: p50/p99/max (the loop blocked by the churn shows here);
- ``/readyz``'s public body size in bytes;
- ``/metrics``: the median and max time of 10 scrapes.

Run the same command on two trees to compare (the exchange server runs in this process too, the
same for both). Loopback only, bounded in count and time.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import trio
import trio_asyncio

SEED_USERS = """
INSERT INTO users (username, email, password_hash)
SELECT 'seed' || u, '', '' FROM generate_series(1, $1) AS u
"""
SEED_ALERTS = """
INSERT INTO alerts (owner_id, exchange, symbol, target_price, direction)
SELECT (SELECT min(id) FROM users) + (g - 1) / 1000, 'binance',
       'S' || lpad(g::text, 7, '0') || 'USDT', 1000000, 'above'
  FROM generate_series(1, $1) AS g
"""
PASSWORD = "benchmark-password"


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _seed(config: Any, symbols: int) -> None:
    from engine.store import open_store

    async with trio_asyncio.open_loop(), open_store(config.database) as store:

        async def fill(con: Any) -> None:
            await con.execute(SEED_USERS, (symbols + 999) // 1000)
            await con.execute(SEED_ALERTS, symbols)
            await con.execute("VACUUM ANALYZE")

        await store.bridge.run(fill)


async def _bench(args: argparse.Namespace, parent: Path) -> dict[str, Any]:
    from engine.app import run_engine
    from engine.feeds.testing import read_binance_request, serve_exchange
    from engine.plugins.registry import load_registry

    registry = load_registry()
    out: dict[str, Any] = {"symbols": args.symbols}
    with trio.fail_after(args.budget_s):
        async with serve_exchange(read_binance_request) as server, trio.open_nursery() as nursery:
            config_file = parent / "config.toml"
            config_file.write_text(
                f'[http]\nport = 0\n[database]\nurl = ""\ndata_dir = "{parent / "pg"}"\n'
                f'[auth]\nsecret = "{"s" * 48}"\n'
                f'[feeds.binance]\nurl = "{server.url}"\nrest_url = ""\n'
                "[sinks.console]\nenabled = false\n"
            )
            config = registry.load_config(config_file, environ={})
            started = time.perf_counter()
            await _seed(config, args.symbols)
            out["seed_s"] = round(time.perf_counter() - started, 1)
            started = time.perf_counter()
            engine = await nursery.start(run_engine, config, registry)
            out["engine_start_s"] = round(time.perf_counter() - started, 1)
            started = time.perf_counter()
            await server.wait_until(
                lambda: sum(len(c.subscribed) for c in server.live) >= args.symbols
            )
            out["all_subscribed_s"] = round(time.perf_counter() - started, 1)
            base = f"http://127.0.0.1:{engine.http_port}"
            async with httpx.AsyncClient(base_url=base, timeout=30) as client:
                out.update(await _measure(client, args))
            nursery.cancel_scope.cancel()
    return out


async def _measure(client: httpx.AsyncClient, args: argparse.Namespace) -> dict[str, Any]:
    body = {"username": "churner", "password": PASSWORD, "email": "churner@example.com"}
    assert (await client.post("/api/auth/register", json=body)).status_code == 201
    login = await client.post("/api/auth/login", json={"username": "churner", "password": PASSWORD})
    headers = {"Authorization": f"Bearer {login.json()['access']}"}
    new_ms: list[float] = []
    existing_ms: list[float] = []
    health_ms: list[float] = []
    done = trio.Event()

    async def probe() -> None:
        async with httpx.AsyncClient(base_url=str(client.base_url), timeout=30) as own:
            while not done.is_set():
                t0 = time.perf_counter()
                r = await own.get("/healthz")
                health_ms.append((time.perf_counter() - t0) * 1e3)
                assert r.status_code == 200
                await trio.sleep(0.01)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(probe)
        for n in range(args.creates):
            fresh = n % 2 == 0
            symbol = f"N{n:07d}USDT" if fresh else f"S{n + 1:07d}USDT"
            alert = {"symbol": symbol, "target_price": "1000000", "direction": "above"}
            t0 = time.perf_counter()
            r = await client.post("/api/alerts", headers=headers, json=alert)
            (new_ms if fresh else existing_ms).append((time.perf_counter() - t0) * 1e3)
            assert r.status_code == 201, r.text
            await trio.sleep(0.1)  # the churn each create sets off settles
        done.set()
    ready = await client.get("/readyz")
    scrapes: list[float] = []
    for _ in range(10):
        t0 = time.perf_counter()
        r = await client.get("/metrics")
        scrapes.append((time.perf_counter() - t0) * 1e3)
        assert r.status_code == 200
    return {
        "create_new_symbol_p50_ms": round(statistics.median(new_ms), 2),
        "create_new_symbol_max_ms": round(max(new_ms), 2),
        "create_existing_symbol_p50_ms": round(statistics.median(existing_ms), 2),
        "create_existing_symbol_max_ms": round(max(existing_ms), 2),
        "new_over_existing": round(statistics.median(new_ms) / statistics.median(existing_ms), 2),
        "healthz_p50_ms": round(statistics.median(health_ms), 2),
        "healthz_p99_ms": round(_pct(health_ms, 0.99), 2),
        "healthz_max_ms": round(max(health_ms), 2),
        "readyz_status": ready.status_code,
        "readyz_bytes": len(ready.content),
        "metrics_scrape_p50_ms": round(statistics.median(scrapes), 2),
        "metrics_scrape_max_ms": round(max(scrapes), 2),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print its figures as JSON. Returns 0."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.symbol_churn", description=__doc__)
    parser.add_argument("--symbols", type=int, default=150_000, help="live symbols seeded")
    parser.add_argument("--creates", type=int, default=40, help="creates, new and existing")
    parser.add_argument("--budget-s", type=float, default=900.0, help="the whole run's bound")
    args = parser.parse_args(argv)
    parent = Path(tempfile.mkdtemp(prefix="triggerbook-churn-"))
    try:
        result = trio.run(_bench, args, parent)
    finally:
        shutil.rmtree(parent, ignore_errors=True)
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
