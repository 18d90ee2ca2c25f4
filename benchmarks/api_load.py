"""Load the REST API from a second process: alert creates per second, list latency p50/p99.

    .venv/bin/python -m benchmarks.api_load [--clients 100] [--creates 20000] [--lists 20000]
                                            [--users 10] [--rate 1000] [--url http://host:port]

Without ``--url`` it starts the web layer and the store (an embedded Postgres in a temporary
directory) in a child process (``--serve``), exactly as the engine wires them, with a task
standing in for the book that drains the command channel. The load comes from this process:
``--clients`` keep-alive HTTP/1.1 connections on a small raw Trio client (an HTTP library would
spend more CPU than the server per request on this 2-core machine).

Two ways to load the list route. Closed loop (the issue's "100 concurrent clients"): each client
sends its next request as soon as the last one is answered, so the server is always saturated
and latency is concurrency / throughput (Little's law): it measures capacity, not the latency a
user sees. Fixed rate (``--rate``, lists/s shared by the clients): each client sends on a
schedule, and latency counts from the scheduled time (a late server is not excused by the
client having waited for it), which is the latency at that offered load.

In the same run (without ``--url``), the ceiling: a second child serves an ASGI app that answers
every request with a constant 201, on hypercorn's trio worker configured as the engine's
(``web.server.hypercorn_config``), and the same clients send it the same create requests.
``creates_vs_ceiling`` is our creates/s over that: what is left for our own work per request.

Also in the same run (without ``--url``), the fast lane's gain: a third child serves the same
web layer with ``WebSettings(fast_lane=False)`` (every request through Quart, ``web/fastlane.py``
handing everything over) on a fresh database of its own, and the same phases run against it.
Its figures are prefixed ``no_lane_``; ``lane_creates_gain`` and ``lane_lists_gain`` are the
lane's creates/s and closed-loop lists/s over those (1.25 is the issue's bar for keeping it).

Accounts are set up first (bcrypt cost 4 in the child so that setup is quick; the cost does not
touch the measured routes). Targets (issue 4): >= 2,000 creates/s, list p99 < 20 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import trio

PASSWORD = "benchmark-password"


# --- the server side (child process) -------------------------------------------------------


async def _serve(data_dir: Path, fast_lane: bool = True) -> None:
    import trio_asyncio

    from engine.app import assemble, settle_heap
    from engine.book.actor import run_book
    from engine.book.book import TriggerBook
    from engine.config import load_config
    from engine.metrics import Metrics
    from engine.model import BookCommand, Fire, Tick
    from engine.plugins.registry import load_registry
    from engine.quarantine import Quarantine
    from engine.store import open_store
    from web.context import WebSettings
    from web.server import run_web

    registry = load_registry(entry_points=False)
    (data_dir / "config.toml").write_text("")
    config = load_config(
        data_dir / "config.toml",
        environ={
            "TRIGGERBOOK_HTTP_PORT": "0",
            "TRIGGERBOOK_DATABASE_DATA_DIR": str(data_dir / "pg"),
            # throughput, not the per-user limit: each user makes --creates / --users alerts
            "TRIGGERBOOK_LIMITS_MAX_LIVE_ALERTS": str(2**62),
        },
        plugin_sections=registry.sections(),
    )
    send, receive = trio.open_memory_channel[BookCommand](1024)
    ticks_send, ticks_receive = trio.open_memory_channel[Tick](16)
    fires_send, _fires_receive = trio.open_memory_channel[Fire](16)
    metrics = Metrics()

    async with trio_asyncio.open_loop(), open_store(config.database) as store:
        ctx = assemble(config, store, TriggerBook(), send, registry, metrics, Quarantine(metrics))
        settle_heap()  # as the engine does once loaded
        async with trio.open_nursery() as nursery:
            await nursery.start(
                run_book,
                ctx.book,
                ticks_receive,
                receive,
                fires_send,
                ctx.prices,
                ctx.demand,
                metrics,
                ctx.quarantine,
            )
            port = await nursery.start(
                lambda task_status: run_web(
                    ctx,
                    settings=WebSettings(bcrypt_rounds=4, fast_lane=fast_lane),
                    task_status=task_status,
                )
            )
            print(f"PORT {port}", flush=True)
            # Serve until the parent closes our stdin.
            await trio.to_thread.run_sync(sys.stdin.read, abandon_on_cancel=True)
            print(f"BOOK {len(ctx.book)}", file=sys.stderr, flush=True)
            ticks_send.close()
            nursery.cancel_scope.cancel()


# --- the ceiling (child process): hypercorn's trio worker and an app that does nothing -------

CEILING_BODY = json.dumps(
    {
        "id": 1,
        "symbol": "BTCUSDT",
        "exchange": "binance",
        "target_price": "60000.25",
        "direction": "above",
        "status": "created",
        "name": "",
        "created_at": "2026-11-23T22:00:00.000000Z",
    }
).encode()


async def _constant_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Read the request, answer a created alert's 201 without looking at it: what the server
    costs per request before any work of ours."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    while (await receive()).get("more_body"):
        pass
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(CEILING_BODY)).encode()),
    ]
    await send({"type": "http.response.start", "status": 201, "headers": headers})
    await send({"type": "http.response.body", "body": CEILING_BODY})


async def _serve_ceiling() -> None:
    from hypercorn.trio import serve

    from web.server import bound_port, hypercorn_config

    async with trio.open_nursery() as nursery:
        config = hypercorn_config("127.0.0.1", 0, grace_s=1.0)
        binds = await nursery.start(partial(serve, _constant_app, config))  # type: ignore[arg-type]
        print(f"PORT {bound_port(binds)}", flush=True)
        await trio.to_thread.run_sync(sys.stdin.read, abandon_on_cancel=True)
        nursery.cancel_scope.cancel()


# --- the load side (this process) ----------------------------------------------------------


class Connection:
    """One keep-alive HTTP/1.1 connection: send a request, read one Content-Length response.

    When the server ends a connection (``Connection: close``, e.g. hypercorn after its
    ``keep_alive_max_requests``) the next request opens a new one.
    """

    def __init__(self, stream: trio.SocketStream, host: str) -> None:
        self.stream = stream
        self.host = host
        self.buffer = b""
        self.closing = False

    async def request(
        self, method: str, path: str, body: bytes = b"", token: str | None = None
    ) -> tuple[int, bytes]:
        head = f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\n"
        if token:
            head += f"Authorization: Bearer {token}\r\n"
        if body:
            head += "Content-Type: application/json\r\n"
        head += f"Content-Length: {len(body)}\r\n\r\n"
        if self.closing:
            await self.stream.aclose()
            address, _, port = self.host.rpartition(":")
            self.stream = await trio.open_tcp_stream(address, int(port))
            self.buffer, self.closing = b"", False
        await self.stream.send_all(head.encode() + body)
        while b"\r\n\r\n" not in self.buffer:
            await self._fill()
        header, _, rest = self.buffer.partition(b"\r\n\r\n")
        status = int(header[9:12])
        length = 0
        for line in header.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and value.strip().lower() == b"close":
                self.closing = True
        self.buffer = rest
        while len(self.buffer) < length:
            await self._fill()
        payload, self.buffer = self.buffer[:length], self.buffer[length:]
        return status, payload

    async def _fill(self) -> None:
        data = await self.stream.receive_some(65536)
        if not data:
            raise ConnectionError("the server closed the connection")
        self.buffer += data


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _phase(
    conns: list[Connection],
    tokens: list[str],
    total: int,
    make: Callable[[int, int], tuple[str, str, bytes]],
    rate: float | None = None,
) -> tuple[float, list[float]]:
    """``total`` requests from every client: closed loop, or at ``rate`` requests/s shared by
    the clients (latency from each request's scheduled time). (seconds, latencies)."""
    clients = len(conns)
    remaining = [total]
    latencies: list[float] = []
    origin = trio.current_time()

    async def client(i: int) -> None:
        conn, token = conns[i], tokens[i % len(tokens)]
        due = origin + (i / rate if rate else 0.0)
        while remaining[0] > 0:
            remaining[0] -= 1
            method, path, body = make(i, remaining[0])
            if rate:
                await trio.sleep_until(due)
                started = time.perf_counter() - (trio.current_time() - due)
                due += clients / rate
            else:
                started = time.perf_counter()
            status, text = await conn.request(method, path, body, token)
            latencies.append(time.perf_counter() - started)
            if status >= 300:
                raise RuntimeError(f"{method} {path}: {status} {text[:200]!r}")

    started = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for i in range(clients):
            nursery.start_soon(client, i)
    return time.perf_counter() - started, latencies


def _create(i: int, n: int) -> tuple[str, str, bytes]:
    body = {"symbol": "BTCUSDT", "target_price": f"{60000 + n % 20000}.25", "direction": "above"}
    return "POST", "/api/alerts", json.dumps(body).encode()


def _listing(i: int, n: int) -> tuple[str, str, bytes]:
    return "GET", "/api/alerts?page_size=10", b""


async def _connect(host: str, port: int, clients: int) -> list[Connection]:
    return [
        Connection(await trio.open_tcp_stream(host, port), f"{host}:{port}") for _ in range(clients)
    ]


async def _drive(host: str, port: int, args: argparse.Namespace) -> dict[str, float]:
    conns = await _connect(host, port, args.clients)
    tokens: list[str] = []
    run_id = os.getpid()
    for i in range(args.users):
        name = f"bench{run_id}_{i}"
        body = {"username": name, "password": PASSWORD, "email": f"{name}@example.com"}
        status, text = await conns[0].request(
            "POST", "/api/auth/register", json.dumps(body).encode()
        )
        if status != 201:
            raise RuntimeError(f"register: {status} {text[:200]!r}")
        body = {"username": name, "password": PASSWORD}
        status, text = await conns[0].request("POST", "/api/auth/login", json.dumps(body).encode())
        tokens.append(json.loads(text)["access"])

    await _phase(conns, tokens, min(1000, args.creates), _create)  # warm-up: pools, caches
    create_s, create_lat = await _phase(conns, tokens, args.creates, _create)
    list_s, list_lat = await _phase(conns, tokens, args.lists, _listing)
    rated: dict[str, float] = {}
    if args.rate:
        rated_s, rated_lat = await _phase(conns, tokens, args.lists, _listing, args.rate)
        rated = {
            "rated_lists_per_s": args.lists / rated_s,
            "rated_list_p50_ms": statistics.median(rated_lat) * 1e3,
            "rated_list_p99_ms": _pct(rated_lat, 0.99) * 1e3,
        }
    for conn in conns:
        await conn.stream.aclose()
    return {
        **rated,
        "creates": args.creates,
        "creates_per_s": args.creates / create_s,
        "create_p50_ms": statistics.median(create_lat) * 1e3,
        "create_p99_ms": _pct(create_lat, 0.99) * 1e3,
        "lists": args.lists,
        "lists_per_s": args.lists / list_s,
        "list_p50_ms": statistics.median(list_lat) * 1e3,
        "list_p99_ms": _pct(list_lat, 0.99) * 1e3,
    }


async def _drive_ceiling(host: str, port: int, args: argparse.Namespace) -> float:
    """Creates-shaped requests per second that the ceiling server answers, closed loop."""
    conns = await _connect(host, port, args.clients)
    await _phase(conns, ["none"], min(1000, args.creates), _create)  # warm-up
    seconds, _ = await _phase(conns, ["none"], args.creates, _create)
    for conn in conns:
        await conn.stream.aclose()
    return args.creates / seconds


@contextmanager
def _child(*args: str) -> Iterator[int]:
    """Run ``python -m benchmarks.api_load *args`` until the block ends; its port."""
    process = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.api_load", *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdin is not None and process.stdout is not None
    try:
        for line in process.stdout:
            if line.startswith("PORT "):
                yield int(line.split()[1])
                break
        else:
            raise RuntimeError(f"the server process exited ({process.wait()}) before listening")
    finally:
        process.stdin.close()
        process.wait(timeout=60)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the load test; print the figures as one JSON line and a short table. Returns 0."""
    parser = argparse.ArgumentParser(prog="benchmarks.api_load", description=__doc__)
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--creates", type=int, default=20_000)
    parser.add_argument("--lists", type=int, default=20_000)
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument(
        "--rate",
        type=float,
        default=1000.0,
        help="lists/s of the fixed-rate list phase, shared by the clients (0: skip it)",
    )
    parser.add_argument("--url", help="an already running server (default: start one)")
    parser.add_argument("--serve", metavar="DIR", help=argparse.SUPPRESS)
    parser.add_argument("--serve-ceiling", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--no-fast-lane", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        trio.run(_serve, Path(args.serve), not args.no_fast_lane)
        return 0
    if args.serve_ceiling:
        trio.run(_serve_ceiling)
        return 0
    if args.url:
        parts = urlsplit(args.url)
        figures = trio.run(_drive, parts.hostname or "127.0.0.1", parts.port or 80, args)
    else:
        with tempfile.TemporaryDirectory(prefix="api_load_") as tmp:
            Path(tmp, "lane").mkdir()
            Path(tmp, "no_lane").mkdir()
            with _child("--serve", str(Path(tmp, "lane"))) as port:
                figures = trio.run(_drive, "127.0.0.1", port, args)
            with _child("--serve", str(Path(tmp, "no_lane")), "--no-fast-lane") as port:
                plain = trio.run(_drive, "127.0.0.1", port, args)
            figures.update({f"no_lane_{k}": val for k, val in plain.items()})
            figures["lane_creates_gain"] = figures["creates_per_s"] / plain["creates_per_s"]
            figures["lane_lists_gain"] = figures["lists_per_s"] / plain["lists_per_s"]
            with _child("--serve-ceiling") as port:
                figures["ceiling_per_s"] = trio.run(_drive_ceiling, "127.0.0.1", port, args)
            figures["creates_vs_ceiling"] = figures["creates_per_s"] / figures["ceiling_per_s"]
    print(json.dumps({k: round(v, 2) for k, v in figures.items()}))
    print(
        f"{args.clients} clients: {figures['creates_per_s']:.0f} creates/s "
        f"(p50 {figures['create_p50_ms']:.1f} ms, p99 {figures['create_p99_ms']:.1f} ms); "
        f"list p50 {figures['list_p50_ms']:.1f} ms, p99 {figures['list_p99_ms']:.1f} ms "
        f"({figures['lists_per_s']:.0f}/s, closed loop)"
    )
    if "ceiling_per_s" in figures:
        print(
            f"ceiling: hypercorn's trio worker answering every request with a constant 201: "
            f"{figures['ceiling_per_s']:.0f} req/s; creates run at "
            f"{figures['creates_vs_ceiling']:.2f} of it"
        )
    if "lane_creates_gain" in figures:
        print(
            f"without the fast lane: {figures['no_lane_creates_per_s']:.0f} creates/s "
            f"(p99 {figures['no_lane_create_p99_ms']:.1f} ms), "
            f"{figures['no_lane_lists_per_s']:.0f} lists/s closed loop "
            f"(p99 {figures['no_lane_list_p99_ms']:.1f} ms); the lane gains "
            f"x{figures['lane_creates_gain']:.2f} on creates, x{figures['lane_lists_gain']:.2f} "
            "on lists"
        )
    if "rated_list_p50_ms" in figures:
        print(
            f"list at a fixed {args.rate:g}/s offered ({figures['rated_lists_per_s']:.0f}/s "
            f"achieved): p50 {figures['rated_list_p50_ms']:.1f} ms, "
            f"p99 {figures['rated_list_p99_ms']:.1f} ms"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
