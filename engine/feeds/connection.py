"""Opening an exchange's WebSocket so that the runner knows when the socket has run dry.

trio-websocket's reader task turns each chunk of bytes off the socket into messages and hands
them over one per scheduler pass. A feed that woke the book for every message would pay a Trio
task step per frame on top of the reader's and its own (measured: a third of the whole path).
The runner therefore holds the ticks of a burst and hands them to the book together. It needs
to know when a burst ends, without a timer (epoll rounds an idle timer to a millisecond) and
without trio-websocket's private state. This module gives it that signal through the public
``wrap_client_stream``:

the transport stream is wrapped in a :class:`DrainSignalStream`, whose ``receive_some`` first
awaits ``on_drained`` and then marks itself ``idle`` while it waits for bytes.

When the reader asks for more bytes, every message of the bytes before has been taken by the
feed or waits in trio-websocket's one-message queue, and ``on_drained`` is the moment to release
what the feed holds. The feed checks ``idle`` after each message for what the callback cannot
see: a message it took, or finished, after the reader had already started waiting.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import trio
import trio_websocket

from engine.plugins.urls import split_ws_url

__all__ = ["DrainSignalStream", "open_feed_connection", "split_ws_url"]


class DrainSignalStream(trio.abc.Stream):
    """A transport stream that tells its owner each time the reader has no bytes left.

    ``idle`` is true exactly while ``receive_some`` waits on the transport. Everything else is
    passed through unchanged.
    """

    def __init__(self, transport: trio.abc.Stream, on_drained: Callable[[], Awaitable[None]]):
        self.transport = transport
        self.on_drained = on_drained
        self.idle = False

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        await self.on_drained()
        self.idle = True
        try:
            return await self.transport.receive_some(max_bytes)
        finally:
            self.idle = False

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self.transport.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.transport.wait_send_all_might_not_block()

    async def aclose(self) -> None:
        await self.transport.aclose()


def _host_header(host: str, port: int, tls: bool) -> str:
    name = f"[{host}]" if ":" in host else host
    return name if port == (443 if tls else 80) else f"{name}:{port}"


@asynccontextmanager
async def open_feed_connection(
    url: str,
    *,
    connect_timeout: float,
    on_drained: Callable[[], Awaitable[None]],
    close_timeout: float = 5.0,
) -> AsyncIterator[tuple[trio_websocket.WebSocketConnection, DrainSignalStream]]:
    """Connect to ``url`` and yield ``(ws, stream)``; close the connection on the way out.

    Connecting and the opening handshake share ``connect_timeout``; running out of it raises
    :class:`trio_websocket.ConnectionTimeout`, a socket error :class:`trio_websocket.HandshakeError`
    (as ``open_websocket_url`` does). ``on_drained`` runs in the connection's reader task, so
    whatever it raises ends the connection: it must not raise ``trio.BrokenResourceError`` or
    ``trio.ClosedResourceError`` for its own reasons, which trio-websocket reads as a dead socket.
    The close handshake gets ``close_timeout`` seconds before the transport is closed anyway.
    """
    host, port, resource, tls = split_ws_url(url)
    failure: BaseException | None = None
    async with trio.open_nursery() as nursery:
        try:
            with trio.fail_after(connect_timeout):
                ws, stream = await _connect(nursery, host, port, resource, tls, on_drained)
        except trio.TooSlowError:
            failure = trio_websocket.ConnectionTimeout()
        except OSError as exc:
            failure = trio_websocket.HandshakeError()
            failure.__cause__ = exc
        if failure is not None:
            nursery.cancel_scope.cancel()  # the reader task, if the handshake had begun
        else:
            try:
                yield ws, stream
            finally:
                with trio.move_on_after(close_timeout) as closing:
                    await ws.aclose()
                if closing.cancelled_caught:
                    await trio.aclose_forcefully(stream)
                nursery.cancel_scope.cancel()
    if failure is not None:
        raise failure  # outside the nursery, so not wrapped in an exception group


async def _connect(
    nursery: trio.Nursery,
    host: str,
    port: int,
    resource: str,
    tls: bool,
    on_drained: Callable[[], Awaitable[None]],
) -> tuple[trio_websocket.WebSocketConnection, DrainSignalStream]:
    transport: trio.abc.Stream
    if tls:
        transport = await trio.open_ssl_over_tcp_stream(
            host, port, ssl_context=ssl.create_default_context(), https_compatible=True
        )
    else:
        transport = await trio.open_tcp_stream(host, port)
    stream = DrainSignalStream(transport, on_drained)
    try:
        ws = await trio_websocket.wrap_client_stream(
            nursery,
            stream,  # type: ignore[arg-type]  # any trio.abc.Stream will do
            _host_header(host, port, tls),
            resource,
        )
    except BaseException:
        await trio.aclose_forcefully(stream)
        raise
    return ws, stream
