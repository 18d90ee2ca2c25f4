"""The live stream: ``/api/stream``, a WebSocket of throttled prices (issue 16, "Live data").

Served by :class:`StreamApp`, an ASGI wrapper in front of the rest of the web (it takes only
WebSocket connections to ``/api/stream``; everything else passes through unchanged), so a
stream never enters Quart's request machinery.

The protocol (JSON text frames):

- The client's FIRST message authenticates: ``{"type": "auth", "token": "<access>"}``. The token
  never goes in the URL (URLs land in logs). A missing or refused token, any other first
  message, or none within ``WebSettings.stream_auth_s`` closes with 4401 ``unauthorized``.
- ``{"type": "subscribe"|"unsubscribe", "symbols": [{"exchange": ..., "symbol": ...}]}``:
  symbols are spelt as the API spells them (``web/markets.py``); past
  ``WebSettings.stream_symbols`` per client the request is refused with an ``error`` message
  naming the limit. ``{"type": "ping"}`` is answered with ``{"type": "pong"}``.
- The server sends ``{"type": "price", "exchange", "symbol", "price", "time", "at"}`` (``price``
  an exact decimal string, ``time`` the exchange's event time in ms, 0 when it sends none;
  ``at`` the engine's epoch second when sent, the clock of the history points, so a chart can
  put both on one axis) at most once per
  ``WebSettings.stream_interval_s`` per symbol, the latest only, read from ``parts.prices`` by
  one task for all streams (:func:`run_prices`): nothing runs on the book's hot path, and the
  cost of a round is one timer and one pass, whatever the number of clients. While the engine
  is busy (over 75% of a core) the rounds slow to ``WebSettings.stream_busy_interval_s``
  (one a second): prices to watchers yield to matching.
- Right after a ``subscribed`` answer, each newly subscribed symbol's recent history, when the
  engine holds any (``engine/book/history.py``: up to 15 minutes, one point a second):
  ``{"type": "history", "exchange", "symbol", "points": [{"time", "price"}]}`` (``time`` epoch
  seconds, oldest first), before any price of that symbol, so a chart that opens is not empty.
  One message per symbol, whole; the buffer counts messages, so a history is offered only while
  the client's buffer keeps room for it and one more message (else it is skipped, never a
  reason to drop the client: the page can still ask ``GET /api/prices/{symbol}/history``).
- ``{"type": "fire", "alert_id", "exchange", "symbol", "direction", "target_price", "price",
  "triggered_at"}`` when one of the user's own alerts fires (never another user's), once the
  fire is committed (``engine/events.py``; ``triggered_at`` epoch ms, prices decimal strings),
  to each of that user's open streams, whatever they subscribed.

When the server shuts down every stream is closed with 1001 at once, before the drain, and no
new one is admitted (:meth:`Streams.close_all`): clients reconnect to the next engine.

Heartbeats go both ways: hypercorn pings every client (``web/server.py``), and a client sends
something (``ping`` will do) at least every ``WebSettings.stream_idle_s``; a stream that stays
silent longer is closed with 4000 ``idle``, so a dead peer, or one that only holds a slot, does
not keep it (the page pings every 20 s).

Many clients must not slow anything else: each client has a bounded outbound channel
(:attr:`Client.outbound`, fed with :meth:`Client.offer`, which never waits). When it is full the
client is not reading fast enough and is dropped with 4429 ``too slow``. Connections are capped
per user (``stream_per_user``) and in all (``stream_total``): past either the connection is
closed with 4408/4503 naming the cap. Hypercorn pings every client (``web/server.py``).

Fires come from the recorder's :class:`~engine.events.FirePublisher` (``parts.fires``): the
callback runs in the recorder's task, finds the owner's clients with :meth:`Streams.of_user`
and offers each of them the event (``client.offer``) without waiting (a full buffer drops
that client).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import msgspec
import trio

from engine.book.prices import LastPrices
from engine.errors import ApiError
from engine.events import FireEvent
from engine.model import Tick
from web import markets
from web.auth import ACCESS
from web.context import State
from web.http import plain

log = logging.getLogger(__name__)

PATH = "/api/stream"
Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

UNAUTHORIZED = 4401
TOO_SLOW = 4429
USER_CAP = 4408
TOTAL_CAP = 4503
BAD_MESSAGE = 4400
GOING_AWAY = 1001  # the server is shutting down (RFC 6455)
IDLE = 4000  # nothing from the client within stream_idle_s: a dead peer, or one holding a slot
MAX_MESSAGE = 16 * 1024  # bytes of one client message
CLOSE_WAIT_S = 1.0  # how long a close frame may take to leave before the socket is dropped


class Closing(Exception):
    """Close the connection with ``code`` and ``reason``."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass(eq=False, slots=True)
