"""The receiving ends of ``bench sinks``: an SMTP server and a webhook receiver, each in processes
of its own, so that their CPU is not the measured process's.

Each receiver runs in ``processes`` spawned processes listening on one port with
``SO_REUSEPORT``: the kernel spreads the client's connections over them, so a receiver that is
the ceiling can be given more cores (``--smtp-receivers``). Each process counts what it accepted;
:meth:`Receivers.cpu_s` sums their CPU time, so that a run can say whether the receiver was
saturated (CPU seconds per wall second near the number of processes).

- ``smtp``: aiosmtpd's ``SMTP`` protocol on a plain asyncio loop, a handler that accepts every
  mail (``250``) without parsing it: the cheapest receiving end aiosmtpd allows;
- ``http``: a minimal HTTP/1.1 server (trio + h11), keep-alive, ``204`` to every request, without
  verifying the signature (the tests do that): the cheapest receiver of the same bodies.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import socket
from typing import Any

import h11
import psutil
import trio

HOST = "127.0.0.1"


# -------------------------------------------------------------------------------------------------
# SMTP (aiosmtpd)
# -------------------------------------------------------------------------------------------------


class _AcceptAll:
    """An aiosmtpd handler that accepts every mail and keeps only a count."""

    def __init__(self) -> None:
        self.accepted = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.accepted += 1
        return "250 2.0.0 accepted"


async def _smtp_serve(pipe: Any, port: int) -> None:
    from aiosmtpd.smtp import SMTP

    handler = _AcceptAll()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(handler, hostname="bench.local", ident="bench"),
        host=HOST,
        port=port,
        reuse_port=True,
    )
    pipe.send(server.sockets[0].getsockname()[1])
    await loop.run_in_executor(None, pipe.recv)  # any message (or EOF): stop
    server.close()


def _smtp_process(pipe: Any, port: int) -> None:
    with plain_asyncio() as runner:
        runner.run(_smtp_serve(pipe, port))


def plain_asyncio() -> asyncio.Runner:
    """A runner on a plain selector loop: importing trio_asyncio (the engine does) installs its
    own event loop policy, under which ``asyncio.run`` would run on a trio-asyncio loop."""
    return asyncio.Runner(loop_factory=asyncio.SelectorEventLoop)


# -------------------------------------------------------------------------------------------------
# HTTP (trio + h11)
# -------------------------------------------------------------------------------------------------


_REPLY = (h11.Response(status_code=204, headers=[("content-length", "0")]), h11.EndOfMessage())


async def _http_connection(stream: trio.SocketStream) -> None:
    conn = h11.Connection(h11.SERVER)
    try:
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await stream.receive_some(65536)
                conn.receive_data(data)
                if not data:
                    return
            elif isinstance(event, h11.EndOfMessage):
                await stream.send_all(b"".join(conn.send(e) or b"" for e in _REPLY))
                conn.start_next_cycle()
            elif isinstance(event, h11.ConnectionClosed):
                return
    except (trio.BrokenResourceError, trio.ClosedResourceError, h11.ProtocolError):
        return
    finally:
        await stream.aclose()


async def _http_serve(pipe: Any, port: int) -> None:
    sock = trio.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    await sock.bind((HOST, port))
    sock.listen(1024)
    pipe.send(sock.getsockname()[1])
    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.serve_listeners, _http_connection, [trio.SocketListener(sock)])
        await trio.to_thread.run_sync(pipe.recv)  # any message (or EOF): stop
        nursery.cancel_scope.cancel()


def _http_process(pipe: Any, port: int) -> None:
    trio.run(_http_serve, pipe, port)


# -------------------------------------------------------------------------------------------------
# the processes
# -------------------------------------------------------------------------------------------------


_TARGETS = {"smtp": _smtp_process, "http": _http_process}


class Receivers:
    """``processes`` receivers of ``kind`` (``smtp`` or ``http``) on one port of 127.0.0.1;
    ``port`` once entered; stopped on exit."""

    def __init__(self, kind: str, processes: int = 1) -> None:
        self.kind = kind
        self.count = max(1, processes)
        self.port = 0
        self._ctx = multiprocessing.get_context("spawn")
        self._procs: list[tuple[Any, Any]] = []

    def __enter__(self) -> Receivers:
        for _ in range(self.count):
            parent, child = self._ctx.Pipe()
            proc = self._ctx.Process(
                target=_TARGETS[self.kind], args=(child, self.port), daemon=True
            )
            proc.start()
            self.port = parent.recv()
            self._procs.append((proc, parent))
        return self

    def cpu_s(self) -> float:
        """CPU seconds used so far by every receiver process."""
        total = 0.0
        for proc, _ in self._procs:
            try:
                times = psutil.Process(proc.pid).cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += times.user + times.system
        return total

    def __exit__(self, *exc: object) -> None:
        for _, parent in self._procs:
            with contextlib.suppress(BrokenPipeError, OSError):
                parent.send("stop")
        for proc, _ in self._procs:
            proc.join(3)
            if proc.is_alive():
                proc.terminate()
                proc.join(3)
