"""benchmarks/sinks.py runs end to end at tiny sizes and prints one JSON object with the figures
the issue names (speed is reported, not asserted)."""

from __future__ import annotations

import json

import pytest

from benchmarks import sinks

TINY = [
    "--mails", "20", "--webhooks", "20", "--repeats", "1", "--idle", "3", "--burst", "20",
    "--backlog", "20", "--frames", "300", "--feed-rounds", "1", "--json",
]  # fmt: skip


def test_bench_sinks_tiny_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert sinks.main(TINY) == 0
    results = json.loads(capsys.readouterr().out)["results"]
    for prefix in ("mail", "webhook"):
        assert results[f"{prefix}_bare_per_s"] > 0 and results[f"{prefix}_sink_per_s"] > 0
        assert results[f"{prefix}_ratio"] > 0
    for channel in ("console", "webhook"):
        for state in ("idle", "burst"):
            assert 0 < results[f"{channel}_{state}_p50_ms"] <= results[f"{channel}_{state}_p99_ms"]
    assert results["feed_ratio_idle"] > 0 and results["feed_ratio_busy"] > 0
    assert 0 <= results["feed_backlog_left"] <= 20
    assert results["backlog_mails_per_s"] > 0
