"""A local exchange: a trio-websocket server on port 0 that speaks through a ``read_request``.

:class:`ExchangeServer` answers (un)subscribes, replays recorded frames of the subscribed symbols,
records the whole conversation, and pings, closes and sends garbage on demand;
:func:`serve_exchange` runs one for the duration of an ``async with`` block.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import trio
import trio_websocket

from engine.feeds.testing._protocol import ReadRequest, Request


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
