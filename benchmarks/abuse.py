"""``triggerbook bench abuse [--json] [--only NAME,...] [--quick]``: the engine under attack, from
this machine, loopback only, bounded in count and time (issue 15).

    triggerbook bench abuse [--only floods,slow_bodies,logins,registrations,symbols,shutdown]
                            [--quick] [--json] [--flood N] [--flood-wait S] [--slow N]
                            [--slow-wait S] [--logins N] [--reg-clients N] [--reg-seconds S]
                            [--symbols N] [--burst-clients N] [--burst-before S] [--commit REV]

The real engine runs as a child process (``python -m engine.cli run --config <tmp toml>``): an
embedded Postgres in a temporary data dir, ``[http] port`` a free port, ``[feeds.binance] url``
this process's local exchange server (``engine.feeds.testing``), ``[limits]`` raised for the
symbol churn. Only keys the config schema knows are written, so the harness runs against whatever
main has; it measures, it does not assert. The engine is this working tree's, or with ``--commit``
that commit's (``git archive`` into the temporary directory). Before each scenario the harness
waits for the engine to go idle (work queued by the last one, such as hashes for clients long
gone, would count in the next). The child's open files and RSS are sampled with psutil
(before, peak, after each scenario); meanwhile a legitimate client probes ``/healthz`` (every
50 ms), logs in (every second, from 127.0.0.1) and creates an alert (every 0.5 s). Attackers speak
from other loopback addresses (127.0.0.2, 127.0.0.3), so a per-address limit on them does not
touch the real user. Scenarios, each with the issue's target where it names one:

- ``floods``: ``--flood`` raw sockets, half idle, half sending half a request line; how long
  until the engine closes each (EOF or an answer), within ``--flood-wait``. Target: 2,000 leave
  ``/healthz`` p99 < 100 ms and are closed within the head deadline.
- ``slow_bodies``: logged-in ``POST /api/alerts`` with a 1,000-byte body sent 1 byte a second,
  on the fast lane (``Content-Length``) and through Quart (chunked: the lane hands over a body
  without a length); when the engine answers or closes, within ``--slow-wait``.
- ``logins``: ``--logins`` wrong-password logins at once for 3 usernames from one address;
  statuses, hashes counted by ``/metrics`` if it has such a counter (else each 401 is a hash on
  the code path that counts after hashing).
- ``registrations``: ``--reg-clients`` clients registering for ``--reg-seconds``, taken and new
  usernames alternately. Target: a real login < 1 s.
- ``symbols``: creates on ``--symbols`` new symbols (the issue's figure is 150,000; the default
  20,000 keeps the run short), then creates on a new vs an existing symbol (target within 2x),
  ``/readyz`` body size and ``/metrics`` scrape time.
- ``shutdown`` (always last): ``--burst-clients`` clients creating, SIGTERM to the child
  mid-burst; then the engine is started again on the same data dir and every answer is checked:
  a 201's id exists, a non-2xx (or no answer) has a row or not; 500s counted.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import psutil
import trio

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "abuse-harness-password"
PROBE_TIMEOUT_S = 30.0  # a real user's request slower than this counts as an error
LEGIT, CHURN, BURST = "legit_user", "churn_user", "burst_user"
VICTIMS = ("victim_a", "victim_b", "victim_c")
ATTACKER, REGISTRAR = "127.0.0.2", "127.0.0.3"
SCENARIOS = ("floods", "slow_bodies", "logins", "registrations", "symbols", "shutdown")
TARGETS = {
    "floods": "2,000 half-open connections: /healthz p99 < 100 ms, all closed within the head "
    "deadline",
    "registrations": "a real login < 1 s at 20 concurrent registering clients",
    "symbols": "a create on a new symbol at 150,000 symbols within 2x one on an existing symbol",
    "shutdown": "every 201 row exists, no non-2xx row, no 500",
}


# --- figures -------------------------------------------------------------------------------


def _ms(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 1)


def _latency(values: Sequence[float], errors: int = 0) -> dict[str, Any]:
    return {
        "n": len(values),
        "p50_ms": _ms(values, 0.5),
        "p99_ms": _ms(values, 0.99),
        "max_ms": _ms(values, 1.0),
        "errors": errors,
    }


@dataclass
class Series:
    """Latencies of one kind of request, and how many failed (error or no answer in time)."""

    times: list[float] = field(default_factory=list)
    errors: int = 0
    statuses: Counter[str] = field(default_factory=Counter)

    def figures(self) -> dict[str, Any]:
        return {**_latency(self.times, self.errors), "statuses": dict(self.statuses)}


class Watch:
    """The child's open files and RSS: before, peak (sampled every 100 ms), after."""

    def __init__(self, pid: int) -> None:
        self._process = psutil.Process(pid)
        self.before = self.peak = (0, 0)

    def sample(self) -> tuple[int, int]:
        try:
            return self._process.num_fds(), self._process.memory_info().rss
        except psutil.Error:
            return 0, 0

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        self.before = self.peak = await trio.to_thread.run_sync(self.sample)
        task_status.started()
        while True:
            fds, rss = await trio.to_thread.run_sync(self.sample)
            self.peak = (max(self.peak[0], fds), max(self.peak[1], rss))
            await trio.sleep(0.1)

    async def settle(self, limit: float = 120, busy: float = 20) -> float | None:
        """Wait (up to ``limit`` seconds) until the engine uses under ``busy`` % of a core over
        half a second, so that work left by the last scenario (hashes queued by requests long
        gone) does not count in the next; the seconds waited (None: it never settled)."""
        start = time.monotonic()
        try:
            self._process.cpu_percent()
            while time.monotonic() - start < limit:
                await trio.sleep(0.5)
                if self._process.cpu_percent() < busy:
                    return round(time.monotonic() - start, 1)
        except psutil.Error:
            pass
        return None

    def figures(self, after: tuple[int, int]) -> dict[str, Any]:
        mb = 1 << 20
        return {
            "fds": {"before": self.before[0], "peak": self.peak[0], "after": after[0]},
            "rss_mb": {
                "before": round(self.before[1] / mb, 1),
                "peak": round(self.peak[1] / mb, 1),
                "after": round(after[1] / mb, 1),
            },
        }


