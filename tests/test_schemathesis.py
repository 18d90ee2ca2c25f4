"""An outside judge of the API: schemathesis against ``/openapi.json`` of the real engine.

``run_engine`` starts what ``triggerbook run`` starts (the real store on its own database, the
real book, the fire recorder, the web) with the Binance feed on a local exchange server
(``engine.feeds.testing``) and a local Binance REST server that quotes a price for any symbol
and publishes no list of symbols (so every well-spelt symbol is accepted, unverified, and a
create without a direction has it inferred from that price), so nothing leaves the machine. A
user registers and logs in, and one BTCUSDT trade makes that price known on the feed too.
schemathesis then runs its examples, coverage and fuzzing phases with that bearer token, a fixed
seed and a bounded number of cases, and checks every answer:

- ``not_a_server_error``: no 5xx;
- ``status_code_conformance``, ``content_type_conformance``, ``response_schema_conformance``:
  each answer is one the document lists, in its media type and schema;
- ``positive_data_acceptance``: a request the document says is valid is not refused (4xx other
  than 401/403/404/409/429);
- ``negative_data_rejection``: a request the document says is invalid is refused (413, a body
  over the cap, counts as refused too).

Anything found fails this test with schemathesis' own report (how to reproduce each case).
Run it alone: ``.venv/bin/python -m pytest -q tests/test_schemathesis.py``; ``ST_EXAMPLES``
(cases per operation, default below) and ``ST_SEED`` change the bounds.

bcrypt runs at cost 4 here (``WebSettings.bcrypt_rounds``): the fuzzer registers and logs in
hundreds of times, and at the production cost 12 that alone would take minutes of CPU.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import trio

from engine.app import Engine, run_engine
from engine.feeds.testing import (
    ExchangeServer,
    read_binance_request,
    serve_exchange,
    serve_rest,
)
from engine.plugins.registry import load_registry
from web.context import WebSettings

pytestmark = pytest.mark.slow

CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "positive_data_acceptance",
    "negative_data_rejection",
)
PHASES = "examples,coverage,fuzzing"
EXAMPLES = int(os.environ.get("ST_EXAMPLES", "100"))
SEED = int(os.environ.get("ST_SEED", "20261125"))
BUDGET_S = 170.0  # the engine's start, the run and the report; the run itself is bounded by cases
PASSWORD = "correct horse battery"


@pytest.fixture
async def database(fresh_database: Callable[[], Awaitable[str]]) -> str:
    """A database of its own on the session's server, so the engine starts from empty tables."""
    return await fresh_database()


def _schemathesis() -> str:
    """The ``st`` command of the interpreter running the tests."""
    here = Path(sys.executable).parent / "st"
    found = str(here) if here.exists() else shutil.which("st")
    if found is None:
        pytest.fail("schemathesis is not installed: pip install -e '.[test]'")
    return found


# A rejection is any of schemathesis' defaults, or 413: a body over the cap is refused unread.
ST_CONFIG = """
[checks.negative_data_rejection]
expected-statuses = [400, 401, 403, 404, 405, 406, 409, 413, 415, 422, 428, 429, "5xx"]
"""


def _ticker_price(target: str) -> tuple[int, bytes]:
    """Binance's ``GET /api/v3/ticker/price?symbol=X``, quoting 100 for any symbol."""
    symbol = parse_qs(urlsplit(target).query).get("symbol", [""])[0]
    return 200, json.dumps({"symbol": symbol, "price": "100.00000000"}).encode()


def _trade(symbol: str, price: str, trade_id: int) -> str:
    """A combined-stream trade frame as Binance documents it."""
    data = {"e": "trade", "E": 1_700_000_000_000, "s": symbol, "t": trade_id, "p": price,
            "q": "0.01", "T": 1_700_000_000_000, "m": True, "M": True}  # fmt: skip
    return json.dumps({"stream": f"{symbol.lower()}@trade", "data": data})


async def _prepare(base: str, server: ExchangeServer) -> str:
    """Register and log in the fuzzer's user, make BTCUSDT's price known; the access token."""
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        body = {"username": "fuzzer", "password": PASSWORD, "email": "fuzzer@example.com"}
        registered = await client.post("/api/auth/register", json=body)
        assert registered.status_code == 201, registered.text
        login = await client.post(
            "/api/auth/login", json={"username": "fuzzer", "password": PASSWORD}
        )
        assert login.status_code == 200, login.text
        headers = {"Authorization": f"Bearer {login.json()['access']}"}
        watch = {"symbol": "BTCUSDT", "target_price": "1", "direction": "below"}
        created = await client.post("/api/alerts", headers=headers, json=watch)
        assert created.status_code == 201, created.text
        await server.wait_until(lambda: "BTCUSDT" in server.subscribed())
        await server.send_for("BTCUSDT", _trade("BTCUSDT", "65000.5", 1))
        await _until_ok(client, "/api/prices/BTCUSDT", headers)
        await _until_ok(client, "/readyz", {})  # the feed connected: readiness is 200
        return str(login.json()["access"])


async def _until_ok(client: httpx.AsyncClient, path: str, headers: dict[str, str]) -> None:
    while True:
        if (await client.get(path, headers=headers)).status_code == 200:
            return
        await trio.sleep(0.02)


async def test_schemathesis_finds_nothing(
    tmp_path: Path, database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("web.server.WebSettings", functools.partial(WebSettings, bcrypt_rounds=4))
    (tmp_path / "schemathesis.toml").write_text(ST_CONFIG)
    registry = load_registry()
    command = [
        _schemathesis(),
        "--config-file",
        str(tmp_path / "schemathesis.toml"),
        "run",
        "--checks",
        ",".join(CHECKS),
        "--phases",
        PHASES,
        "--seed",
        str(SEED),
        "--max-examples",
        str(EXAMPLES),
        "--generation-database",
        "none",
        "--workers",
        "1",  # schemathesis' workers are threads; two of them hit a CPython AST race here
        "--request-timeout",
        "10",
        "--continue-on-failure",
        "--no-color",
        "--output-truncate",
        "false",
        "--report-dir",
        str(tmp_path / "report"),
    ]
    with trio.fail_after(BUDGET_S):
        async with (
            serve_exchange(read_binance_request) as server,
            serve_rest({"/api/v3/ticker/price": _ticker_price}) as rest,
            trio.open_nursery() as nursery,
        ):
            config_file = tmp_path / "config.toml"
            config_file.write_text(
                f'[http]\nport = 0\n[database]\nurl = "{database}"\n'
                f'data_dir = "{tmp_path / "pg"}"\n[auth]\nsecret = "{"s" * 48}"\n'
                f'[feeds.binance]\nurl = "{server.url}"\nrest_url = "{rest.url}"\n'
                "[sinks.console]\nenabled = false\n"
            )
            config = registry.load_config(config_file, environ={})
            engine: Engine = await nursery.start(run_engine, config, registry)
            base = f"http://127.0.0.1:{engine.http_port}"
            token = await _prepare(base, server)
            command += ["--header", f"Authorization: Bearer {token}", f"{base}/openapi.json"]
            result = await trio.run_process(
                command, capture_stdout=True, stderr=subprocess.STDOUT, check=False
            )
            nursery.cancel_scope.cancel()
    report = result.stdout.decode(errors="replace")
    if result.returncode != 0:
        pytest.fail(f"schemathesis found problems (exit {result.returncode}):\n{report}")
