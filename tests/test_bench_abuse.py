"""benchmarks/abuse.py runs end to end against a real engine child (``--quick`` sizes, two cheap
scenarios) and prints one JSON object of the shape the README shows (figures are reported, not
asserted: the harness measures whatever the engine does)."""

from __future__ import annotations

import json

import pytest

from benchmarks.abuse import main

CLIENT = {"healthz", "login", "create"}
LATENCY = {"n", "p50_ms", "p99_ms", "max_ms", "errors", "statuses"}


def test_bench_abuse_quick_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["--quick", "--json", "--only", "floods,logins", "--flood", "40", "--logins", "6"])
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert out["engine_commit"]
    scenarios = out["scenarios"]
    assert scenarios.keys() == {"floods", "logins"}
    for result in scenarios.values():
        assert result["client"].keys() == CLIENT
        assert all(series.keys() == LATENCY for series in result["client"].values())
        assert result["client"]["healthz"]["n"] > 0
        assert result["engine"]["fds"].keys() == {"before", "peak", "after"}
        assert result["engine"]["rss_mb"]["peak"] > 0
    floods = scenarios["floods"]
    for kind in ("idle", "half_line"):
        assert floods[kind]["sockets"] == 20
        assert {"refused", "closed", "close_p50_s", "close_max_s"} <= floods[kind].keys()
    logins = scenarios["logins"]
    assert sum(logins["statuses"].values()) == logins["wrong_logins"] == 6
