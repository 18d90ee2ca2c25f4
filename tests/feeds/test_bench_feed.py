"""benchmarks/feed.py runs end to end on a small recording (speed is reported, not asserted)."""

from __future__ import annotations

import json

import pytest

from benchmarks import feed


def test_bench_feed_json_smoke(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--frames", "600", "--array-frames", "20", "--elements", "10"]
    assert feed.main([*argv, "--triggers", "50", "--rounds", "1", "--json"]) == 0
    results = json.loads(capsys.readouterr().out)["results"]
    assert 0 < results["fires"] <= 50  # each trigger fires at most once
    assert results["bare_frames_per_s"] > 0 and results["feed_frames_per_s"] > 0
    assert results["array_ticks_per_s"] > 0
    assert results["idle_fires"] > 0
