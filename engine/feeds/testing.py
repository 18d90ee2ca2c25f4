"""The conformance kit: test an exchange plugin on recorded frames and through the real runner.

For plugin authors' own test suites (installed as a pytest plugin, ``pytest11`` entry point
``triggerbook``, which adds the ``manual_demand`` fixture). Four parts:

1. Pure: :func:`load_frames` reads recorded frames (one per line, ``#`` comments);
   :func:`check_parse` asserts that parsing them gives the expected ticks exactly;
   :func:`check_bad_frames` that each bad frame raises :class:`BadFrame`;
   :func:`check_symbols_per_message` that no (un)subscribe frame names more than
   ``symbols_per_message`` symbols; :func:`check_heartbeat` the heartbeat rules;
   :func:`check_rejection` that an error reply maps back to its request id or its symbols.
2. A local exchange: :class:`ExchangeServer` (or :func:`serve_exchange`) is a trio-websocket server
   on port 0 that reads subscribe/unsubscribe requests through a small ``read_request`` function
   the author writes (the server side of their protocol), answers them, replays the recorded
   frames of the subscribed symbols, records the whole conversation, and can ping, close, and
   send garbage on demand.
3. :func:`run_conformance` drives the REAL feed runner against that server: subscribe only the
   demanded symbols -> frames -> exact ticks -> unsubscribe as demand shrinks;
   :func:`run_heartbeat_check` that heartbeats and their answers keep a quiet connection up.
4. For operators, :func:`serve_plugin` (``triggerbook plugins serve NAME``): an exchange server
   speaking a plugin's frames with no ``read_request`` to write (:func:`infer_read_request`
   learns it from the plugin's own requests), replaying its recording and making up new trades
   (:class:`TradeMaker`), to try the plugin against the real engine.

See ``docs/plugins.md`` for a complete example. Everything an author's tests name is importable
from here (``__all__``), the runner's pieces included (``ExchangeFeed``, ``FeedStates``,
``Metrics``, ``Tick``), so a plugin's tests import one module.
"""

from __future__ import annotations

import contextlib
import json
import math
import random
import sys
import time
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import trio
import trio_websocket

from engine.book.actor import Demand
from engine.errors import BadFrame, FeedClosed, SubscriptionRejected
from engine.feeds.runner import ExchangeFeed
from engine.feeds.status import FeedStates
from engine.metrics import Metrics
from engine.model import Tick
from engine.plugins.exchange import Exchange

__all__ = [
    "ConformanceReport",
    "ExchangeFeed",
    "ExchangeServer",
    "FeedStates",
    "ManualDemand",
    "Metrics",
    "Request",
    "RestServer",
    "ServerConnection",
    "Tick",
    "TradeMaker",
    "check_bad_frames",
    "check_heartbeat",
    "check_parse",
    "check_rejection",
    "check_symbols_per_message",
    "find_frames",
    "frames_by_symbol",
    "infer_read_request",
    "load_frames",
    "manual_demand",
    "read_binance_request",
    "run_conformance",
    "run_heartbeat_check",
    "serve_exchange",
    "serve_plugin",
    "serve_rest",
]

# -------------------------------------------------------------------------------------------------
# recorded frames and parse checks
# -------------------------------------------------------------------------------------------------