# --- the engine as a child process -----------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


KNOWN_KEYS = """
import json
from engine.config import CORE_SCHEMA
from engine.plugins.registry import load_registry
schema = {**CORE_SCHEMA, **load_registry().sections()}
print(json.dumps({section: sorted(keys) for section, keys in schema.items()}))
"""


def _known_keys(source: Path) -> dict[str, set[str]]:
    """Every config section and its keys, as the engine to be run has them (other work may add
    keys such as ``[http] max_connections``: only keys known here are written). Asked of a
    Python in ``source``, which may be another commit than this process imported."""
    found = subprocess.run(
        [sys.executable, "-c", KNOWN_KEYS],
        cwd=source,
        env=_child_env(source),
        capture_output=True,
        text=True,
        check=True,
    )
    return {section: set(keys) for section, keys in json.loads(found.stdout).items()}


def _child_env(source: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIGGERBOOK_")}
    env["PYTHONPATH"] = str(source)
    return env


def config_text(
    source: Path, data_dir: Path, port: int, exchange_url: str, live_alerts: int
) -> str:
    wanted: dict[str, dict[str, Any]] = {
        "http": {"host": "127.0.0.1", "port": port},
        "database": {"url": "", "data_dir": str(data_dir / "pg")},
        "feeds.binance": {"enabled": True, "url": exchange_url, "rest_url": ""},
        "limits": {"max_live_alerts": live_alerts, "max_symbols": live_alerts},
    }
    known = _known_keys(source)
    lines = []
    for section, table in wanted.items():
        keys = known.get(section, set())
        lines.append(f"[{section}]")
        for key, value in table.items():
            if key in keys:
                lines.append(f"{key} = {json.dumps(value)}")
    return "\n".join(lines) + "\n"


@dataclass
class Engine:
    process: trio.Process
    base: str
    config: Path


async def start_engine(
    nursery: trio.Nursery, source: Path, tmp: Path, exchange_url: str, live_alerts: int
) -> Engine:
    """Start ``python -m engine.cli run`` on a fresh port; return once ``/healthz`` answers."""
    port = free_port()
    config = tmp / "config.toml"
    config.write_text(config_text(source, tmp, port, exchange_url, live_alerts))
    log = (tmp / "engine.log").open("ab")
    command = [
        sys.executable,
        "-m",
        "engine.cli",
        "--log-level",
        "WARNING",
        "run",
        "--config",
        str(config),
    ]
    process: trio.Process = await nursery.start(
        partial(
            trio.run_process,
            command,
            check=False,
            cwd=source,
            env=_child_env(source),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    )
    base = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(base_url=base, timeout=2) as client:
        with trio.fail_after(120):
            while True:
                if process.returncode is not None:
                    raise RuntimeError(f"the engine exited ({process.returncode}); see {log.name}")
                try:
                    if (await client.get("/healthz")).status_code == 200:
                        return Engine(process, base, config)
                except httpx.HTTPError:
                    pass
                await trio.sleep(0.2)


async def stop_engine(engine: Engine, grace: float = 60) -> float:
    """SIGTERM, then wait for the exit (SIGKILL past ``grace``); the seconds it took."""
    start = time.monotonic()
    if engine.process.returncode is None:
        engine.process.send_signal(signal.SIGTERM)
        with trio.move_on_after(grace):
            await engine.process.wait()
        if engine.process.returncode is None:
            engine.process.kill()
            await engine.process.wait()
    return time.monotonic() - start


def client(
    base: str, local: str | None = None, connections: int = 10, timeout: float = 60
) -> httpx.AsyncClient:
    """An HTTP client from ``local`` (a loopback address: the engine's per-address limits see
    attackers apart from the real user); a slow answer is waited for, and timed."""
    transport = httpx.AsyncHTTPTransport(
        local_address=local, limits=httpx.Limits(max_connections=connections)
    )
    return httpx.AsyncClient(base_url=base, transport=transport, timeout=timeout)


async def register(http: httpx.AsyncClient, username: str) -> None:
    """Register ``username`` (a 409 is fine: it exists)."""
    await http.post(
        "/api/auth/register",
        json={"username": username, "password": PASSWORD, "email": f"{username}@example.com"},
    )


async def account(http: httpx.AsyncClient, username: str) -> dict[str, str]:
    """Register (a 409 is fine: it exists) and log in; the Authorization header."""
    await register(http, username)
    answer = await http.post("/api/auth/login", json={"username": username, "password": PASSWORD})
    answer.raise_for_status()
    return {"Authorization": f"Bearer {answer.json()['access']}"}


def alert(symbol: str, name: str = "") -> dict[str, str]:
    return {"symbol": symbol, "target_price": "1000000", "direction": "above", "name": name}


# --- the legitimate client -------------------------------------------------------------------


@dataclass
class Probe:
    healthz: Series = field(default_factory=Series)
    login: Series = field(default_factory=Series)
    create: Series = field(default_factory=Series)

    def figures(self) -> dict[str, Any]:
        return {
            "healthz": self.healthz.figures(),
            "login": self.login.figures(),
            "create": self.create.figures(),
        }


async def _timed(series: Series, request: Callable[[], Awaitable[httpx.Response]]) -> None:
    start = time.monotonic()
    try:
        with trio.fail_after(PROBE_TIMEOUT_S):
            answer = await request()
    except (httpx.HTTPError, trio.TooSlowError, OSError):
        series.errors += 1
        series.statuses["error"] += 1
        return
    series.times.append(time.monotonic() - start)
    series.statuses[str(answer.status_code)] += 1


async def _every(
    period: float, series: Series, request: Callable[[], Awaitable[Any]], stop: trio.Event
) -> None:
    while not stop.is_set():
        await _timed(series, request)
        with trio.move_on_after(period):
            await stop.wait()


@asynccontextmanager
async def probing(base: str, headers: dict[str, str]) -> AsyncIterator[Probe]:
    """A real user meanwhile: ``/healthz`` every 50 ms, a login every 1 s, a create every 0.5 s,
    each on its own keep-alive connection."""
    probe = Probe()
    stop = trio.Event()
    login = {"username": LEGIT, "password": PASSWORD}
    async with (
        client(base, connections=1) as health,
        client(base, connections=1) as logins,
        client(base, connections=1) as creates,
        trio.open_nursery() as nursery,
    ):
        nursery.start_soon(_every, 0.05, probe.healthz, partial(health.get, "/healthz"), stop)
        nursery.start_soon(
            _every, 1.0, probe.login, partial(logins.post, "/api/auth/login", json=login), stop
        )
        nursery.start_soon(
            _every,
            0.5,
            probe.create,
            partial(creates.post, "/api/alerts", json=alert("BTCUSDT"), headers=headers),
            stop,
        )
        yield probe
        stop.set()  # the requests in flight are answered (and timed) or time out


# --- scenarios -------------------------------------------------------------------------------


@dataclass
class Harness:
    args: argparse.Namespace
    engine: Engine
    headers: dict[str, str]


async def _closed_after(
    port: int, first: bytes, wait: float, limiter: trio.CapacityLimiter
) -> float | str:
    """Open a socket, send ``first``, and return the seconds until the engine answers or closes
    it; ``"refused"`` if it could not connect, ``"open"`` if it still was after ``wait``."""
    async with limiter:
        sock = trio.socket.socket()
        try:
            await sock.connect(("127.0.0.1", port))
        except OSError:
            sock.close()
            return "refused"
    with sock:
        start = time.monotonic()
        try:
            if first:
                await sock.send(first)
            with trio.move_on_after(wait):
                await sock.recv(4096)
                return time.monotonic() - start
        except OSError:
            return time.monotonic() - start
    return "open"


def _closing(results: Sequence[float | str], wait: float) -> dict[str, Any]:
    times = [r for r in results if isinstance(r, float)]
    return {
        "sockets": len(results),
        "refused": sum(r == "refused" for r in results),
        "closed": len(times),
        f"open_after_{wait:g}s": sum(r == "open" for r in results),
        "close_p50_s": round(statistics.median(times), 2) if times else None,
        "close_max_s": round(max(times), 2) if times else None,
    }


async def floods(h: Harness) -> dict[str, Any]:
    port = int(h.engine.base.rsplit(":", 1)[1])
    kinds = {"idle": b"", "half_line": b"GET /heal"}
    results: dict[str, list[float | str]] = {kind: [] for kind in kinds}
    limiter = trio.CapacityLimiter(100)  # connects in flight: the harness stays off the CPU

    async def one(kind: str) -> None:
        results[kind].append(await _closed_after(port, kinds[kind], h.args.flood_wait, limiter))

    async with trio.open_nursery() as nursery:
        for i in range(h.args.flood):
            nursery.start_soon(one, "idle" if i % 2 else "half_line")
    return {
        "connections": h.args.flood,
        **{k: _closing(v, h.args.flood_wait) for k, v in results.items()},
    }


async def _slow_post(port: int, head: bytes, body: bytes, wait: float) -> tuple[str, float | None]:
    """Send ``head``, then ``body`` one byte a second; the engine's first answer (its status, or
    "closed") and when, or ("open", None) after ``wait``."""
    sock = trio.socket.socket()
    with sock:
        try:
            await sock.connect(("127.0.0.1", port))
            await sock.send(head)
        except OSError:
            return "refused", None
        start = time.monotonic()

        async def drip() -> None:
            for byte in body:
                await trio.sleep(1)
                await sock.send(bytes([byte]))

        outcome: tuple[str, float | None] = ("open", None)
        with trio.move_on_after(wait):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(drip)
                try:
                    data = await sock.recv(4096)
                except OSError:
                    data = b""
                status = data.split(b" ", 2)[1].decode() if data.startswith(b"HTTP/") else "closed"
                outcome = (status, time.monotonic() - start)
                nursery.cancel_scope.cancel()
        return outcome


async def slow_bodies(h: Harness) -> dict[str, Any]:
    port = int(h.engine.base.rsplit(":", 1)[1])
    body = json.dumps(alert("BTCUSDT", "x" * 900)).encode()
    common = (
        f"POST /api/alerts HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: {h.headers['Authorization']}\r\n"
        "Content-Type: application/json\r\n"
    )
    lanes = {
        "fast_lane": (common + f"Content-Length: {len(body)}\r\n\r\n").encode(),
        # no length: the fast lane hands the request to Quart, which reads the chunked body
        "quart": (common + "Transfer-Encoding: chunked\r\n\r\n").encode(),
    }
    chunked = f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"
    out: dict[str, Any] = {"clients_per_lane": h.args.slow, "body_bytes": len(body)}
    answers: dict[str, list[tuple[str, float | None]]] = {lane: [] for lane in lanes}

    async def one(lane: str) -> None:
        payload = chunked if lane == "quart" else body
        answers[lane].append(await _slow_post(port, lanes[lane], payload, h.args.slow_wait))

    async with trio.open_nursery() as nursery:
        for lane in lanes:
            for _ in range(h.args.slow):
                nursery.start_soon(one, lane)
    for lane, got in answers.items():
        times = [t for _, t in got if t is not None]
        out[lane] = {
            "answers": dict(Counter(status for status, _ in got)),
            "answered_p50_s": round(statistics.median(times), 1) if times else None,
            "answered_max_s": round(max(times), 1) if times else None,
        }
    return out


async def _hash_count(http: httpx.AsyncClient) -> float | None:
    """The sum of every ``/metrics`` sample whose name speaks of hashing, or None if none does."""
    try:
        text = (await http.get("/metrics")).text
    except httpx.HTTPError:
        return None
    values = [
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line
        and not line.startswith("#")
        and "hash" in line.split("{")[0].split(" ")[0]
        and line.split("{")[0].split(" ")[0].endswith("_total")
    ]
    return sum(values) if values else None


async def logins(h: Harness) -> dict[str, Any]:
    statuses: Counter[str] = Counter()
    times: list[float] = []
    async with client(h.engine.base) as plain:
        hashes_before = await _hash_count(plain)
    async with client(h.engine.base, ATTACKER, h.args.logins) as attacker:

        async def wrong(i: int) -> None:
            login = {"username": VICTIMS[i % 3], "password": "wrong-password-123"}
            start = time.monotonic()
            try:
                statuses[str((await attacker.post("/api/auth/login", json=login)).status_code)] += 1
                times.append(time.monotonic() - start)
            except httpx.HTTPError:
                statuses["error"] += 1

        async with trio.open_nursery() as nursery:
            for i in range(h.args.logins):
                nursery.start_soon(wrong, i)
    async with client(h.engine.base) as plain:
        hashes_after = await _hash_count(plain)
    hashed = None if hashes_before is None or hashes_after is None else hashes_after - hashes_before
    return {
        "wrong_logins": h.args.logins,
        "usernames": len(VICTIMS),
        "statuses": dict(statuses),
        "attacker_latency": _latency(times),
        "hashed_per_metrics": hashed,
    }


async def registrations(h: Harness) -> dict[str, Any]:
    stopping = trio.Event()
    statuses: Counter[str] = Counter()
    times: list[float] = []
    async with client(h.engine.base, REGISTRAR, h.args.reg_clients) as registrar:

        async def flood(worker: int) -> None:
            n = 0
            while not stopping.is_set():
                n += 1
                name = VICTIMS[0] if n % 2 else f"flood_{worker}_{n}"
                body = {"username": name, "password": PASSWORD, "email": "f@example.com"}
                start = time.monotonic()
                try:
                    answer = await registrar.post("/api/auth/register", json=body)
                    statuses[str(answer.status_code)] += 1
                    times.append(time.monotonic() - start)
                except httpx.HTTPError:
                    statuses["error"] += 1

        with trio.move_on_after(h.args.reg_seconds + 30):  # those in flight, bounded
            async with trio.open_nursery() as nursery:
                for worker in range(h.args.reg_clients):
                    nursery.start_soon(flood, worker)
                await trio.sleep(h.args.reg_seconds)
                stopping.set()
    total = sum(statuses.values())
    return {
        "clients": h.args.reg_clients,
        "seconds": h.args.reg_seconds,
        "requests_per_s": round(total / h.args.reg_seconds, 1),
        "statuses": dict(statuses),
        "attacker_latency": _latency(times),
    }


async def _create_times(
    http: httpx.AsyncClient, headers: dict[str, str], symbols: Sequence[str]
) -> list[float]:
    times = []
    for symbol in symbols:
        start = time.monotonic()
        answer = await http.post("/api/alerts", json=alert(symbol), headers=headers)
        if answer.status_code == 201:
            times.append(time.monotonic() - start)
    return times


async def symbols(h: Harness) -> dict[str, Any]:
    n, workers = h.args.symbols, 16
    statuses: Counter[str] = Counter()
    async with client(h.engine.base, connections=workers) as http:
        headers = await account(http, CHURN)
        next_symbol = iter(range(n))
        start = time.monotonic()

        async def churn() -> None:
            for i in next_symbol:
                try:
                    answer = await http.post(
                        "/api/alerts", json=alert(f"CH{i}USDT"), headers=headers
                    )
                    statuses[str(answer.status_code)] += 1
                except httpx.HTTPError:
                    statuses["error"] += 1

        async with trio.open_nursery() as nursery:
            for _ in range(workers):
                nursery.start_soon(churn)
        elapsed = time.monotonic() - start
        rounds = 20 if h.args.quick else 50
        new, existing = [], []
        for r in range(rounds):  # interleaved, so load from elsewhere hits both alike
            new += await _create_times(http, headers, [f"NEW{r}USDT"])
            existing += await _create_times(http, headers, [f"CH{r}USDT"])
        ready = await http.get("/readyz")
        scrapes = []
        size = 0
        for _ in range(5):
            t = time.monotonic()
            scraped = await http.get("/metrics")
            scrapes.append(time.monotonic() - t)
            size = len(scraped.content)
    p_new, p_old = _ms(new, 0.5), _ms(existing, 0.5)
    return {
        "symbols": n,
        "issue_symbols": 150_000,
        "churn_statuses": dict(statuses),
        "churn_creates_per_s": round(n / elapsed, 1),
        "create_new_symbol": _latency(new),
        "create_existing_symbol": _latency(existing),
        "new_over_existing_p50": round(p_new / p_old, 2) if p_new and p_old else None,
        "readyz_status": ready.status_code,
        "readyz_bytes": len(ready.content),
        "metrics_scrape": _latency(scrapes),
        "metrics_bytes": size,
    }


@dataclass
class Create:
    index: int
    status: str = "no answer"  # or the status code
    alert_id: int | None = None


async def shutdown(h: Harness, restart: Callable[[], Awaitable[Engine]]) -> dict[str, Any]:
    """SIGTERM mid-burst; then a second engine on the same data dir reads back every answer."""
    creates: list[Create] = []
    counter = iter(range(1_000_000))
    stopping = trio.Event()
    async with client(h.engine.base) as http:
        headers = await account(http, BURST)
    sent_at = 0.0
    async with client(h.engine.base, connections=h.args.burst_clients) as http:

        async def burst() -> None:
            while True:
                create = Create(next(counter))
                creates.append(create)
                try:
                    answer = await http.post(
                        "/api/alerts", json=alert(f"SD{create.index}USDT"), headers=headers
                    )
                except httpx.HTTPError:
                    if stopping.is_set():
                        return
                    continue
                create.status = str(answer.status_code)
                if answer.status_code == 201:
                    create.alert_id = int(answer.json()["id"])

        with trio.move_on_after(h.args.burst_before + 30):
            async with trio.open_nursery() as nursery:
                for _ in range(h.args.burst_clients):
                    nursery.start_soon(burst)
                await trio.sleep(h.args.burst_before)
                sent_at = time.monotonic()
                stopping.set()
                h.engine.process.send_signal(signal.SIGTERM)
    with trio.move_on_after(60):  # a second SIGTERM would end it at once: wait, then kill
        await h.engine.process.wait()
    exit_s = time.monotonic() - sent_at
    if h.engine.process.returncode is None:
        h.engine.process.kill()
        await h.engine.process.wait()
    exit_code = h.engine.process.returncode
    engine = await restart()
    try:
        missing, with_row = await _read_back(engine, creates)
    finally:
        await stop_engine(engine)
    statuses = Counter(c.status for c in creates)
    non2xx = [c for c in creates if not c.status.startswith("2")]
    return {
        "clients": h.args.burst_clients,
        "sigterm_after_s": h.args.burst_before,
        "exit_code": exit_code,
        "exit_s": round(exit_s, 1),
        "answers": dict(statuses),
        "status_500": statuses.get("500", 0),
        "created_201": statuses.get("201", 0),
        "missing_201_rows": missing,
        "non2xx_with_row": {
            s: n for s, n in Counter(c.status for c in non2xx if c.index in with_row).items()
        },
        "non2xx": len(non2xx),
    }


async def _read_back(engine: Engine, creates: list[Create]) -> tuple[int, set[int]]:
    """How many 201 ids have no row, and which non-2xx creates have one (by their unique symbol)."""
    missing = 0
    with_row: set[int] = set()
    limiter = trio.CapacityLimiter(8)
    async with client(engine.base, connections=8) as http:
        headers = await account(http, BURST)

        async def check(create: Create) -> None:
            nonlocal missing
            async with limiter:
                if create.alert_id is not None:
                    found = await http.get(f"/api/alerts/{create.alert_id}", headers=headers)
                    missing += found.status_code != 200
                elif not create.status.startswith("2"):
                    page = await http.get(
                        "/api/alerts", headers=headers, params={"symbol": f"SD{create.index}USDT"}
                    )
                    if page.json()["count"]:
                        with_row.add(create.index)

        async with trio.open_nursery() as nursery:
            for create in creates:
                nursery.start_soon(check, create)
    return missing, with_row


# --- the run ---------------------------------------------------------------------------------


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()


def _engine_commit(commit: str | None) -> str:
    if commit:
        return _git("rev-parse", "--short", commit)
    dirty = _git("status", "--porcelain", "--", "engine", "web", "plugins")
    return _git("rev-parse", "--short", "HEAD") + (" + uncommitted changes" if dirty else "")


def _source(commit: str | None, tmp: Path) -> Path:
    """The engine to run: this working tree, or ``commit`` unpacked (git archive) under ``tmp``."""
    if not commit:
        return ROOT
    source = tmp / "source"
    source.mkdir()
    archive = subprocess.run(["git", "archive", commit], cwd=ROOT, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(source)], input=archive.stdout, check=True)
    return source


def _print(name: str, result: dict[str, Any]) -> None:
    print(f"\n== {name}" + (f"   [target: {TARGETS[name]}]" if name in TARGETS else ""))
    for key, value in result.items():
        print(f"  {key}: {json.dumps(value)}")
    sys.stdout.flush()


async def _measured(
    h: Harness, name: str, scenario: Callable[[], Awaitable[dict[str, Any]]], settle: float
) -> dict[str, Any]:
    watch = Watch(h.engine.process.pid)
    settled_s = await watch.settle()
    async with trio.open_nursery() as nursery:
        await nursery.start(watch.run)
        async with probing(h.engine.base, h.headers) as probe:
            result = await scenario()
        nursery.cancel_scope.cancel()
    await trio.sleep(settle)
    engine = {**watch.figures(watch.sample()), "idle_wait_before_s": settled_s}
    return {**result, "client": probe.figures(), "engine": engine}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from engine.feeds.testing import read_binance_request, serve_exchange

    out: dict[str, Any] = {"engine_commit": _engine_commit(args.commit), "scenarios": {}}
    live = max(10_000, 2 * args.symbols)
    quiet = not args.json
    with tempfile.TemporaryDirectory(prefix="triggerbook-abuse-") as name:
        tmp = Path(name)
        source = _source(args.commit, tmp)
        async with serve_exchange(read_binance_request) as exchange, trio.open_nursery() as nursery:
            engine = await start_engine(nursery, source, tmp, exchange.url, live)
            try:
                async with client(engine.base) as http:
                    headers = await account(http, LEGIT)
                    if {"logins", "registrations"} & set(args.only):
                        for victim in VICTIMS:  # targets of wrong logins; a taken username
                            await register(http, victim)
                h = Harness(args, engine, headers)
                named = {
                    "floods": floods,
                    "slow_bodies": slow_bodies,
                    "logins": logins,
                    "registrations": registrations,
                    "symbols": symbols,
                }
                for scenario in SCENARIOS:
                    if scenario not in args.only:
                        continue
                    if scenario == "shutdown":
                        work = partial(
                            shutdown,
                            h,
                            partial(start_engine, nursery, source, tmp, exchange.url, live),
                        )
                    else:
                        work = partial(named[scenario], h)
                    result = await _measured(h, scenario, work, 0 if scenario == "shutdown" else 1)
                    out["scenarios"][scenario] = result
                    if quiet:
                        _print(scenario, result)
            finally:
                await stop_engine(engine)
                nursery.cancel_scope.cancel()
    return out


def _raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="triggerbook bench abuse",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--only", default=",".join(SCENARIOS), help="scenarios, comma-separated")
    parser.add_argument("--quick", action="store_true", help="small sizes, short waits")
    parser.add_argument("--json", action="store_true", help="one JSON object at the end")
    parser.add_argument(
        "--commit",
        help="run the engine of this commit (git archive into the temp dir), not the working tree",
    )
    sizes = {
        "flood": (2000, 200),
        "flood_wait": (30.0, 3.0),
        "slow": (10, 2),
        "slow_wait": (70.0, 4.0),
        "logins": (60, 12),
        "reg_clients": (20, 4),
        "reg_seconds": (10.0, 2.0),
        "symbols": (20_000, 200),
        "burst_clients": (50, 10),
        "burst_before": (2.0, 1.0),
    }
    for name, (full, quick) in sizes.items():
        parser.add_argument(
            "--" + name.replace("_", "-"),
            type=type(full),
            help=f"default {full} ({quick} with --quick)",
        )
    args = parser.parse_args(argv)
    for name, pair in sizes.items():
        if getattr(args, name) is None:
            setattr(args, name, pair[1 if args.quick else 0])
    args.only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(args.only) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios {sorted(unknown)} (known: {', '.join(SCENARIOS)})")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    _raise_nofile()
    if not args.json:
        print(
            f"triggerbook bench abuse against {_engine_commit(args.commit)}; scenarios: {args.only}"
        )
    out = trio.run(run, args)
    if args.json:
        print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
