"""Benchmark of the feed path: a local exchange in another process, the runner, parse, and book.

    triggerbook bench feed [--frames N] [--array-frames M] [--elements E] [--triggers T] [--json]

A server process (plain trio + wsproto, so it is not the bottleneck: every WebSocket frame is
encoded once and the whole recording is written with ``send_all``) answers the first subscribe
with an ack and then the recording, as fast as the socket takes it. In the same run:

- ``bare_frames_per_s``: the ceiling, a trio-websocket client that only receives the frames;
- ``feed_frames_per_s``: the whole path: ``ExchangeFeed`` (connect, subscribe, stale scope, parse
  with Binance's msgspec decoder, Decimal prices) -> tick channel -> ``run_book`` with a real
  ``TriggerBook`` holding ``T`` triggers that the walk crosses -> fire channel; ``ratio`` is
  feed / bare (target >= 0.8);
- ``tick_to_fire_p50_us`` / ``p99_us``: from ``Tick.received_ns`` (frame off the socket) to
  ``Fire.fired_ns`` (fire leaving the book), for every trigger fired under that saturating load
  (target p99 < 1 ms); ``idle_tick_to_fire_*``: the same for frames sent one at a time;
- ``array_ticks_per_s``: Binance's batched all-market frames (``!miniTicker@arr``, E elements per
  frame) through the whole path.

Both timed runs go from the first data frame's arrival to the last one's processing (the first
and last frames are ETHUSDT trades that fire two sentinel triggers). Bare and feed runs are
interleaved ``--rounds`` times and the best of each kept. ``*_per_cpu_s`` divide by this
process's CPU time instead of wall time: on a shared machine other processes steal the core at
random, and CPU time is what the path costs (``ratio_cpu`` is the comparison to trust there).
``fires`` counts ``Fire`` events (ticks that fired at least one trigger).

Where the time goes (measured, CPU time per frame, ceiling ~24 us): trio-websocket's reader and
wsproto cost the same as in the ceiling; parsing (one msgspec decode, the Decimal check, ``Tick``)
adds ~3 us; the runner holds ticks while the reader has more messages to hand over and releases
them when it asks the socket for more bytes, or after ``HOLD_MAX`` (16) ticks
(``engine.feeds.connection``), so the book's task (~7 us a wake) wakes about once per 16 frames
instead of once per frame. Holding is also what the saturated tick-to-fire latency pays: up to
16 frames' worth (~0.4 ms); a lone frame is released at once.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import multiprocessing
import random
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from functools import partial
from typing import Any

import trio
import trio_websocket
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    CloseConnection,
    Message,
    Ping,
    Request,
    TextMessage,
)

from engine.book.actor import Demand, LastPrices, run_book
from engine.book.book import TriggerBook
from engine.feeds.binance import Binance
from engine.feeds.runner import ExchangeFeed
from engine.feeds.status import FeedStates
from engine.metrics import Metrics
from engine.model import BookCommand, Direction, Fire, Tick, Trigger
from engine.quarantine import Quarantine

TICK_BUFFER = 4096  # as engine/app.py
FIRST_PRICE, LAST_PRICE = "0.5", "1000000000"
FIRST_ID, LAST_ID = 1, 2


# -------------------------------------------------------------------------------------------------
# the recordings
# -------------------------------------------------------------------------------------------------


def _trade(symbol: str, price: str, n: int) -> str:
    return (
        f'{{"stream":"{symbol.lower()}@trade","data":{{"e":"trade","E":{n},"s":"{symbol}",'
        f'"t":{n},"p":"{price}","q":"0.01","T":{n},"m":true,"M":true}}}}'
    )


def walk_price(i: int) -> str:
    """BTCUSDT's price at frame ``i``: a slow sine of +-1000 around 60000, 2 decimals."""
    return f"{60000 + 1000 * math.sin(i / 500):.2f}"


def trade_frames(count: int) -> list[str]:
    """ETHUSDT first, ``count - 2`` BTCUSDT trades on the walk, ETHUSDT last."""
    frames = [_trade("ETHUSDT", FIRST_PRICE, 0)]
    frames += [_trade("BTCUSDT", walk_price(i), i) for i in range(1, count - 1)]
    frames.append(_trade("ETHUSDT", LAST_PRICE, count))
    return frames


def array_frames(count: int, elements: int) -> list[str]:
    """ETHUSDT first, ``count`` all-market arrays of ``elements`` tickers, ETHUSDT last."""
    frames = [_trade("ETHUSDT", FIRST_PRICE, 0)]
    for n in range(count):
        items = ",".join(
            f'{{"e":"24hrMiniTicker","E":{n},"s":"S{k:04d}USDT","c":"{100 + (n + k) % 97}.25",'
            f'"o":"1","h":"1","l":"1","v":"1","q":"1"}}'
            for k in range(elements)
        )
        frames.append(f'{{"stream":"!miniTicker@arr","data":[{items}]}}')
    frames.append(_trade("ETHUSDT", LAST_PRICE, count + 1))
    return frames