class Client:
    """One authenticated connection: its user, its symbols and its bounded outbound channel."""

    user_id: int
    outbound: trio.MemorySendChannel[bytes]
    symbols: set[tuple[str, str]] = field(default_factory=set)
    dropped: trio.Event = field(default_factory=trio.Event)
    close_with: tuple[int, str] | None = None  # why the connection ends, when not too slow
    sent: dict[tuple[str, str], Tick] = field(default_factory=dict)  # last tick sent, by symbol

    def offer(self, message: bytes) -> bool:
        """Queue ``message`` without waiting; a full buffer drops the client (returns False)."""
        if self.dropped.is_set():
            return False
        try:
            self.outbound.send_nowait(message)
        except trio.WouldBlock:
            self.dropped.set()
            return False
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return False
        return True


class Streams:
    """Every open stream, by user: the caps are checked here, and publishers find clients."""

    def __init__(self, per_user: int, total: int) -> None:
        self.per_user = per_user
        self.total = total
        self._by_user: dict[int, set[Client]] = {}
        self._count = 0
        self.going_away = False

    def close_all(self) -> None:
        """The server is shutting down: every stream is closed with 1001 now (its client
        reconnects to the next engine at once, rather than finding its socket cut at the end
        of the drain), and no new one is admitted."""
        self.going_away = True
        for client in self:
            if not client.dropped.is_set():  # one already ending keeps its own reason
                client.close_with = (GOING_AWAY, "the server is shutting down")
                client.dropped.set()

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[Client]:
        """Every open stream (do not add or remove while iterating: no await in between)."""
        for clients in self._by_user.values():
            yield from clients

    def of_user(self, user_id: int) -> list[Client]:
        """The open streams of ``user_id`` (for a publisher of that user's events)."""
        return list(self._by_user.get(user_id, ()))

    def add(self, client: Client) -> None:
        """Admit ``client``; :class:`Closing` past a cap, or once the server is going away."""
        if self.going_away:
            raise Closing(GOING_AWAY, "the server is shutting down; connect again shortly")
        if self._count >= self.total:
            raise Closing(TOTAL_CAP, f"server full: at most {self.total} streams")
        mine = self._by_user.setdefault(client.user_id, set())
        if len(mine) >= self.per_user:
            raise Closing(USER_CAP, f"too many streams: at most {self.per_user} per user")
        mine.add(client)
        self._count += 1

    def remove(self, client: Client) -> None:
        mine = self._by_user.get(client.user_id)
        if mine is None or client not in mine:
            return
        mine.discard(client)
        self._count -= 1
        if not mine:
            del self._by_user[client.user_id]


