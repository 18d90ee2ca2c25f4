"""benchmarks/store.py runs end to end (``--quick`` sizes) and prints one JSON object with the
keys the issue names (speed is reported, not asserted)."""

from __future__ import annotations

import json

import pytest

from benchmarks.store import main

KEYS = {
    "fires_per_s_batched", "fires_per_s_single", "creates_per_s", "startup_load_1m_s",
    "fires_batched_cpu_us", "startup_load_1m_cpu_s",
}  # fmt: skip


def test_bench_store_quick_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--quick", "--json"]) == 0
    results = json.loads(capsys.readouterr().out)["results"]
    assert results.keys() == KEYS
    assert all(value > 0 for value in results.values())
