"""The conformance kit: test an exchange plugin on recorded frames and through the real runner.

For plugin authors' own test suites (installed as a pytest plugin, ``pytest11`` entry point
``triggerbook``, which adds the ``manual_demand`` fixture). Three layers:

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

See ``docs/plugins.md`` for a complete example. Everything an author's tests name is importable
from here (``__all__``), the runner's pieces included (``ExchangeFeed``, ``FeedStates``,
``Metrics``, ``Tick``), so a plugin's tests import one module.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

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
    "check_bad_frames",
    "check_heartbeat",
    "check_parse",
    "check_rejection",
    "check_symbols_per_message",
    "frames_by_symbol",
    "load_frames",
    "manual_demand",
    "read_binance_request",
    "run_conformance",
    "run_heartbeat_check",
    "serve_exchange",
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
    ) -> None:
        self.read_request = read_request
        self.frames = {k: list(v) for k, v in (frames or {}).items()}
        self.greeting = list(greeting)
        self.replay = replay
        self.port = 0
        self.connections: list[ServerConnection] = []
        self.received: list[str] = []
        self.requests: list[Request] = []
        self.refuse = False  # reject new handshakes while set (a flapping exchange)
        self.refused = 0  # handshakes rejected so far
        self._changed = trio.Event()

    @property
    def url(self) -> str:
        """The base URL to give the exchange (``ws://127.0.0.1:<port>``)."""
        return f"ws://127.0.0.1:{self.port}"

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
                trio_websocket.serve_websocket, self._handler, "127.0.0.1", 0, None
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