class StreamApp:
    """ASGI: WebSocket connections to ``/api/stream`` served here, the rest by ``app``."""

    def __init__(self, app: ASGIApp, state: State) -> None:
        self._app = app
        self._state = state
        settings = state.settings
        self.streams = Streams(settings.stream_per_user, settings.stream_total)
        self._encoder = msgspec.json.Encoder()
        state.ctx.fires.subscribe(self._fires)

    def _fires(self, events: list[FireEvent]) -> None:
        """The recorder's committed fires, each to its owner's streams only; never waits."""
        for event in events:
            clients = self.streams.of_user(event.owner_id)
            if not clients:
                continue
            message = self._encoder.encode(
                {
                    "type": "fire",
                    "alert_id": event.alert_id,
                    "exchange": event.exchange,
                    "symbol": event.symbol,
                    "direction": event.direction,
                    "target_price": plain(event.target_price),
                    "price": plain(event.price),
                    "triggered_at": event.fired_at_ms,
                }
            )
            for client in clients:
                client.offer(message)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            await self._app(scope, receive, send)
            return
        if scope["path"].rstrip("/") != PATH or scope.get("root_path", ""):
            await receive()  # websocket.connect
            await send({"type": "websocket.close", "code": 1008, "reason": "no such stream"})
            return
        if (await receive())["type"] != "websocket.connect":
            return
        await send({"type": "websocket.accept"})
        await self._serve(receive, send)

    async def _serve(self, receive: Receive, send: Send) -> None:
        settings = self._state.settings
        outbound, pending = trio.open_memory_channel[bytes](settings.stream_buffer)
        client: Client | None = None
        code, reason = 1000, ""
        try:
            with trio.fail_after(settings.stream_auth_s):
                user_id = self._authenticate(await _next_text(receive))
            client = Client(user_id, outbound)
            self.streams.add(client)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._write, pending, send)
                nursery.start_soon(self._read, client, receive)
                await client.dropped.wait()
                nursery.cancel_scope.cancel()
            code, reason = client.close_with or (
                TOO_SLOW,
                "too slow: the client did not read its messages",
            )
        except trio.TooSlowError:
            code, reason = UNAUTHORIZED, "unauthorized: no auth message in time"
        except Closing as closing:
            code, reason = closing.code, closing.reason
        except _Gone:
            return
        finally:
            if client is not None:
                self.streams.remove(client)
            outbound.close()
        with trio.move_on_after(CLOSE_WAIT_S) as waited:
            waited.shield = True
            await send({"type": "websocket.close", "code": code, "reason": reason})

    def _authenticate(self, text: str) -> int:
        try:
            message = _decode(text)
        except Closing:
            raise Closing(UNAUTHORIZED, "unauthorized: the first message must be auth") from None
        token = message.get("token") if message.get("type") == "auth" else None
        if not isinstance(token, str) or not token:
            raise Closing(UNAUTHORIZED, "unauthorized: the first message must be auth")
        try:
            return self._state.tokens.verify(token, ACCESS).user_id
        except ApiError as refused:
            raise Closing(UNAUTHORIZED, f"unauthorized: {refused}") from None

    async def _read(self, client: Client, receive: Receive) -> None:
        idle_s = self._state.settings.stream_idle_s
        while True:
            try:
                with trio.fail_after(idle_s):
                    text = await _next_text(receive)
                message = _decode(text)
            except trio.TooSlowError:
                client.close_with = (IDLE, f"idle: no message in {idle_s:g} s; send pings")
                client.dropped.set()
                return
            except _Gone:
                client.close_with = (1000, "")  # nobody to write to; nothing is sent
                client.dropped.set()
                return
            except Closing as closing:
                client.close_with = (closing.code, closing.reason)
                client.dropped.set()
                return
            kind = message.get("type")
            if kind == "ping":
                client.offer(self._encoder.encode({"type": "pong"}))
            elif kind in ("subscribe", "unsubscribe"):
                before = set(client.symbols)
                client.offer(self._subscribe(client, kind, message.get("symbols")))
                self._histories(client, sorted(client.symbols - before))
            else:
                client.offer(self._error(f"unknown message type {kind!r}"))

    def _subscribe(self, client: Client, kind: str, given: Any) -> bytes:
        if not isinstance(given, list) or not all(isinstance(s, dict) for s in given):
            return self._error("symbols must be a list of {exchange, symbol} objects")
        ctx = self._state.ctx
        wanted: list[tuple[str, str]] = []
        try:
            for item in given:
                exchange = markets.price_exchange(ctx).clean(
                    item.get("exchange", markets.DEFAULT_EXCHANGE), "exchange"
                )
                wanted.append((exchange, markets.symbol_on(ctx, exchange, item.get("symbol"))))
        except ApiError as refused:
            return self._error(str(refused))
        if kind == "unsubscribe":
            client.symbols.difference_update(wanted)
            for key in wanted:  # subscribed again later, it gets the price it has then
                client.sent.pop(key, None)
        else:
            limit = self._state.settings.stream_symbols
            if len(client.symbols | set(wanted)) > limit:
                return self._error(f"too many symbols: at most {limit} per stream")
            client.symbols.update(wanted)
        listed = [{"exchange": e, "symbol": s} for e, s in sorted(client.symbols)]
        return self._encoder.encode({"type": "subscribed", "symbols": listed})

    def _histories(self, client: Client, added: list[tuple[str, str]]) -> None:
        """The recent points of each of ``added``, while the client's buffer has room for one
        and one more message (a history never drops a client; see the module docstring)."""
        history = self._state.ctx.history
        now = int(time.time())
        for exchange, symbol in added:
            points = history.points(exchange, symbol, now=now)
            if not points:
                continue
            stats = client.outbound.statistics()
            if stats.max_buffer_size - stats.current_buffer_used < 2:
                return
            message = {
                "type": "history",
                "exchange": exchange,
                "symbol": symbol,
                "points": [{"time": second, "price": plain(price)} for second, price in points],
            }
            client.offer(self._encoder.encode(message))

    def _error(self, detail: str) -> bytes:
        return self._encoder.encode({"type": "error", "detail": detail})

    async def _write(
        self,
        pending: trio.MemoryReceiveChannel[bytes],
        send: Send,
    ) -> None:
        async with pending:
            async for message in pending:
                await send({"type": "websocket.send", "text": message.decode()})