def bench_triggers(count: int, seed: int = 5) -> list[Trigger]:
    """Two sentinels on ETHUSDT, and ``count`` BTCUSDT triggers the walk crosses."""
    rng = random.Random(seed)
    out = [
        Trigger(FIRST_ID, "binance", "ETHUSDT", Direction.BELOW, Decimal(1)),
        Trigger(LAST_ID, "binance", "ETHUSDT", Direction.ABOVE, Decimal(LAST_PRICE)),
    ]
    start = Decimal(walk_price(1))
    for tid in range(3, count + 3):
        level = Decimal(f"{rng.uniform(59050, 60950):.2f}")
        direction = Direction.ABOVE if level > start else Direction.BELOW
        out.append(Trigger(tid, "binance", "BTCUSDT", direction, level))
    return out


# -------------------------------------------------------------------------------------------------
# the server process
# -------------------------------------------------------------------------------------------------


def _serve_process(pipe: Any, kind: str, count: int, elements: int) -> None:
    frames = trade_frames(count) if kind == "trades" else array_frames(count, elements)
    trio.run(_serve, pipe, frames)


async def _serve(pipe: Any, frames: list[str]) -> None:
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    blob: list[bytes] = []  # encoded once (server frames are unmasked, so reusable)
    pipe.send(listeners[0].socket.getsockname()[1])
    await trio.serve_listeners(partial(serve_recording, frames, blob), listeners)


async def serve_recording(frames: list[str], blob: list[bytes], stream: trio.SocketStream) -> None:
    """One client of the benchmark's exchange: the WebSocket handshake, then, on its first
    ``SUBSCRIBE``, an ack and every frame written at once (``blob`` caches their encoding
    across connections; a ``paced`` path sends them one at a time instead). The client going
    away mid-recording is the normal end of a run."""
    with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
        await _converse(frames, blob, stream)


async def _converse(frames: list[str], blob: list[bytes], stream: trio.SocketStream) -> None:
    ws = WSConnection(ConnectionType.SERVER)
    paced = False
    while data := await stream.receive_some(65536):
        ws.receive_data(data)
        for event in ws.events():
            if isinstance(event, Request):
                paced = "paced" in event.target
                await stream.send_all(ws.send(AcceptConnection()))
            elif isinstance(event, TextMessage):
                msg = json.loads(event.data)
                if msg.get("method") != "SUBSCRIBE":
                    continue
                ack = json.dumps({"result": None, "id": msg.get("id")})
                await stream.send_all(ws.send(Message(data=ack)))
                if paced:  # one frame at a time: the idle tick-to-fire latency
                    for frame in frames:
                        await stream.send_all(ws.send(Message(data=frame)))
                        await trio.sleep(0.0005)
                    continue
                if not blob:
                    blob.append(b"".join(ws.send(Message(data=f)) for f in frames))
                await stream.send_all(blob[0])
            elif isinstance(event, Ping):
                await stream.send_all(ws.send(event.response()))
            elif isinstance(event, CloseConnection):
                await stream.send_all(ws.send(event.response()))
                return


class Server:
    """The exchange process; ``url`` once started; terminated on exit."""

    def __init__(self, kind: str, count: int, elements: int = 0) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._parent, child = ctx.Pipe()
        self._process = ctx.Process(
            target=_serve_process, args=(child, kind, count, elements), daemon=True
        )

    def __enter__(self) -> Server:
        self._process.start()
        self.url = f"ws://127.0.0.1:{self._parent.recv()}"
        return self

    def __exit__(self, *exc: object) -> None:
        self._process.terminate()
        self._process.join(5)


# -------------------------------------------------------------------------------------------------
# the clients
# -------------------------------------------------------------------------------------------------


@dataclass
class Timed:
    """One timed run: wall and CPU seconds of this process from the first data frame's arrival
    to the last one's end, and what the run collected."""

    wall_s: float = 0.0
    cpu_s: float = 0.0
    latencies_us: list[float] = field(default_factory=list)
    ticks: int = 0


async def bare_receive(url: str, frames: int) -> Timed:
    """A client that only receives: the ceiling (after the ack, first to last data frame)."""
    async with trio_websocket.open_websocket_url(url + "/stream", max_message_size=1 << 24) as ws:
        await ws.send_message('{"method":"SUBSCRIBE","params":["btcusdt@trade"],"id":1}')
        await ws.get_message()  # the ack
        await ws.get_message()
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(frames - 1):
            await ws.get_message()
        return Timed(time.perf_counter() - wall, time.process_time() - cpu)


