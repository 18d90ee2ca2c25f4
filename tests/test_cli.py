"""The ``triggerbook`` command as a user runs it: a real process, real signals."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import trio
import trio_websocket

from engine.model import Tick

TRIGGERBOOK = [sys.executable, "-m", "engine.cli"]
READY = re.compile(rb"triggerbook ready on http://127\.0\.0\.1:(\d+)")


@pytest.fixture
def workdir() -> Iterator[Path]:
    # Not under pytest's basetemp: the embedded server runs as another user when we are root
    # and must traverse the parent folders (see tests/conftest.py).
    path = Path(tempfile.mkdtemp(prefix="triggerbook-cli-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_plugins_lists_built_ins_and_installed_packages() -> None:
    out = subprocess.run(
        [*TRIGGERBOOK, "plugins"], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    for name in ("binance", "replay", "coinbase", "kraken", "okx", "finnhub"):
        assert re.search(rf"\b{name}\b", out), (name, out)
    assert "triggerbook-coinbase" in out


def test_a_bad_config_stops_the_start_with_the_key_and_the_file(workdir: Path) -> None:
    config = workdir / "bad.toml"
    config.write_text("[http]\nprot = 8000\n")
    result = subprocess.run(
        [*TRIGGERBOOK, "run", "--config", str(config)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert str(config) in result.stderr
    assert "unknown key 'prot' in [http]" in result.stderr


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
async def test_run_serves_then_a_signal_stops_it_cleanly(workdir: Path, signum: int) -> None:
    config = workdir / "config.toml"
    config.write_text(
        f'[http]\nport = 0\n[database]\ndata_dir = "{workdir / "pg"}"\n'
        "[feeds.binance]\nenabled = false\n"
    )
    with trio.fail_after(90):
        process = await trio.lowlevel.open_process(
            [*TRIGGERBOOK, "run", "--config", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        log = b""
        try:
            assert process.stderr is not None
            while not (match := READY.search(log)):
                chunk = await process.stderr.receive_some()
                assert chunk, log.decode()
                log += chunk
            async with httpx.AsyncClient() as client:
                health = await client.get(f"http://127.0.0.1:{int(match.group(1))}/healthz")
            assert health.status_code == 200
            assert (workdir / "pg" / "postmaster.pid").exists()

            process.send_signal(signum)
            with trio.fail_after(20):  # the grace deadline is 10 s
                while chunk := await process.stderr.receive_some():
                    log += chunk
                code = await process.wait()
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    assert code == 0, log.decode()
    assert b"shutting down" in log
    assert b"Traceback" not in log
    # The embedded server was stopped with the engine.
    assert not (workdir / "pg" / "postmaster.pid").exists()


def test_plugins_new_writes_a_package_whose_own_tests_pass(tmp_path: Path) -> None:
    """The skeleton an author starts from: its tests pass as written, on the real kit."""
    out = subprocess.run(
        [*TRIGGERBOOK, "plugins", "new", "bybit_spot", "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    root = tmp_path / "triggerbook-bybit-spot"
    assert str(root) in out
    assert (root / "pyproject.toml").read_text().startswith("[build-system]")
    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(root / "tests")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "7 passed" in tests.stdout
    # never over an author's work, and only a usable name
    again = subprocess.run(
        [*TRIGGERBOOK, "plugins", "new", "bybit_spot", "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert again.returncode == 1 and "exists" in again.stderr
    bad = subprocess.run(
        [*TRIGGERBOOK, "plugins", "new", "Bybit!", "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 1 and "not a plugin name" in bad.stderr


SERVING = re.compile(rb"url = \"(ws://127\.0\.0\.1:\d+)\"")


async def test_plugins_serve_speaks_the_plugins_frames_to_a_real_client() -> None:
    """An operator's local exchange: a real WebSocket client subscribes as the engine would and
    gets the recorded frames and then new trades, which the plugin itself parses into ticks."""
    from engine.feeds.binance import Binance

    with trio.fail_after(30):
        process = await trio.lowlevel.open_process(
            [*TRIGGERBOOK, "plugins", "serve", "binance", "--interval", "0.02"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        out = b""
        try:
            assert process.stdout is not None
            while not (match := SERVING.search(out)):
                chunk = await process.stdout.receive_some()
                assert chunk, out.decode()
                out += chunk
            assert b"[feeds.binance]" in out
            binance = Binance({"url": match.group(1).decode()})
            ticks: list[Tick] = []
            async with trio_websocket.open_websocket_url(binance.connect_url()) as ws:
                for frame in binance.subscribe_request(["BNBBTC", "ETHUSDT"], 1):
                    await ws.send_message(frame)
                while len({t.price for t in ticks if t.symbol == "ETHUSDT"}) < 3:
                    ticks.extend(binance.parse(await ws.get_message(), 1))
            # the recorded BNBBTC trades came first, then trades of both, made up
            assert [str(t.price) for t in ticks[:2]] == ["0.001", "0.001"]
            assert {t.symbol for t in ticks} == {"BNBBTC", "ETHUSDT"}
            process.send_signal(signal.SIGINT)
            code = await process.wait()
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
        errors = await process.stderr.receive_some() if process.stderr else b""
    assert code == 0 and b"Traceback" not in errors, errors.decode()
    with trio.fail_after(30):
        unknown = await trio.run_process(
            [*TRIGGERBOOK, "plugins", "serve", "nope"], capture_stderr=True, check=False
        )
    assert unknown.returncode == 1 and b"is no WebSocket exchange" in unknown.stderr
