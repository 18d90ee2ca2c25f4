"""The book benchmark runs end to end on a small scenario and prints one JSON object."""

from __future__ import annotations

import json

import pytest

from benchmarks.book import main

KEYS = {
    "triggers", "symbols", "ticks", "fires", "no_fire_ticks_per_s", "ticks_per_s", "fires_per_s",
    "ns_per_tick_p50", "ns_per_tick_p99", "rss_mb_per_million", "bulk_load_s",
    "naive_ticks_per_s", "speedup_vs_naive",
}  # fmt: skip


def test_bench_book_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--triggers", "1000", "--symbols", "10", "--ticks", "2000", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    [row] = out["results"]
    assert row.keys() >= KEYS
    assert (row["triggers"], row["symbols"], row["ticks"]) == (1000, 10, 2000)
    assert row["fires"] > 0
    assert row["fires_per_s"] > 0 and row["naive_ticks_per_s"] > 0
