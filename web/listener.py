"""Accept connections for hypercorn up to a cap, and give a new connection's head a deadline.

Why not ``hypercorn.trio.serve``: it accepts every connection the kernel hands it and holds an
idle or half-sent one for its keep-alive timeout, so a flood of connections that send nothing
runs the process out of file descriptors (``accept`` failing with EMFILE, ``/healthz`` timing
out: issue 15). :func:`serve` is hypercorn's trio worker (``hypercorn/trio/run.py``) for the
plain-TCP binds we use, with three changes:

- **a cap**: a slot of a ``trio.Semaphore(max_connections)`` is taken *before* ``accept`` and
  given back when the connection closes, so past the cap accepting stops: new clients wait in
  the kernel's backlog (``hconfig.backlog``) while established ones keep being served. While
  a client waits and some connection has not yet sent its first request head, the oldest such
  one is closed to make room: a flood of silent connections cannot keep the slots (each would
  otherwise hold one for ``head_timeout_s``, and the clients behind it wait that long again);
  a client that has been served is never closed for this;
- **a head deadline**: hypercorn runs one idle timer from the moment a connection is ready for
  a request (opened, or its last answer sent) until a complete request head has arrived, and
  closes the connection when it fires. Here that timer is ``head_timeout_s`` for a connection's
  first request and hypercorn's ``keep_alive_timeout`` for every later one, so a connection that
  sends nothing, or half a request line, is closed ``head_timeout_s`` after it was accepted;
- **a write deadline**: hypercorn shields every socket write from cancellation, so a client
  that stops reading (its receive window full) would hold the write, the connection, its slot
  and the server's shutdown for as long as it likes. Here each write must finish within
  ``send_timeout_s``, else the socket is closed and the connection ends.

The rest is hypercorn's own: the connection (``TCPServer``, h11/h2 protocols, the head size cap
``h11_max_incomplete_size``), the lifespan, and graceful shutdown (accepting stops, idle
connections close, in-flight requests get ``graceful_timeout``).

:func:`fit_fd_limit` raises the process's soft ``RLIMIT_NOFILE`` so the cap fits, and lowers the
cap when the hard limit does not allow it.
"""

from __future__ import annotations

import errno
import logging
import resource
from collections.abc import Awaitable, Callable
from typing import Any

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.events import Closed, Event, RawData
from hypercorn.trio.lifespan import Lifespan
from hypercorn.trio.tcp_server import TCPServer
from hypercorn.trio.worker_context import WorkerContext
from hypercorn.typing import AppWrapper, ConnectionState
from hypercorn.utils import ShutdownError, raise_shutdown, repr_socket_addr, wrap_app

log = logging.getLogger(__name__)

# File descriptors kept for everything but client connections: the database pool and the
# embedded Postgres' pipes, feed WebSockets, sink connections, log files, the event loop's own.
FD_RESERVE = 256
# accept() errors that mean "out of a resource for now": wait a little and accept again (as
# trio.serve_listeners does) rather than crash the server.
_RETRY_ACCEPT = {errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS}
_RETRY_S = 0.1
SEND_TIMEOUT_S = 10.0  # the default of [http] send_timeout_s (engine/config.py)


def plan_fd_limit(cap: int, soft: int, hard: int, reserve: int = FD_RESERVE) -> tuple[int, int]:
    """``(new_soft, effective_cap)``: the soft ``RLIMIT_NOFILE`` that fits ``cap`` connections
    plus ``reserve``, never above ``hard`` (``resource.RLIM_INFINITY`` is no bound) nor below
    ``soft``, and the cap that limit allows (at least 1)."""
    if soft == resource.RLIM_INFINITY:
        return soft, cap
    wanted = cap + reserve
    new_soft = max(soft, wanted if hard == resource.RLIM_INFINITY else min(wanted, hard))
    return new_soft, max(1, min(cap, new_soft - reserve))


