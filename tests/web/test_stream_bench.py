"""benchmarks/stream.py runs end to end in its ``--quick`` sizes (a real web and store, the feed's
exchange process, a process of WebSocket watchers) and prints the JSON the README's figures come
from. Figures are reported, not asserted: the run shows the harness measures what it says."""

from __future__ import annotations

import json

import pytest

from benchmarks.stream import main


def test_bench_stream_quick_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--quick", "--json"]) == 0
    results = json.loads(capsys.readouterr().out)["results"]
    assert results["clients"] == 20 and results["users"] == 4 and results["rounds"] == 1
    for label in ("without", "with"):
        assert results[f"fires_{label}"] > 0
        assert results[f"ratio_cpu_{label}"] > 0
        assert results[f"tick_to_fire_p99_us_{label}"] > 0
    assert results["ratio_cpu_with_vs_without"] > 0
    assert results["client_prices_per_s"] > 0  # the watchers really read prices during the run
    assert "rss_per_client_kb" in results  # RSS may reuse freed memory: not asserted
    assert results["traced_per_client_kb"] > 0