async def whole_path(url: str, triggers: list[Trigger], prices: LastPrices | None = None) -> Timed:
    """Run feed -> book until the last sentinel fires, timed from the first sentinel's fire
    (its tick's arrival, for wall time); latencies are those of the walk's fires. The book
    writes its last prices to ``prices`` when given (``benchmarks/stream.py``: the ones a web
    server streams), else to fresh ones."""
    demand, metrics = Demand(), Metrics()
    prices = LastPrices() if prices is None else prices
    book = TriggerBook()
    book.bulk_load(triggers)
    ticks_send, ticks_recv = trio.open_memory_channel[Tick](TICK_BUFFER)
    commands_send, commands_recv = trio.open_memory_channel[BookCommand](16)
    fires_send, fires_recv = trio.open_memory_channel[Fire](TICK_BUFFER)
    timed = Timed()
    first_ns = cpu = 0.0
    async with commands_send, trio.open_nursery() as nursery:
        await nursery.start(
            run_book,
            book,
            ticks_recv,
            commands_recv,
            fires_send,
            prices,
            demand,
            metrics,
            Quarantine(metrics),
        )
        feed = ExchangeFeed(Binance({"url": url}), demand, FeedStates().get("binance"), metrics)
        await nursery.start(feed.run, ticks_send)
        async for fire in fires_recv:
            ids = {t.id for t in fire.triggers}
            if FIRST_ID in ids:
                first_ns, cpu = fire.tick.received_ns, time.process_time()
            elif LAST_ID in ids:
                timed.wall_s = (fire.fired_ns - first_ns) / 1e9
                timed.cpu_s = time.process_time() - cpu
                break
            else:
                timed.latencies_us.append((fire.fired_ns - fire.tick.received_ns) / 1e3)
        nursery.cancel_scope.cancel()
    timed.ticks = int(metrics.ticks.get(exchange="binance"))
    return timed


def _pct(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run(
    frames: int, array_count: int, elements: int, trigger_count: int, rounds: int = 3
) -> dict[str, Any]:
    """Every measurement, as a flat dict."""
    triggers = bench_triggers(trigger_count)
    results: dict[str, Any] = {"frames": frames, "triggers": trigger_count}
    bare: list[Timed] = []
    feed: list[Timed] = []
    with Server("trades", frames) as server:
        for _ in range(rounds):  # interleaved, best of each: a busy machine slows both alike
            bare.append(trio.run(bare_receive, server.url, frames))
            feed.append(trio.run(whole_path, server.url, triggers))
    n = frames - 1
    bare_wall, feed_wall = n / min(t.wall_s for t in bare), n / min(t.wall_s for t in feed)
    bare_cpu, feed_cpu = n / min(t.cpu_s for t in bare), n / min(t.cpu_s for t in feed)
    lat = [x for t in feed for x in t.latencies_us]
    results |= {
        "bare_frames_per_s": round(bare_wall),
        "feed_frames_per_s": round(feed_wall),
        "ratio": round(feed_wall / bare_wall, 3),
        "bare_frames_per_cpu_s": round(bare_cpu),
        "feed_frames_per_cpu_s": round(feed_cpu),
        "ratio_cpu": round(feed_cpu / bare_cpu, 3),
        "fires": len(lat),
        "tick_to_fire_p50_us": round(statistics.median(lat), 1) if lat else None,
        "tick_to_fire_p99_us": round(_pct(lat, 0.99), 1),
    }
    idle_frames = 2000
    with Server("trades", idle_frames) as server:
        idle = trio.run(whole_path, server.url + "/paced", triggers).latencies_us
    results |= {
        "idle_fires": len(idle),
        "idle_tick_to_fire_p50_us": round(statistics.median(idle), 1) if idle else None,
        "idle_tick_to_fire_p99_us": round(_pct(idle, 0.99), 1),
    }
    if array_count:
        with Server("arrays", array_count, elements) as server:
            runs = [trio.run(whole_path, server.url, triggers[:2]) for _ in range(rounds)]
        best = min(runs, key=lambda t: t.wall_s)
        results |= {
            "array_frames": array_count,
            "array_elements": elements,
            "array_ticks_per_s": round((best.ticks - 1) / best.wall_s),
            "array_ticks_per_cpu_s": round((best.ticks - 1) / min(t.cpu_s for t in runs)),
        }
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """``triggerbook bench feed``: prints a table, or ``{"results": {...}}`` with ``--json``."""
    parser = argparse.ArgumentParser(prog="triggerbook bench feed", description=__doc__)
    parser.add_argument("--frames", type=int, default=200_000)
    parser.add_argument("--array-frames", type=int, default=2_000)
    parser.add_argument("--elements", type=int, default=100)
    parser.add_argument("--triggers", type=int, default=2_000)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved bare/feed runs")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    results = run(args.frames, args.array_frames, args.elements, args.triggers, args.rounds)
    if args.json:
        print(json.dumps({"results": results}))
    else:
        for key, value in results.items():
            print(f"{key:<28} {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