def fit_fd_limit(cap: int, reserve: int = FD_RESERVE) -> int:
    """Raise the soft open-file limit to fit ``cap`` connections; the cap to use.

    Logs the limit; when the hard limit is too low for ``cap``, the cap is lowered to what it
    allows and the log says so.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    new_soft, effective = plan_fd_limit(cap, soft, hard, reserve)
    if new_soft != soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (new_soft, hard))
    if effective < cap:
        log.warning(
            "web: open-file limit %s (hard %s) is too low for max_connections = %d: "
            "serving at most %d connections (raise the hard limit, e.g. LimitNOFILE)",
            new_soft,
            hard,
            cap,
            effective,
        )
    else:
        log.info(
            "web: at most %d connections; open-file limit %s (was %s, hard %s)",
            effective,
            new_soft,
            soft,
            hard,
        )
    return effective


class _Connection(TCPServer):
    """hypercorn's connection with ``head_timeout_s`` as the idle timer of its first request,
    closed as soon as its client has gone, and closed when a write takes longer than
    ``send_timeout_s``; while it waits for that first head it is listed in ``headless``
    (oldest first) so that :func:`serve` may close it early (``shed``).

    hypercorn's connection ends when its task group does, and the idle timer runs in that group:
    a client that closes an idle connection (or one it never sent a head on) left its socket,
    and here its slot, held until the timer fired. ``_read_data`` returns when nothing more can
    be read, so the timer stops there.
    """

    def __init__(
        self,
        *args: Any,
        head_timeout_s: float,
        send_timeout_s: float,
        headless: dict[_Connection, None],
        gone: dict[_Connection, None],
    ) -> None:
        super().__init__(*args)
        self._head_timeout_s = head_timeout_s
        self._send_timeout_s = send_timeout_s
        self._headless = headless
        self._gone = gone
        self.scope = trio.CancelScope()  # serve runs the connection in it: see _read_data
        self._served = False
        self._waiting = trio.CancelScope()

    def shed(self) -> None:
        """Close this connection now: it has not sent a head and another client needs its slot."""
        self._headless.pop(self, None)
        self._waiting.cancel()

    async def protocol_send(self, event: Event) -> None:
        # hypercorn's own, but a write gets send_timeout_s. hypercorn shields its writes (a
        # cancelled task must not leave half a frame on the wire), so neither our deadlines nor
        # shutdown could end a write to a client that stopped reading: past the deadline the
        # socket is closed, which also wakes the reader, and the connection ends as if the
        # client had left.
        if not isinstance(event, RawData):
            await super().protocol_send(event)
            return
        async with self.send_lock:
            with trio.CancelScope(shield=True):
                try:
                    with trio.fail_after(self._send_timeout_s):
                        await self.stream.send_all(event.data)
                    return
                except trio.TooSlowError:
                    log.info(
                        "web: closed the connection of %s: a write waited %.1f s (send_timeout_s)"
                        " for the client to read",
                        self._peer(),
                        self._send_timeout_s,
                    )
                    await self.stream.aclose()
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    pass
            await self.protocol.handle(Closed())

    def _peer(self) -> str:
        sock = self.stream.socket
        try:
            return repr_socket_addr(sock.family, sock.getpeername())
        except OSError:
            return "a client"

    async def _read_data(self) -> None:
        await super()._read_data()
        await self.idle_task.stop()
        # The client is gone, but hypercorn's connection lasts as long as its task group, where
        # a WebSocket's ping loop sleeps up to its whole interval (15 s) before it sees the
        # close: a shutdown's drain would wait for it to the end of the grace. Once shutting
        # down, such a connection is ended at once (here, or by serve when the shutdown comes
        # later): nothing in it can reach its client any more.
        self._gone[self] = None
        if self.context.terminated.is_set():
            self.scope.cancel()

    async def _idle_timeout(self) -> None:
        # hypercorn's own, but the first wait (from accept to a complete head) is the head's.
        first = not self._served
        self._served = True
        timeout = self._head_timeout_s if first else self.config.keep_alive_timeout
        self._waiting = trio.CancelScope()
        with trio.move_on_after(timeout), self._waiting:
            if first:
                self._headless[self] = None
            try:
                await self.context.terminated.wait()
            finally:
                self._headless.pop(self, None)
        with trio.CancelScope(shield=True):
            await self._initiate_server_close()


async def serve(
    app: Any,
    config: HypercornConfig,
    *,
    max_connections: int,
    head_timeout_s: float,
    send_timeout_s: float = SEND_TIMEOUT_S,
    shutdown_trigger: Callable[[], Awaitable[object]],
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the ASGI ``app`` on ``config``'s binds until ``shutdown_trigger`` returns.

    At most ``max_connections`` connections at once, a new one's head within
    ``head_timeout_s``, each write within ``send_timeout_s``; ``task_status.started`` gets the
    binds (``["http://127.0.0.1:41234"]``). Raises ``OSError`` when a bind fails.
    """
    wrapped: AppWrapper = wrap_app(app, config.wsgi_max_body_size, "asgi")
    lifespan_state: dict[str, Any] = {}
    lifespan = Lifespan(wrapped, config, lifespan_state)
    context = WorkerContext(None)
    slots = trio.Semaphore(max_connections)
    headless: dict[_Connection, None] = {}  # connections yet to send a head, oldest first
    gone: dict[_Connection, None] = {}  # connections whose client left, their tasks not yet done

    async def connection(stream: trio.SocketStream) -> None:
        handler = _Connection(
            wrapped,
            config,
            context,
            ConnectionState(lifespan_state.copy()),
            stream,
            head_timeout_s=head_timeout_s,
            send_timeout_s=send_timeout_s,
            headless=headless,
            gone=gone,
        )
        try:
            with handler.scope:
                await handler.run()
        finally:
            gone.pop(handler, None)
            slots.release()

    async def accept(listener: trio.SocketListener, handlers: trio.Nursery) -> None:
        while True:
            if not slots.value:
                await trio.lowlevel.wait_readable(listener.socket)  # a client is waiting
                if headless and not slots.value:
                    next(iter(headless)).shed()
            await slots.acquire()
            try:
                stream = await listener.accept()
            except OSError as error:
                slots.release()
                if error.errno not in _RETRY_ACCEPT:
                    raise
                log.error("web: accept failed (%s); retrying in %.1f s", error, _RETRY_S)
                await trio.sleep(_RETRY_S)
                continue
            except BaseException:
                slots.release()
                raise
            handlers.start_soon(connection, stream)

    async with trio.open_nursery() as lifespan_nursery:
        await lifespan_nursery.start(lifespan.handle_lifespan)
        await lifespan.wait_for_startup()
        async with trio.open_nursery() as handlers:
            sockets = config.create_sockets()
            listeners = []
            binds = []
            for sock in sockets.insecure_sockets:
                sock.listen(config.backlog)
                listeners.append(trio.SocketListener(trio.socket.from_stdlib_socket(sock)))
                binds.append(f"http://{repr_socket_addr(sock.family, sock.getsockname())}")
            task_status.started(binds)
            try:
                async with trio.open_nursery(strict_exception_groups=True) as accepting:
                    accepting.start_soon(raise_shutdown, shutdown_trigger)
                    for listener in listeners:
                        accepting.start_soon(accept, listener, handlers)
            except BaseExceptionGroup as error:
                _, other = error.split(ShutdownError)
                if other is not None:
                    raise other from None
            finally:
                for listener in listeners:
                    listener.socket.close()  # new clients are refused, not left in the backlog
                await context.terminated.set()
                for handler in list(gone):  # their clients left: nothing to drain (_read_data)
                    handler.scope.cancel()
                handlers.cancel_scope.deadline = trio.current_time() + config.graceful_timeout
        await lifespan.wait_for_shutdown()
        lifespan_nursery.cancel_scope.cancel()
