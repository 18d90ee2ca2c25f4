"""Benchmark of the trigger book against a naive linear scan, on a seeded random walk.

    triggerbook bench book [--triggers N] [--symbols S] [--ticks T] [--seed K] [--json]

Without ``--triggers``/``--symbols`` it runs the matrix N in {1e3, 1e5, 1e6} x S in {1, 100,
1000}. Per scenario, on one core, each timed section repeated and the median reported:

- ``bulk_load_s``: loading the N triggers (already built) into an empty book;
- ``no_fire_ticks_per_s``: ticks at each symbol's reference price, which fire nothing;
- ``ticks_per_s``, ``fires``: the random walk (per-tick log-return sigma 2e-4, 2-8 decimals)
  over thresholds placed log-normally around the price (sigma 3%), so a share of them fires.
  How big a share depends on S, because the T ticks are shared by the symbols: with S=1 all
  1e5 ticks move one price (sigma 2e-4 * sqrt(1e5) = 6%, more than a typical day of BTC), so
  the walk fires about 78% of the triggers, a heavy-firing stress case; with S=1000 each
  price moves about 0.2% and about 4% fire. The sigma is kept so that runs stay comparable;
- ``ns_per_tick_p50``/``p99``: perf_counter_ns around each ``apply`` of the walk (one pass);
- ``fires_per_s``: bursts, ticks that move each symbol's price 20% up then 20% down in steps;
  each step fires a slice of a side, which is what the issue's "fires/s in bursts" means when a
  symbol holds many triggers (N/S >= 100: dozens to thousands of fires per tick). With a
  handful of triggers per symbol (N=1e3, S >= 100) a step fires about one trigger, so that
  row's fires/s is the per-firing-tick cost, not burst throughput;
- ``naive_ticks_per_s``: the same walk through a linear scan of the symbol's triggers with
  exact Decimal comparisons, for a bounded time; ``speedup_vs_naive`` = ticks_per_s / that;
- ``rss_mb_per_million``: peak RSS growth of a fresh process that streams N triggers into a
  book, per million triggers (the book's whole footprint, records included).

No recorded-price data set ships inside a package on the registries we can reach, so there is
no replay scenario; ``engine/feeds`` replays recorded ticks for offline runs instead.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal

from engine.book.book import TriggerBook
from engine.model import Direction, Tick, Trigger

EXCHANGE = "binance"
MATRIX_TRIGGERS = (1_000, 100_000, 1_000_000)
MATRIX_SYMBOLS = (1, 100, 1_000)
DEFAULT_TICKS = 100_000
WALK_SIGMA = 2e-4  # per-tick log-return
THRESHOLD_SIGMA = 0.03  # log-normal spread of thresholds around the reference price
NAIVE_BUDGET_S = 2.0


@dataclass(frozen=True)
class Market:
    """Symbols with a reference price in integer units of 10**-decimals."""

    symbols: list[str]
    units: list[int]
    decimals: list[int]

    @classmethod
    def make(cls, count: int, seed: int) -> Market:
        rng = random.Random(seed)
        decimals = [rng.randint(2, 8) for _ in range(count)]
        units = [max(1000, round(10 ** rng.uniform(-1, 5) * 10**d)) for d in decimals]
        return cls([f"SYM{i:05d}USDT" for i in range(count)], units, decimals)

    def price(self, index: int, units: int) -> Decimal:
        return Decimal(units).scaleb(-self.decimals[index])


def triggers(market: Market, count: int, seed: int) -> Iterator[Trigger]:
    """``count`` triggers spread evenly over the symbols, none at a reference price."""
    rng = random.Random(seed + 1)
    above, below = Direction.ABOVE, Direction.BELOW
    symbols = len(market.symbols)
    for tid in range(1, count + 1):
        index = tid % symbols
        base = market.units[index]
        units = round(base * math.exp(rng.gauss(0.0, THRESHOLD_SIGMA)))
        if units == base:
            units += 1
        direction = above if units > base else below
        yield Trigger(tid, EXCHANGE, market.symbols[index], direction, market.price(index, units))


def walk(market: Market, count: int, seed: int) -> list[Tick]:
    """A seeded random walk: each tick moves one random symbol's price."""
    rng = random.Random(seed + 2)
    units = list(market.units)
    out = []
    for _ in range(count):
        index = rng.randrange(len(units))
        units[index] = max(1, round(units[index] * math.exp(rng.gauss(0.0, WALK_SIGMA))))
        out.append(Tick(EXCHANGE, market.symbols[index], market.price(index, units[index])))
    return out


