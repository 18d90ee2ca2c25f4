"""A local REST endpoint (symbol lists, last prices): h11 over a trio TCP listener on port 0."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager

import trio

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