class _Gone(Exception):
    """The client disconnected."""


async def _next_text(receive: Receive) -> str:
    while True:
        message = await receive()
        kind = message["type"]
        if kind == "websocket.disconnect":
            raise _Gone
        if kind != "websocket.receive":
            continue
        text = message.get("text")
        if text is None:
            data = message.get("bytes") or b""
            if len(data) > MAX_MESSAGE:
                raise Closing(1009, "message too big")
            try:
                text = data.decode()
            except UnicodeDecodeError:
                raise Closing(BAD_MESSAGE, "messages are JSON text") from None
        if len(text) > MAX_MESSAGE:
            raise Closing(1009, "message too big")
        return text


def _decode(text: str) -> dict[str, Any]:
    try:
        message = msgspec.json.decode(text)
    except msgspec.DecodeError:
        raise Closing(BAD_MESSAGE, "messages are JSON objects") from None
    if not isinstance(message, dict):
        raise Closing(BAD_MESSAGE, "messages are JSON objects")
    return message


async def run_prices(
    streams: Streams,
    prices: LastPrices,
    interval_s: float,
    busy_interval_s: float | None = None,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Every stream's prices, from one task: each round, every client is offered the latest
    tick of each symbol it watches that changed since it was sent one (a symbol just subscribed
    gets the price it has), each symbol's message encoded once for all its clients.

    One task, not one per client: 500 watchers cost one timer and one pass a round, not 500
    timers and 500 wakes (``triggerbook bench stream``). A round never waits (``offer``); a
    client whose buffer is full is dropped by it. Runs until cancelled (``web.server.run_web``).

    Prices yield to matching: a round comes every ``interval_s``, or every ``busy_interval_s``
    (``None``: the same) while the process is busy (:class:`Load`), so that however many
    people watch, sending them prices cannot take the CPU the feeds and the book need.

    Runtime complexity: O(subscriptions) a round, plus one encode per changed symbol.
    """
    encode = msgspec.json.Encoder().encode
    load = Load()
    task_status.started()
    while True:
        await trio.sleep(busy_interval_s if busy_interval_s and load.busy() else interval_s)
        now = int(time.time())
        round_: dict[tuple[str, str], tuple[Tick | None, bytes]] = {}
        for client in streams:
            sent = client.sent
            for key in client.symbols:
                latest = round_.get(key)
                if latest is None:
                    tick = prices.get(*key)
                    message = b"" if tick is None else encode(_price(tick, now))
                    latest = round_[key] = (tick, message)
                tick, message = latest
                if tick is None or sent.get(key) is tick:
                    continue
                sent[key] = tick
                if not client.offer(message):
                    break


class Load:
    """Is this process busy? The share of a core it used since the last question (all its
    threads: ``time.process_time``), with hysteresis: busy past ``BUSY``, calm again under
    ``CALM``. Read once a round, so it costs a clock read, never anything per tick."""

    BUSY = 0.75
    CALM = 0.5

    def __init__(self) -> None:
        self._cpu = time.process_time()
        self._wall = time.perf_counter()
        self._busy = False

    def busy(self) -> bool:
        cpu, wall = time.process_time(), time.perf_counter()
        elapsed = wall - self._wall
        if elapsed > 0:
            share = (cpu - self._cpu) / elapsed
            self._busy = share > self.CALM if self._busy else share > self.BUSY
        self._cpu, self._wall = cpu, wall
        return self._busy


def _price(tick: Tick, now: int) -> dict[str, Any]:
    return {
        "type": "price",
        "exchange": tick.exchange,
        "symbol": tick.symbol,
        "price": plain(tick.price),
        "time": tick.exchange_time_ms,
        "at": now,
    }
