"""Benchmark of ``/api/stream`` under a saturated feed: idle watchers must not slow matching.

    triggerbook bench stream [--clients N] [--frames F] [--triggers T] [--rounds R]
                             [--interval S] [--quick] [--json]

One Trio loop in this process stands for the engine: the real web (``web.server.run_web``
over ``engine.app.assemble`` and a real store, an embedded Postgres in a temporary directory)
and, run after run in the same loop, ``bench feed``'s whole path (``benchmarks.feed``: its
exchange process, ``ExchangeFeed``, ``run_book``, a ``TriggerBook`` of ``T`` triggers), whose
book writes the very last prices the web streams. A second process holds ``N`` WebSocket
clients (trio-websocket; their CPU is not this process's), each logged in over HTTP as one of
``ceil(N / 5)`` users (5 streams a user: the default per-user cap holds; ``stream_total`` is
raised only past 1,000 clients), subscribed to the symbols the feed streams, and reading (and
decoding) every message it gets, nothing else.

Each round runs, in an order that alternates between rounds: the bare client (the ceiling, as
in ``bench feed``), the whole path with no clients connected, and the whole path with the
``N`` clients connected and watching. Per run, as ``bench feed``: frames per CPU second of
this process (``ratio_cpu`` = feed / bare of the same round: the figure to trust on a shared
machine), frames per wall second (``ratio``), and tick-to-fire p50/p99 of the fires under
that load. The table shows each figure's median over the rounds without and with clients,
and with / without (issue 16's target: within 10%, i.e. >= 0.9 for the ratios and <= 1.1
for the latency). ``client_prices_per_s`` is what the clients read during the runs with them.

Memory, measured once before the rounds while the web streams a changing price: this
process's RSS with the clients connected minus before, per client (``rss_per_client_kb``,
from a fresh heap, before any run reuses freed memory), and the same with ``tracemalloc``
(``traced_per_client_kb``: Python objects only, exact, measured in a second pass because
tracing costs memory and time of its own).

``--interval`` sets ``WebSettings.stream_interval_s`` (default 0.25 s: 4 prices a second per
symbol), the knob the cost follows. Where the time goes (measured on the 2-core machine, py-spy
and a run without the feed): 500 watchers whose prices do not change cost ~8% of a core, the
per-client price tasks waking 4 times a second (~40 us a wake); each price sent costs ~60 us
more: in the profile, hypercorn's send path (ASGI send, wsproto, its send lock, the socket)
under our writer task is 28% of the samples, Trio's timers and scheduling most of the rest, our
price task's own work (read, encode, offer) 8%. One task now fans the prices out to every
stream (``web.stream.run_prices``), which saves the wakes, not the sends; the sends are bounded
by slowing the rounds while the engine is busy (``web.stream.Load``; the README has the figures).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import multiprocessing
import os
import random
import secrets
import statistics
import tempfile
import time
import tracemalloc
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import msgspec
import trio
import trio_asyncio
from trio_websocket import ConnectionClosed, WebSocketConnection, open_websocket_url

from benchmarks.feed import Server, Timed, bare_receive, bench_triggers, whole_path
from engine.app import assemble, settle_heap
from engine.book.book import TriggerBook
from engine.book.prices import LastPrices
from engine.config import load_config
from engine.metrics import Metrics
from engine.model import BookCommand, Tick
from engine.plugins.registry import load_registry
from engine.quarantine import Quarantine
from engine.store import open_store
from web.auth import PasswordHasher
from web.context import WebSettings
from web.server import STREAM_SHARE, run_web
from web.stream import PATH

SYMBOLS = ("BTCUSDT", "ETHUSDT")  # what the feed's recording streams (benchmarks.feed)
PER_USER = WebSettings().stream_per_user  # streams per user: the default cap
PASSWORD = "benchmark-password"
SPREAD_S = 0.5  # clients connect at random within this, as people open pages
SETTLE_S = 0.5  # after the last client subscribed, before measuring
PING_S = 20.0  # as the page: a stream silent for WebSettings.stream_idle_s is closed
ANSWER_S = 120.0  # the clients' process answers each command within this


def _p(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else math.nan


# -------------------------------------------------------------------------------------------------
# the clients' process
# -------------------------------------------------------------------------------------------------


@dataclass
class Tally:
    """What the clients saw: subscribed, refused (with the server's reason), messages read."""

    wanted: int
    subscribed: int = 0
    refused: list[str] = field(default_factory=list)
    messages: int = 0
    prices: int = 0
    settled: trio.Event = field(default_factory=trio.Event)

    def done_one(self) -> None:
        if self.subscribed + len(self.refused) == self.wanted:
            self.settled.set()


def _clients_process(pipe: Any, base: str, usernames: list[str]) -> None:
    trio.run(_clients, pipe, base, usernames)


async def _clients(pipe: Any, base: str, usernames: list[str]) -> None:
    """Log every user in, then serve the engine's commands: ``("open", n)`` connects ``n``
    watchers and answers once each is subscribed or refused; ``("count",)`` answers the
    messages read so far; ``("close",)`` disconnects them all; ``("quit",)`` ends."""
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        tokens = []
        for username in usernames:
            response = await http.post(
                "/api/auth/login", json={"username": username, "password": PASSWORD}
            )
            response.raise_for_status()
            tokens.append(response.json()["access"])
    url = base.replace("http://", "ws://", 1) + PATH
    rng = random.Random(7)
    pipe.send(("ready", len(tokens)))
    while (command := await trio.to_thread.run_sync(pipe.recv))[0] == "open":
        tally = Tally(command[1])
        async with trio.open_nursery() as nursery:
            for i in range(tally.wanted):
                delay = rng.random() * SPREAD_S
                nursery.start_soon(_watch, url, tokens[i // PER_USER], tally, delay)
            with trio.fail_after(ANSWER_S):
                await tally.settled.wait()
            pipe.send(("open", (tally.subscribed, tally.refused)))
            while (command := await trio.to_thread.run_sync(pipe.recv))[0] == "count":
                pipe.send(("count", (tally.messages, tally.prices)))
            nursery.cancel_scope.cancel()
        pipe.send(("close", tally.messages))


async def _watch(url: str, token: str, tally: Tally, delay: float) -> None:
    """One idle watcher: authenticate, subscribe, then read and decode every message (and ping
    every ``PING_S``, as the page does, or the server closes a silent stream)."""
    decode = msgspec.json.Decoder().decode
    await trio.sleep(delay)
    subscribed = False
    async with open_websocket_url(url) as ws, trio.open_nursery() as nursery:
        nursery.start_soon(_pinging, ws)
        try:
            await ws.send_message(json.dumps({"type": "auth", "token": token}))
            listed = [{"exchange": "binance", "symbol": s} for s in SYMBOLS]
            await ws.send_message(json.dumps({"type": "subscribe", "symbols": listed}))
            while True:
                kind = decode(await ws.get_message())["type"]
                tally.messages += 1
                if kind == "price":
                    tally.prices += 1
                elif kind == "subscribed" and not subscribed:
                    subscribed = True
                    tally.subscribed += 1
                    tally.done_one()
        except ConnectionClosed as closed:
            if subscribed:
                raise  # an admitted watcher dropped: the run would measure fewer clients
            tally.refused.append(f"{closed.reason.code} {closed.reason.reason}")
            tally.done_one()
            nursery.cancel_scope.cancel()


async def _pinging(ws: WebSocketConnection) -> None:
    with contextlib.suppress(ConnectionClosed):  # the watcher itself reports why
        while True:
            await trio.sleep(PING_S)
            await ws.send_message('{"type":"ping"}')


class Clients:
    """The engine's handle on the clients' process (spawned, so it shares nothing with us)."""

    def __init__(self, base: str, usernames: list[str]) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._pipe, child = ctx.Pipe()
        self._process = ctx.Process(
            target=_clients_process, args=(child, base, usernames), daemon=True
        )

    async def start(self) -> None:
        self._process.start()
        await self._answer("ready")

    async def ask(self, *command: Any) -> Any:
        self._pipe.send(command)
        return await self._answer(command[0])

    async def open(self, count: int) -> None:
        """Connect ``count`` watchers; return once each is subscribed (RuntimeError if not)."""
        subscribed, refused = await self.ask("open", count)
        if refused:
            raise RuntimeError(f"{len(refused)} of {count} streams refused, e.g. {refused[0]}")
        assert subscribed == count

    async def _answer(self, kind: str) -> Any:
        if not await trio.to_thread.run_sync(self._pipe.poll, ANSWER_S):
            raise RuntimeError(f"the clients' process did not answer {kind!r}")
        got, value = self._pipe.recv()
        if got != kind:
            raise RuntimeError(f"the clients' process answered {got!r} to {kind!r}")
        return value

    async def stop(self) -> None:
        if self._process.is_alive():
            self._pipe.send(("quit",))
            await trio.to_thread.run_sync(self._process.join, 10)
        self._process.terminate()


# -------------------------------------------------------------------------------------------------
# the engine's side
# -------------------------------------------------------------------------------------------------


def rss_bytes() -> int:
    """This process's resident set (Linux ``/proc``)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def _ticking(prices: LastPrices, every_s: float) -> None:
    """Change the streamed symbols' prices (the memory pass: watchers that receive prices)."""
    for n in range(1, 1 << 62):
        for symbol in SYMBOLS:
            prices.update(Tick("binance", symbol, Decimal(60000 + n % 100), n, time.monotonic_ns()))
        await trio.sleep(every_s)


async def _memory(clients: Clients, prices: LastPrices, count: int) -> dict[str, float]:
    """RSS per client, then tracemalloc's per client, each with the watchers receiving prices."""
    out: dict[str, float] = {}
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_ticking, prices, 0.05)
        await trio.sleep(SETTLE_S)
        before = rss_bytes()
        await clients.open(count)
        await trio.sleep(SETTLE_S)
        out["rss_per_client_kb"] = round((rss_bytes() - before) / count / 1024, 1)
        await clients.ask("close")
        await trio.sleep(SETTLE_S)
        tracemalloc.start()
        try:
            base = tracemalloc.get_traced_memory()[0]
            await clients.open(count)
            await trio.sleep(SETTLE_S)
            traced = tracemalloc.get_traced_memory()[0] - base
        finally:
            tracemalloc.stop()
        out["traced_per_client_kb"] = round(traced / count / 1024, 1)
        await clients.ask("close")
        nursery.cancel_scope.cancel()
    return out


@dataclass
class Round:
    """One round's three timed runs and the prices the clients read during theirs."""

    bare: Timed
    without: Timed
    with_clients: Timed
    client_prices: int
    client_s: float


async def _round(
    first: str, url: str, frames: int, triggers: Any, prices: LastPrices, clients: Clients, n: int
) -> Round:
    bare = await bare_receive(url, frames)
    runs: dict[str, Timed] = {}
    read, spent = 0, 0.0
    for kind in (first, "with" if first == "without" else "without"):
        if kind == "without":
            runs[kind] = await whole_path(url, triggers, prices)
            continue
        await clients.open(n)
        await trio.sleep(SETTLE_S)
        started, (_, before) = time.perf_counter(), await clients.ask("count")
        runs[kind] = await whole_path(url, triggers, prices)
        (_, after), spent = await clients.ask("count"), time.perf_counter() - started
        read = after - before
        await clients.ask("close")
        await trio.sleep(SETTLE_S)  # the server has seen every disconnect
    return Round(bare, runs["without"], runs["with"], read, spent)


async def _engine(
    tmp: Path,
    feed_url: str,
    count: int,
    frames: int,
    trigger_count: int,
    rounds: int,
    interval: float,
) -> dict[str, Any]:
    registry = load_registry(entry_points=False)
    (tmp / "config.toml").write_text("")
    config = load_config(
        tmp / "config.toml",
        environ={
            "TRIGGERBOOK_HTTP_PORT": "0",
            "TRIGGERBOOK_DATABASE_DATA_DIR": str(tmp / "pg"),
            "TRIGGERBOOK_AUTH_SECRET": secrets.token_hex(32),
            # streams may hold STREAM_SHARE of the connections: raised only past 800 clients
            "TRIGGERBOOK_HTTP_MAX_CONNECTIONS": str(max(1000, math.ceil(count / STREAM_SHARE))),
        },
        plugin_sections=registry.sections(),
    )
    defaults = WebSettings()
    settings = replace(
        defaults,
        bcrypt_rounds=4,  # logins are setup, not measured
        stream_total=max(defaults.stream_total, count),  # raised only past 1,000 clients
        stream_interval_s=interval,
    )
    usernames = [f"watcher{i}" for i in range(math.ceil(count / PER_USER))]
    triggers = bench_triggers(trigger_count)
    commands, _unused = trio.open_memory_channel[BookCommand](16)  # no book actor: no alerts
    metrics = Metrics()
    async with trio_asyncio.open_loop(), open_store(config.database) as store:
        ctx = assemble(
            config, store, TriggerBook(), commands, registry, metrics, Quarantine(metrics)
        )
        settle_heap()  # as the engine does once loaded
        hashed = await PasswordHasher(rounds=4).hash(PASSWORD)
        for username in usernames:
            await store.create_user(username, f"{username}@example.com", hashed)
        async with trio.open_nursery() as nursery:
            port = await nursery.start(partial(run_web, ctx, settings=settings))
            clients = Clients(f"http://127.0.0.1:{port}", usernames)
            try:
                await clients.start()
                memory = await _memory(clients, ctx.prices, count)
                done = [
                    await _round(
                        "without" if i % 2 == 0 else "with",
                        feed_url,
                        frames,
                        triggers,
                        ctx.prices,
                        clients,
                        count,
                    )
                    for i in range(rounds)
                ]
            finally:
                with trio.CancelScope(shield=True):
                    await clients.stop()
            nursery.cancel_scope.cancel()
    figures = _figures(done, count, len(usernames), frames, trigger_count)
    return figures | {"interval_s": interval} | memory


def _figures(
    done: list[Round], count: int, users: int, frames: int, triggers: int
) -> dict[str, Any]:
    """Medians over the rounds; every ratio to the bare client is taken within its round."""
    n = frames - 1

    def median(values: Sequence[float], digits: int = 3) -> float:
        return round(statistics.median(values), digits)

    out: dict[str, Any] = {
        "clients": count,
        "users": users,
        "symbols_per_client": len(SYMBOLS),
        "frames": frames,
        "triggers": triggers,
        "rounds": len(done),
        "bare_frames_per_cpu_s": round(statistics.median(n / r.bare.cpu_s for r in done)),
    }
    for label, pick in (("without", lambda r: r.without), ("with", lambda r: r.with_clients)):
        runs = [pick(r) for r in done]
        out[f"feed_frames_per_cpu_s_{label}"] = round(statistics.median(n / t.cpu_s for t in runs))
        out[f"ratio_cpu_{label}"] = median([r.bare.cpu_s / pick(r).cpu_s for r in done])
        out[f"ratio_{label}"] = median([r.bare.wall_s / pick(r).wall_s for r in done])
        out[f"tick_to_fire_p50_us_{label}"] = median([_p(t.latencies_us, 0.5) for t in runs], 1)
        out[f"tick_to_fire_p99_us_{label}"] = median([_p(t.latencies_us, 0.99) for t in runs], 1)
        out[f"fires_{label}"] = round(statistics.median(len(t.latencies_us) for t in runs))
    out["ratio_cpu_with_vs_without"] = round(out["ratio_cpu_with"] / out["ratio_cpu_without"], 3)
    out["ratio_with_vs_without"] = round(out["ratio_with"] / out["ratio_without"], 3)
    out["p99_with_vs_without"] = round(
        out["tick_to_fire_p99_us_with"] / out["tick_to_fire_p99_us_without"], 3
    )
    out["client_prices_per_s"] = round(
        sum(r.client_prices for r in done) / sum(r.client_s for r in done)
    )
    return out


def run(clients: int, frames: int, triggers: int, rounds: int, interval: float) -> dict[str, Any]:
    """Every measurement, as a flat dict."""
    with tempfile.TemporaryDirectory() as tmp, Server("trades", frames) as server:
        return trio.run(_engine, Path(tmp), server.url, clients, frames, triggers, rounds, interval)


PAIRED = (
    ("ratio_cpu", "ratio_cpu_{}", "ratio_cpu_with_vs_without"),
    ("ratio (wall)", "ratio_{}", "ratio_with_vs_without"),
    ("tick_to_fire_p99_us", "tick_to_fire_p99_us_{}", "p99_with_vs_without"),
    ("tick_to_fire_p50_us", "tick_to_fire_p50_us_{}", None),
    ("feed_frames_per_cpu_s", "feed_frames_per_cpu_s_{}", None),
    ("fires", "fires_{}", None),
)


def table(results: dict[str, Any]) -> str:
    """The figures without and with clients side by side, then the rest."""
    lines = [
        f"{'':<24} {'without':>12} {'with ' + str(results['clients']):>12} {'with/without':>13}"
    ]
    shown = set()
    for name, key, paired in PAIRED:
        without, with_ = key.format("without"), key.format("with")
        ratio = results[paired] if paired else ""
        lines.append(f"{name:<24} {results[without]:>12} {results[with_]:>12} {ratio:>13}")
        shown |= {without, with_, paired}
    lines += [f"{k:<24} {v}" for k, v in results.items() if k not in shown]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """``triggerbook bench stream``: prints a table, or ``{"results": {...}}`` with ``--json``."""
    parser = argparse.ArgumentParser(prog="triggerbook bench stream", description=__doc__)
    parser.add_argument("--clients", type=int, default=500)
    parser.add_argument("--frames", type=int, default=200_000)
    parser.add_argument("--triggers", type=int, default=2_000)
    parser.add_argument("--rounds", type=int, default=5, help="each: bare, without, with")
    parser.add_argument(
        "--interval",
        type=float,
        default=WebSettings().stream_interval_s,
        help="seconds between two prices of a symbol (WebSettings.stream_interval_s)",
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run: small sizes, 1 round")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.clients, args.frames, args.triggers, args.rounds = 20, 20_000, 200, 1
    results = run(args.clients, args.frames, args.triggers, args.rounds, args.interval)
    print(json.dumps({"results": results}) if args.json else table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