def load_frames(path: str | Path) -> list[str]:
    """The frames of a recording: one raw frame per line; blank lines and ``#`` lines skipped."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return [line for line in lines if line.strip() and not line.lstrip().startswith("#")]


ExpectedTick = Tick | tuple[str, str | Decimal, int]


def _as_key(tick: ExpectedTick) -> tuple[str, Decimal, int]:
    if isinstance(tick, Tick):
        return (tick.symbol, tick.price, tick.exchange_time_ms)
    symbol, price, time_ms = tick
    return (symbol, Decimal(price), time_ms)


def check_parse(
    exchange: Exchange, frames: str | Path | Sequence[str], expected: Iterable[ExpectedTick]
) -> list[Tick]:
    """Parse ``frames`` (a path or a list) and assert the ticks are exactly ``expected``.

    ``expected`` items are ticks or ``(symbol, price, exchange_time_ms)`` tuples; prices are
    compared as Decimals with their exponent (``"0.0010"`` is not ``"0.001"``), exchange names
    must be the exchange's. Returns the ticks. Raises ``AssertionError`` naming the first
    difference.
    """
    if isinstance(frames, str | Path) and not str(frames).lstrip().startswith(("{", "[")):
        frames = load_frames(frames)
    ticks = [t for frame in frames for t in exchange.parse(frame, 0)]
    for tick in ticks:
        assert tick.exchange == exchange.name, f"tick names exchange {tick.exchange!r}: {tick}"
        assert isinstance(tick.price, Decimal), f"price is not a Decimal: {tick}"
    got = [(t.symbol, t.price, t.exchange_time_ms) for t in ticks]
    want = [_as_key(t) for t in expected]
    for i, (g, w) in enumerate(zip(got, want, strict=False)):
        assert g == w and str(g[1]) == str(w[1]), f"tick {i}: got {g}, expected {w}"
    assert len(got) == len(want), f"got {len(got)} ticks, expected {len(want)}: {got}"
    return ticks


def check_bad_frames(exchange: Exchange, frames: Sequence[str | bytes]) -> list[str]:
    """Assert each frame raises :class:`BadFrame`; returns their ``kind`` values."""
    kinds = []
    for frame in frames:
        try:
            exchange.parse(frame, 0)
        except BadFrame as exc:
            kinds.append(exc.kind)
        else:
            raise AssertionError(f"parse accepted a bad frame: {frame!r}")
    return kinds


def frames_by_symbol(exchange: Exchange, frames: Sequence[str]) -> dict[str, list[str]]:
    """Data frames grouped by the symbol of their first tick; control frames (and frames that
    raise: error replies, notices) are dropped."""
    out: dict[str, list[str]] = {}
    for frame in frames:
        try:
            ticks = exchange.parse(frame, 0)
        except (BadFrame, SubscriptionRejected, FeedClosed):
            continue  # a recorded error reply or notice: not data
        if ticks:
            out.setdefault(ticks[0].symbol, []).append(frame)
    return out


# -------------------------------------------------------------------------------------------------
# requests, heartbeats and rejections (pure: the exchange and the author's server side)
# -------------------------------------------------------------------------------------------------


def _made_up_symbols(count: int) -> list[str]:
    return [f"K{i:04d}-USD" for i in range(count)]


def check_symbols_per_message(
    exchange: Exchange, read_request: ReadRequest, symbols: Sequence[str] | None = None
) -> list[Request]:
    """Feed ``subscribe_request`` and ``unsubscribe_request`` more symbols than
    ``symbols_per_message`` allows and assert, reading each frame with ``read_request`` (the
    server side of the protocol, as for :class:`ExchangeServer`), that no frame names more than
    ``symbols_per_message`` symbols, that the frames together name every symbol, and that they
    are subscribes and unsubscribes. ``symbols`` default to ``2 * symbols_per_message + 1``
    made-up ones (``K0000-USD``...); give real ones when ``read_request`` answers only those.
    Returns the requests read. Raises ``AssertionError`` naming the first frame over the limit.
    """
    limit = exchange.symbols_per_message
    assert limit >= 1, f"symbols_per_message must be >= 1, got {limit}"
    wanted = list(symbols) if symbols is not None else _made_up_symbols(2 * limit + 1)
    assert len(wanted) > limit, f"give more than {limit} symbols to check the limit"
    requests = []
    for op, frames in (
        ("subscribe", exchange.subscribe_request(wanted, 1)),
        ("unsubscribe", exchange.unsubscribe_request(wanted, 2)),
    ):
        named: list[str] = []
        for frame in frames:
            request = read_request(frame)
            assert request is not None, f"read_request made nothing of {frame[:200]!r}"
            assert request.op == op, f"{op} frame read as {request.op!r}: {frame[:200]!r}"
            assert len(request.symbols) <= limit, (
                f"a {op} frame names {len(request.symbols)} symbols, more than "
                f"symbols_per_message = {limit}: {frame[:200]!r}"
            )
            named.extend(request.symbols)
            requests.append(request)
        assert sorted(named) == sorted(wanted), f"{op} frames name {len(named)} symbols, not all"
    return requests


def check_heartbeat(
    exchange: Exchange,
    replies: Sequence[str | bytes] = (),
    *,
    exchange_sends_every_s: float | None = None,
) -> str | bytes | None:
    """Assert the heartbeat rules of ``docs/plugins.md``: with ``heartbeat_interval_s`` set,
    ``heartbeat_frame()`` is a non-empty frame, and each of ``replies`` (the exchange's answers
    to it, e.g. ``"pong"``) parses as a control frame (``[]``, no :class:`BadFrame`): every
    frame counts for staleness, so an answer is what keeps a quiet connection fresh. Then the
    answer (or what the exchange sends by itself to a quiet subscribed connection every
    ``exchange_sends_every_s``, such as Kraken's heartbeat channel) must come more often than
    ``stale_after_s``. Without an interval the runner never sends a heartbeat, so
    ``heartbeat_frame()`` must be None. Returns the frame.
    """
    frame = exchange.heartbeat_frame()
    interval = exchange.heartbeat_interval_s
    if interval is None:
        assert frame is None, "heartbeat_frame() is never sent: set heartbeat_interval_s"
        assert not replies, "replies to a heartbeat that is never sent"
        return None
    assert isinstance(frame, str | bytes) and frame, f"heartbeat_frame() gave {frame!r}"
    assert interval > 0, f"heartbeat_interval_s must be > 0, got {interval}"
    freshest = min(interval, exchange_sends_every_s or math.inf)
    assert freshest < exchange.stale_after_s, (
        f"nothing arrives more often than every {freshest} s, but stale_after_s is "
        f"{exchange.stale_after_s}: a quiet connection would look stale between heartbeats"
    )
    for reply in replies:
        assert exchange.parse(reply, 0) == [], f"the reply {reply!r} must be a control frame"
    return frame


def check_rejection(
    exchange: Exchange,
    read_request: ReadRequest,
    symbols: Sequence[str],
    *,
    request_id: int = 7,
    anonymous: bool = False,
) -> list[SubscriptionRejected]:
    """Subscribe ``symbols`` as request ``request_id``, let ``read_request`` (a server side that
    refuses some of them) answer, and assert the error replies raise
    :class:`SubscriptionRejected` that the runner can map back: with ``request_id`` (an
    exchange that echoes ids) or naming symbols of the request. A different id is always wrong.
    ``anonymous=True`` is for an exchange whose error replies name neither (Finnhub): then only
    the exception is asserted. Returns the rejections.
    """
    rejections = []
    for frame in exchange.subscribe_request(symbols, request_id):
        request = read_request(frame)
        for reply in request.replies if request is not None else ():
            try:
                exchange.parse(reply, 0)
            except SubscriptionRejected as exc:
                rejections.append(exc)
    assert rejections, "no reply raised SubscriptionRejected"
    for exc in rejections:
        assert exc.request_id in (None, request_id), f"{exc} answers request {request_id}"
        named = exc.request_id == request_id or (exc.symbols and set(exc.symbols) <= set(symbols))
        assert anonymous or named, f"{exc} names neither request {request_id} nor its symbols"
    return rejections


# -------------------------------------------------------------------------------------------------
# a demand you set by hand
# -------------------------------------------------------------------------------------------------


class ManualDemand(Demand):
    """The engine's real :class:`~engine.book.actor.Demand`, set by hand from any iterable:
    ``set(exchange, ["BTCUSDT"])`` (the book actor sets it from its triggers in the engine)."""

    def set(self, exchange: str, symbols: Iterable[str]) -> None:
        """Make ``symbols`` the live set of ``exchange`` and wake the feed if it changed."""
        super().set(exchange, frozenset(symbols))


def _fixture(function: Callable[[], ManualDemand]) -> Callable[[], ManualDemand]:
    """``pytest.fixture(function)`` when pytest is importable, else ``function`` itself: pytest is
    a test-time dependency, and the kit's run-time parts (the exchange server, the checks) must
    import without it."""
    try:
        import pytest
    except ModuleNotFoundError:
        return function
    return pytest.fixture(function)


@_fixture
def manual_demand() -> ManualDemand:
    """A :class:`ManualDemand` for driving a feed's subscriptions in a test."""
    return ManualDemand()


# -------------------------------------------------------------------------------------------------
# a local exchange
# -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """What ``read_request`` makes of one client message.

    ``op`` is ``"subscribe"``, ``"unsubscribe"`` or anything else (recorded, no replay);
    ``symbols`` are normalised (as the exchange's ticks spell them); ``replies`` are sent back
    first (an ack, or an error reply).
    """

    op: str
    symbols: tuple[str, ...] = ()
    replies: tuple[str, ...] = ()


ReadRequest = Callable[[str], Request | None]


@dataclass
class ServerConnection:
    """One client connection to the :class:`ExchangeServer`."""

    ws: trio_websocket.WebSocketConnection
    path: str
    received: list[str] = field(default_factory=list)
    times: list[float] = field(default_factory=list)  # trio.current_time() of each message
    subscribed: set[str] = field(default_factory=set)
    open: bool = True
    opened_at: float = 0.0


class ExchangeServer:
    """A local exchange: trio-websocket on ``127.0.0.1:0``, speaking through ``read_request``.

    ``frames`` maps a symbol to its recorded data frames (see :func:`frames_by_symbol`); on a
    subscribe the server sends the request's replies, then (with ``replay=True``) those frames.
    ``greeting`` frames are sent to every new connection. Everything the clients send is in
    ``received`` (all connections, in order) and ``requests``; ``wait_until`` blocks until a
    condition over the server holds.
    """

    def __init__(
        self,
        read_request: ReadRequest,
        frames: Mapping[str, Sequence[str]] | None = None,
        *,
        greeting: Sequence[str] = (),
        replay: bool = True,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.read_request = read_request
        self.host = host
        self.frames = {k: list(v) for k, v in (frames or {}).items()}
        self.greeting = list(greeting)
        self.replay = replay
        self.port = port
        self.connections: list[ServerConnection] = []
        self.received: list[str] = []
        self.requests: list[Request] = []
        self.refuse = False  # reject new handshakes while set (a flapping exchange)
        self.refused = 0  # handshakes rejected so far
        self._changed = trio.Event()

    @property
    def url(self) -> str:
        """The base URL to give the exchange (``ws://127.0.0.1:<port>``)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"ws://{host}:{self.port}"

    @property
    def live(self) -> list[ServerConnection]:
        """The connections still open."""
        return [c for c in self.connections if c.open]

    def subscribed(self) -> set[str]:
        """Symbols subscribed over every open connection."""
        return set().union(*(c.subscribed for c in self.live))

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def wait_until(self, condition: Callable[[], bool]) -> None:
        """Wait (checkpointing) until ``condition()`` is true; re-checked on every server event."""
        while not condition():
            await self._changed.wait()

    async def run(self, *, task_status: trio.TaskStatus[ExchangeServer]) -> None:
        """Serve until cancelled; ``task_status.started(self)`` once the port is bound."""
        async with trio.open_nursery() as nursery:
            listener = await nursery.start(
                trio_websocket.serve_websocket, self._handler, self.host, self.port, None
            )
            self.port = listener.port
            task_status.started(self)

    async def _handler(self, request: trio_websocket.WebSocketRequest) -> None:
        if self.refuse:
            self.refused += 1
            await request.reject(503)
            self._notify()
            return
        ws = await request.accept()
        conn = ServerConnection(ws, request.path, opened_at=trio.current_time())
        self.connections.append(conn)
        self._notify()
        try:
            for frame in self.greeting:
                await ws.send_message(frame)
            while True:
                message = await ws.get_message()
                text = message if isinstance(message, str) else message.decode()
                conn.received.append(text)
                conn.times.append(trio.current_time())
                self.received.append(text)
                await self._answer(conn, text)
                self._notify()
        except trio_websocket.ConnectionClosed:
            pass
        finally:
            conn.open = False
            self._notify()

    async def _answer(self, conn: ServerConnection, text: str) -> None:
        request = self.read_request(text)
        if request is None:
            return
        self.requests.append(request)
        for reply in request.replies:
            await conn.ws.send_message(reply)
        if request.op == "subscribe":
            conn.subscribed.update(request.symbols)
            if self.replay:
                for symbol in request.symbols:
                    for frame in self.frames.get(symbol, ()):
                        await conn.ws.send_message(frame)
        elif request.op == "unsubscribe":
            conn.subscribed.difference_update(request.symbols)

    async def send(self, frame: str | bytes, connection: ServerConnection | None = None) -> None:
        """Send ``frame`` on one connection (default: every open one)."""
        for conn in [connection] if connection else self.live:
            await conn.ws.send_message(frame)

    async def send_for(self, symbol: str, frame: str | bytes) -> None:
        """Send ``frame`` on every open connection that subscribed ``symbol``."""
        for conn in self.live:
            if symbol in conn.subscribed:
                await conn.ws.send_message(frame)

    async def ping(self) -> None:
        """A protocol ping on every open connection (the client must answer it)."""
        for conn in self.live:
            await conn.ws.ping()

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        """Close every open connection (the client must reconnect)."""
        for conn in self.live:
            await conn.ws.aclose(code, reason)

    async def garbage(self, frames: Sequence[str | bytes] = ("not json {", "{}", "[1, 2]")) -> None:
        """Send frames no exchange would (the client must skip them and stay up)."""
        for frame in frames:
            await self.send(frame)


@asynccontextmanager
async def serve_exchange(
    read_request: ReadRequest,
    frames: Mapping[str, Sequence[str]] | None = None,
    **kwargs: Any,
) -> AsyncIterator[ExchangeServer]:
    """``async with serve_exchange(...) as server:`` a started :class:`ExchangeServer`, stopped
    (cancelled) on exit."""
    async with trio.open_nursery() as nursery:
        server = await nursery.start(ExchangeServer(read_request, frames, **kwargs).run)
        yield server
        nursery.cancel_scope.cancel()


# -------------------------------------------------------------------------------------------------
# the conversation through the real runner
# -------------------------------------------------------------------------------------------------


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


def read_binance_request(message: str) -> Request | None:
    """The server side of Binance's live (un)subscribe, for tests and benchmarks.

    ``{"method": "SUBSCRIBE", "params": ["btcusdt@trade"], "id": 1}`` -> subscribe ``BTCUSDT``,
    replying ``{"result": null, "id": 1}``.
    """
    msg = json.loads(message)
    ops = {"SUBSCRIBE": "subscribe", "UNSUBSCRIBE": "unsubscribe"}
    op = ops.get(msg.get("method"), str(msg.get("method")))
    symbols = tuple(p.split("@")[0].upper() for p in msg.get("params", ()))
    reply = json.dumps({"result": None, "id": msg.get("id")})
    return Request(op, symbols, (reply,))


# -------------------------------------------------------------------------------------------------
# the exchange server from the command line (``triggerbook plugins serve NAME``)
# -------------------------------------------------------------------------------------------------

_MARK = "QZQ7MARK9QZQ"  # a symbol no exchange spells, to find where its requests put symbols
_MARK_ID = 424242
_json_in = msgspec.json.Decoder(float_hook=Decimal)  # JSON numbers keep their digits
_json_out = msgspec.json.Encoder(decimal_format="number")

JsonPath = tuple[str | int, ...]


def _leaves(value: object, path: JsonPath = ()) -> Iterator[tuple[JsonPath, object]]:
    """Every scalar of a JSON document with its path; list indices are ``-1`` (any item)."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves(item, (*path, str(key)))
    elif isinstance(value, list):
        for item in value:
            yield from _leaves(item, (*path, -1))
    else:
        yield path, value


def infer_read_request(exchange: Exchange, *, pong: str | None = None) -> ReadRequest:
    """The server side of ``exchange``'s protocol, learnt from its own request frames.

    Subscribes and unsubscribes a marker symbol through ``subscribe_request`` /
    ``unsubscribe_request`` and remembers where the symbol goes (a JSON path, with any prefix,
    suffix and lower-casing, as Binance's ``bnbbtc@trade``) and which fields tell a subscribe
    from an unsubscribe. A message equal to ``heartbeat_frame()`` is answered with ``pong``
    when given. Nothing else is answered (no acks: the runner needs none). Raises
    ``ValueError`` for an exchange whose requests are not JSON objects naming the symbol.
    """
    try:
        sub = _json_in.decode(exchange.subscribe_request([_MARK], _MARK_ID)[0])
        unsub = _json_in.decode(exchange.unsubscribe_request([_MARK], _MARK_ID)[0])
    except (msgspec.DecodeError, IndexError):
        raise ValueError(f"{exchange.name}'s requests are not JSON: write a read_request") from None
    where: list[tuple[JsonPath, str, str, bool]] = []
    for path, value in _leaves(sub):
        if isinstance(value, str) and _MARK.lower() in value.lower():
            at = value.lower().index(_MARK.lower())
            lower = value[at : at + len(_MARK)] == _MARK.lower()
            where.append((path, value[:at], value[at + len(_MARK) :], lower))
    if not where:
        raise ValueError(f"{exchange.name}'s requests do not name the symbol: write a read_request")
    marked = {w[0] for w in where}

    def fields(doc: object) -> dict[JsonPath, set[object]]:
        out: dict[JsonPath, set[object]] = {}
        for path, value in _leaves(doc):
            if path not in marked and value not in (_MARK_ID, str(_MARK_ID)):
                out.setdefault(path, set()).add(value)
        return out

    sub_fields, unsub_fields = fields(sub), fields(unsub)
    telling = {
        p
        for p in sub_fields.keys() | unsub_fields.keys()
        if sub_fields.get(p) != unsub_fields.get(p)
    }
    beat = exchange.heartbeat_frame()
    beat_text = beat.decode() if isinstance(beat, bytes) else beat

    def read_request(message: str) -> Request | None:
        if beat_text is not None and message == beat_text:
            return Request("ping", (), (pong,) if pong is not None else ())
        try:
            doc = _json_in.decode(message)
        except msgspec.DecodeError:
            return Request("unknown")
        got = fields(doc)
        op = "unknown"
        for name, want in (("subscribe", sub_fields), ("unsubscribe", unsub_fields)):
            if all(got.get(p) == want.get(p) for p in telling):
                op = name
        symbols = []
        for path, value in _leaves(doc):
            for spot, prefix, suffix, lower in where:
                if path == spot and isinstance(value, str) and value.startswith(prefix):
                    name = value[len(prefix) : len(value) - len(suffix)]
                    if value.endswith(suffix) and name:
                        symbols.append(name.upper() if lower else name)
        return Request(op, tuple(dict.fromkeys(symbols)))

    return read_request


class TradeMaker:
    """New trade frames in ``exchange``'s own format, made from its recorded data frames.

    For a symbol it takes that symbol's recorded frame (or any data frame, with the symbol put
    in its place, also lower-cased where the recording had it so) and a new price (a small
    random walk from the recorded one, at the same precision) and the time now where the
    recording had its time in milliseconds. A frame is kept only when ``exchange.parse`` gives
    back exactly that symbol and price, so the operator never sees a frame the plugin would
    misread.
    """

    def __init__(
        self, exchange: Exchange, frames: Sequence[str], *, seed: int | None = None
    ) -> None:
        self.exchange = exchange
        self.templates: dict[str, tuple[object, Tick]] = {}
        for frame in frames:
            try:
                ticks = exchange.parse(frame, 0)
                doc = _json_in.decode(frame)
            except (BadFrame, SubscriptionRejected, FeedClosed, msgspec.DecodeError):
                continue
            if len(ticks) == 1 and isinstance(doc, dict):
                self.templates.setdefault(ticks[0].symbol, (doc, ticks[0]))
        self.prices: dict[str, Decimal] = {}
        self._random = random.Random(seed)

    def trade(self, symbol: str) -> str | None:
        """A new trade frame of ``symbol``, or None when no recorded frame can be made one."""
        if not self.templates:
            return None
        doc, tick = self.templates.get(symbol) or next(iter(self.templates.values()))
        last = self.prices.get(symbol, tick.price)
        step = Decimal(self._random.uniform(-0.001, 0.001)).quantize(Decimal("1e-6"))
        # at least six significant digits, so that a price like 0.001 can move at all
        exponent = min(int(tick.price.as_tuple().exponent), tick.price.adjusted() - 5)
        price = (last * (1 + step)).quantize(Decimal(1).scaleb(exponent))
        price = price if price > 0 else last
        now_ms = int(time.time() * 1000)
        swaps = {
            tick.symbol: symbol,
            tick.symbol.lower(): symbol.lower(),
            str(tick.price): str(price),
            str(tick.exchange_time_ms): str(now_ms),
        }
        frame = _json_out.encode(_swap(doc, swaps, tick, price, now_ms)).decode()
        try:
            ticks = self.exchange.parse(frame, 0)
        except (BadFrame, SubscriptionRejected, FeedClosed):
            return None
        if [(t.symbol, t.price) for t in ticks] != [(symbol, price)]:
            return None
        self.prices[symbol] = price
        return frame


def _swap(
    value: object, swaps: Mapping[str, str], tick: Tick, price: Decimal, now_ms: int
) -> object:
    """``value`` with the recorded symbol, price and millisecond time replaced."""
    if isinstance(value, dict):
        return {k: _swap(v, swaps, tick, price, now_ms) for k, v in value.items()}
    if isinstance(value, list):
        return [_swap(v, swaps, tick, price, now_ms) for v in value]
    if isinstance(value, str):
        if value in swaps:
            return swaps[value]
        for old in (tick.symbol, tick.symbol.lower()):
            if old and old in value:
                return value.replace(old, swaps[old])
        return value
    if isinstance(value, Decimal) and value == tick.price:
        return price
    if isinstance(value, int) and not isinstance(value, bool) and value == tick.exchange_time_ms:
        return now_ms if value else value
    return value


def find_frames(exchange: Exchange) -> Path | None:
    """The recording a plugin keeps beside its package, ``tests/data/<name>.jsonl`` (found from
    an in-tree or editable install), or None."""
    module = sys.modules.get(type(exchange).__module__)
    start = Path(getattr(module, "__file__", "") or ".").resolve().parent
    for folder in (start, *start.parents[:3]):
        candidate = folder / "tests" / "data" / f"{exchange.name}.jsonl"
        if candidate.is_file():
            return candidate
    return None


async def serve_plugin(
    exchange: Exchange,
    frames: Sequence[str],
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    interval_s: float = 1.0,
    pong: str | None = None,
    task_status: trio.TaskStatus[ExchangeServer] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``exchange``'s protocol on ``host:port`` until cancelled, for trying a plugin
    against the real engine: requests are read by :func:`infer_read_request`; a subscribe
    replays the recorded ``frames`` of its symbols, then every ``interval_s`` (0: never) each
    subscribed symbol gets a new trade from :class:`TradeMaker`. ``task_status.started`` gets
    the :class:`ExchangeServer` (its ``url`` is what ``[feeds.<name>] url`` takes).
    """
    read = infer_read_request(exchange, pong=pong)
    maker = TradeMaker(exchange, frames)
    server = ExchangeServer(read, frames_by_symbol(exchange, frames), host=host, port=port)
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        if interval_s > 0:
            nursery.start_soon(_generate, server, maker, interval_s)
        task_status.started(server)


async def _generate(server: ExchangeServer, maker: TradeMaker, interval_s: float) -> None:
    while True:
        await trio.sleep(interval_s)
        for conn in server.live:
            for symbol in sorted(conn.subscribed):
                frame = maker.trade(symbol)
                if frame is None:
                    continue
                with contextlib.suppress(trio_websocket.ConnectionClosed):
                    await conn.ws.send_message(frame)


# -------------------------------------------------------------------------------------------------
# a local REST endpoint (symbol lists, last prices)
# -------------------------------------------------------------------------------------------------

RestReply = tuple[int, bytes]
RestRoute = Callable[[str], "RestReply | Awaitable[RestReply]"]


class RestServer:
    """A plain HTTP/1.1 server on ``127.0.0.1``, port 0 (h11 over a trio TCP listener), for
    testing an exchange's ``symbols_url`` and ``price_url`` through the real
    :class:`~engine.feeds.symbols.SymbolDirectory` and httpx.

    ``routes`` maps a path (``/api/v3/exchangeInfo``) to a function of the whole request target
    (path and query) that returns, or awaits, ``(status, body)``; an unknown path is a 404.
    A route may sleep forever (a server that never answers) or be swapped between requests.
    ``requests`` records every request target in order.
    """

    def __init__(self, routes: Mapping[str, RestRoute] | None = None) -> None:
        self.routes: dict[str, RestRoute] = dict(routes or {})
        self.requests: list[str] = []
        self.port = 0

    @property
    def url(self) -> str:
        """The base URL (``http://127.0.0.1:<port>``)."""
        return f"http://127.0.0.1:{self.port}"

    async def run(self, *, task_status: trio.TaskStatus[RestServer]) -> None:
        """Serve until cancelled; ``task_status.started(self)`` once the port is bound."""
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.serve_listeners, self._connection, listeners)
            task_status.started(self)

    async def _connection(self, stream: trio.SocketStream) -> None:
        # The client may go away mid-answer (a test of its timeout).
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await self._converse(stream)

    async def _converse(self, stream: trio.SocketStream) -> None:
        import h11  # httpx's and hypercorn's own HTTP/1.1 library

        conn = h11.Connection(h11.SERVER)
        async with stream:
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    data = await stream.receive_some(65536)
                    if not data:
                        return
                    conn.receive_data(data)
                    continue
                if isinstance(event, h11.Request):
                    target = event.target.decode()
                    self.requests.append(target)
                    route = self.routes.get(target.split("?", 1)[0])
                    reply = route(target) if route is not None else (404, b'{"msg":"not found"}')
                    if not isinstance(reply, tuple):
                        reply = await reply
                    status, body = reply
                    headers = [
                        ("content-type", "application/json"),
                        ("content-length", str(len(body))),
                    ]
                    out = conn.send(h11.Response(status_code=status, headers=headers))
                    out += conn.send(h11.Data(data=body)) + conn.send(h11.EndOfMessage())
                    await stream.send_all(out)
                elif isinstance(event, h11.EndOfMessage):
                    if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
                        conn.start_next_cycle()
                elif isinstance(event, h11.ConnectionClosed):
                    return


@asynccontextmanager
async def serve_rest(routes: Mapping[str, RestRoute] | None = None) -> AsyncIterator[RestServer]:
    """Run a :class:`RestServer` for the duration of the block."""
    async with trio.open_nursery() as nursery:
        server = await nursery.start(RestServer(routes).run)
        try:
            yield server
        finally:
            nursery.cancel_scope.cancel()
