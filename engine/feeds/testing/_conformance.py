"""The conversation through the REAL feed runner, against a local :class:`ExchangeServer`.

:func:`run_conformance` checks subscribe -> frames -> exact ticks -> unsubscribe as demand
shrinks; :func:`run_heartbeat_check` that heartbeats and their answers keep a quiet connection up.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from engine.feeds.runner import ExchangeFeed
from engine.feeds.status import FeedStates
from engine.feeds.testing._demand import ManualDemand
from engine.feeds.testing._frames import frames_by_symbol, load_frames
from engine.feeds.testing._protocol import ReadRequest, Request
from engine.feeds.testing._server import ServerConnection, serve_exchange
from engine.metrics import Metrics
from engine.model import Tick
from engine.plugins.exchange import Exchange


@dataclass
class ConformanceReport:
    """What :func:`run_conformance` saw."""

    ticks: list[Tick]
    requests: list[Request]
    received: list[str]


async def run_conformance(
    exchange_cls: type[Exchange],
    frames: str | Path | Sequence[str],
    read_request: ReadRequest,
    *,
    config: Mapping[str, Any] | None = None,
    greeting: Sequence[str] = (),
) -> ConformanceReport:
    """Check the whole subscribe -> frames -> ticks -> unsubscribe conversation.

    Starts an :class:`ExchangeServer` replaying ``frames`` and the real feed runner for
    ``exchange_cls`` (its URL pointed at the server), then: demands every symbol of the frames and
    asserts exactly those were subscribed and every recorded tick came out exactly; drops the first
    symbol and asserts it was unsubscribed (and nothing else); drops the rest and asserts the
    server has no subscription left. Raises ``AssertionError`` at the first difference. Run it
    under ``trio.fail_after`` (a runner that never subscribes would otherwise wait forever).
    """
    if isinstance(frames, str | Path):
        frames = load_frames(frames)
    probe = exchange_cls(config)
    by_symbol = frames_by_symbol(probe, frames)
    symbols = sorted(by_symbol)
    assert symbols, "no frame in the recording gives a tick"
    expected = {
        s: [(t.symbol, t.price, t.exchange_time_ms) for f in fs for t in probe.parse(f, 0)]
        for s, fs in by_symbol.items()
    }
    total = sum(len(v) for v in expected.values())
    demand = ManualDemand()
    send, recv = trio.open_memory_channel[Tick](math.inf)
    got: list[Tick] = []
    async with serve_exchange(read_request, by_symbol, greeting=greeting) as server:
        exchange = exchange_cls({**(config or {}), "url": server.url})
        feed = ExchangeFeed(exchange, demand, FeedStates().get(exchange.name), Metrics())
        async with trio.open_nursery() as nursery:
            await nursery.start(feed.run, send)
            demand.set(exchange.name, symbols)
            await server.wait_until(lambda: server.subscribed() == set(symbols))
            while len(got) < total:
                got.append(await recv.receive())
            for symbol in symbols:
                mine = [(t.symbol, t.price, t.exchange_time_ms) for t in got if t.symbol == symbol]
                assert mine == expected[symbol], f"{symbol}: ticks {mine} != {expected[symbol]}"
            assert all(t.received_ns > 0 for t in got), "ticks must carry received_ns"
            if len(symbols) > 1:
                demand.set(exchange.name, symbols[1:])
                await server.wait_until(lambda: server.subscribed() == set(symbols[1:]))
            demand.set(exchange.name, ())
            await server.wait_until(lambda: not server.subscribed())
            nursery.cancel_scope.cancel()
        requested = {s for r in server.requests if r.op == "subscribe" for s in r.symbols}
        assert requested == set(symbols), f"subscribed {requested}, demanded {symbols}"
    return ConformanceReport(got, list(server.requests), list(server.received))


async def run_heartbeat_check(
    exchange_cls: type[Exchange],
    read_request: ReadRequest,
    symbol: str,
    *,
    config: Mapping[str, Any] | None = None,
    interval_s: float = 0.05,
) -> ServerConnection:
    """Check through the REAL runner that heartbeats keep a quiet subscribed connection alive.

    Runs ``exchange_cls`` with ``heartbeat_interval_s = interval_s`` and ``stale_after_s`` ten
    times that against an :class:`ExchangeServer` that sends no data (``read_request`` answers
    the heartbeat, e.g. ``ping`` -> ``pong``), subscribes ``symbol`` and waits for three stale
    periods: the server must have received ``heartbeat_frame()`` again and again on ONE
    connection (the answers count as frames, so nothing went stale), and no answer may be
    counted as a skipped frame. Returns the server's connection. Run it under
    ``trio.fail_after``.
    """
    stale = 10 * interval_s

    class Beating(exchange_cls):  # type: ignore[valid-type,misc]
        heartbeat_interval_s = interval_s
        stale_after_s = stale
        max_messages_per_second = 1000.0

    probe = Beating(config)
    beat = probe.heartbeat_frame()
    assert beat is not None, f"{exchange_cls.__name__} has no heartbeat_frame()"
    text = beat if isinstance(beat, str) else beat.decode()
    demand = ManualDemand()
    states = FeedStates()
    metrics = Metrics()
    send, _recv = trio.open_memory_channel[Tick](math.inf)
    async with serve_exchange(read_request, {}) as server:
        exchange = Beating({**(config or {}), "url": server.url})
        feed = ExchangeFeed(exchange, demand, states.get(exchange.name), metrics)
        async with trio.open_nursery() as nursery:
            await nursery.start(feed.run, send)
            demand.set(exchange.name, [symbol])
            await server.wait_until(lambda: symbol in server.subscribed())
            await trio.sleep(3 * stale)
            nursery.cancel_scope.cancel()
    assert len(server.connections) == 1, (
        f"{len(server.connections)} connections: the heartbeat's answers did not keep it fresh "
        f"({states.get(exchange.name).last_error})"
    )
    conn = server.connections[0]
    beats = [t for m, t in zip(conn.received, conn.times, strict=True) if m == text]
    assert len(beats) >= 3, f"{len(beats)} heartbeats in {3 * stale:.2f} s"
    skipped = dict(metrics.frames_skipped.values)
    assert not skipped, f"answers to the heartbeat were skipped as bad frames: {skipped}"
    return conn