def bursts(market: Market) -> list[Tick]:
    """Per symbol, steps up to +20% then down to -20%: each step fires a slice of a side."""
    steps = max(1, min(10, 1000 // len(market.symbols)))
    out = []
    for index, symbol in enumerate(market.symbols):
        base = market.units[index]
        path = [base + base * k // (5 * steps) for k in range(1, steps + 1)]
        path += [base - base * k // (5 * steps) for k in range(1, steps + 1)]
        out += [Tick(EXCHANGE, symbol, market.price(index, units)) for units in path]
    return out


class NaiveBook:
    """The baseline: a list per symbol, scanned in full on every tick, exact Decimals."""

    def __init__(self, loaded: Sequence[Trigger]) -> None:
        self.lists: dict[tuple[str, str], list[Trigger]] = {}
        for trigger in loaded:
            self.lists.setdefault((trigger.exchange, trigger.symbol), []).append(trigger)

    def apply(self, tick: Tick) -> list[Trigger]:
        live = self.lists.get((tick.exchange, tick.symbol), [])
        price = tick.price
        fired = [
            t
            for t in live
            if (price >= t.target if t.direction is Direction.ABOVE else price <= t.target)
        ]
        if fired:
            gone = {t.id for t in fired}
            live[:] = [t for t in live if t.id not in gone]
            fired.sort(key=lambda t: (t.direction is not Direction.ABOVE, t.target, t.id))
        return fired


def _timed(fn: Callable[[], object]) -> float:
    gc.disable()
    try:
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start
    finally:
        gc.enable()


def run_scenario(n: int, s: int, ticks: int, seed: int, repeats: int) -> dict[str, float | int]:
    """Measure one scenario (see the module docstring); returns the result row."""
    market = Market.make(s, seed)
    loaded = list(triggers(market, n, seed))
    stream = walk(market, ticks, seed)
    quiet = [
        Tick(EXCHANGE, market.symbols[i % s], market.price(i % s, market.units[i % s]))
        for i in range(ticks)
    ]
    sweep = bursts(market)
    bulk, no_fire, walking, burst_rates, fires, samples = [], [], [], [], 0, []
    fired_per_tick: list[int] = []
    for rep in range(repeats):
        book = TriggerBook()
        bulk.append(_timed(lambda b=book: b.bulk_load(loaded)))
        apply = book.apply
        no_fire.append(ticks / _timed(lambda a=apply: [a(t) for t in quiet]))
        if rep == 0:
            clock = time.perf_counter_ns
            for tick in stream:
                start = clock()
                fired = apply(tick)
                samples.append(clock() - start)
                fired_per_tick.append(len(fired))
            fires = sum(fired_per_tick)
        else:
            walking.append(ticks / _timed(lambda a=apply: [a(t) for t in stream]))
        results: list[list[Trigger]] = []
        elapsed = _timed(lambda a=apply, r=results: r.extend(a(t) for t in sweep))
        burst_rates.append(sum(map(len, results)) / elapsed)
        del book
    naive_rate = _naive(loaded, stream, fired_per_tick)
    samples.sort()
    ticks_per_s = statistics.median(walking) if walking else ticks / (sum(samples) / 1e9)
    return {
        "triggers": n,
        "symbols": s,
        "ticks": ticks,
        "fires": fires,
        "no_fire_ticks_per_s": round(statistics.median(no_fire)),
        "ticks_per_s": round(ticks_per_s),
        "fires_per_s": round(statistics.median(burst_rates)),
        "ns_per_tick_p50": samples[len(samples) // 2],
        "ns_per_tick_p99": samples[min(len(samples) - 1, len(samples) * 99 // 100)],
        "rss_mb_per_million": rss_mb_per_million(n, s, seed),
        "bulk_load_s": round(statistics.median(bulk), 4),
        "naive_ticks_per_s": round(naive_rate, 1),
        "speedup_vs_naive": round(ticks_per_s / naive_rate, 1),
    }


def _naive(loaded: list[Trigger], stream: list[Tick], expected: list[int]) -> float:
    """Ticks/s of the naive book on the walk, within a time budget; checks it agrees."""
    naive = NaiveBook(loaded)
    done = 0
    start = time.perf_counter()
    deadline = start + NAIVE_BUDGET_S
    for tick in stream:
        if len(naive.apply(tick)) != expected[done]:
            raise AssertionError(f"naive and book disagree on tick {done}")
        done += 1
        if done % 16 == 0 and time.perf_counter() > deadline:
            break
    return done / (time.perf_counter() - start)


_RSS_CHILD = """
import gc, json, resource, sys, psutil
from engine.book.book import TriggerBook
from benchmarks.book import Market, triggers
n, s, seed = map(int, sys.argv[1:4])
market = Market.make(s, seed)
gc.collect()
before = psutil.Process().memory_info().rss
book = TriggerBook()
book.bulk_load(triggers(market, n, seed))
# VmHWM is this image's peak; ru_maxrss would also count the parent's RSS before exec.
try:
    with open("/proc/self/status") as status:
        line = next(x for x in status if x.startswith("VmHWM:"))
    peak = int(line.split()[1]) * 1024
except OSError:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"before": before, "peak": peak, "now": psutil.Process().memory_info().rss}))
"""

_rss_cache: dict[int, float] = {}


def rss_mb_per_million(n: int, s: int, seed: int) -> float:
    """Peak RSS growth per million triggers of a fresh process loading n triggers (per n)."""
    if n not in _rss_cache:
        out = subprocess.run(
            [sys.executable, "-c", _RSS_CHILD, str(n), str(s), str(seed)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        sizes = json.loads(out)
        _rss_cache[n] = round((sizes["peak"] - sizes["before"]) / n, 1)  # bytes/trigger = MB/M
    return _rss_cache[n]


@dataclass(frozen=True)
class Options:
    triggers: int | None
    symbols: int | None
    ticks: int
    seed: int
    json: bool


def parse(argv: list[str]) -> Options:
    parser = argparse.ArgumentParser(prog="triggerbook bench book", description=__doc__)
    parser.add_argument("--triggers", type=int, help="N (default: the matrix)")
    parser.add_argument("--symbols", type=int, help="S (default: the matrix)")
    parser.add_argument("--ticks", type=int, default=DEFAULT_TICKS, help="ticks per stream")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true", help='print {"results": [...]}')
    args = parser.parse_args(argv)
    return Options(args.triggers, args.symbols, args.ticks, args.seed, args.json)


COLUMNS = [
    ("triggers", "N"),
    ("symbols", "S"),
    ("fires", "fires"),
    ("no_fire_ticks_per_s", "no-fire t/s"),
    ("ticks_per_s", "ticks/s"),
    ("fires_per_s", "fires/s"),
    ("ns_per_tick_p50", "p50 ns"),
    ("ns_per_tick_p99", "p99 ns"),
    ("rss_mb_per_million", "MB/M"),
    ("bulk_load_s", "load s"),
    ("naive_ticks_per_s", "naive t/s"),
    ("speedup_vs_naive", "speedup"),
]


def table(rows: list[dict[str, float | int]]) -> str:
    """A Markdown table of the result rows."""
    lines = ["| " + " | ".join(title for _, title in COLUMNS) + " |"]
    lines.append("|" + "---:|" * len(COLUMNS))
    for row in rows:
        lines.append("| " + " | ".join(f"{row[key]:,}" for key, _ in COLUMNS) + " |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    """Run one scenario, or the matrix; print a table or one JSON object. Returns 0."""
    options = parse(argv)
    sizes = [options.triggers] if options.triggers else list(MATRIX_TRIGGERS)
    spreads = [options.symbols] if options.symbols else list(MATRIX_SYMBOLS)
    rows = []
    for n in sizes:
        for s in spreads:
            repeats = 3 if n >= 1_000_000 else 5
            rows.append(run_scenario(n, s, options.ticks, options.seed, repeats))
            if not options.json:
                print(f"done N={n:,} S={s:,}", file=sys.stderr)
    if options.json:
        print(json.dumps({"results": rows}))
    else:
        print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
