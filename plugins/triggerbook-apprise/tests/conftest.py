"""A real HTTP/1.1 server on 127.0.0.1 posing as ntfy (or any JSON receiver), for the tests.

The ``ntfy`` fixture starts one in the test's nursery. Apprise's ``ntfy://127.0.0.1:PORT/topic``
POSTs ``{"topic", "title", "message"}`` to ``/``; its ``json://127.0.0.1:PORT/path`` POSTs
``{"title", "message", "type", ...}`` to the path. Every request is recorded in ``received``
and answered with ``status`` and ``body`` (default: 200 and ntfy's JSON); with ``hang`` set, the
server reads the request and never answers. ``in_flight`` / ``max_in_flight`` count requests
being answered at once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import h11
import pytest
import trio


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict[str, object]:
        parsed = json.loads(self.body)
        assert isinstance(parsed, dict)
        return parsed


@dataclass
class NtfyServer:
    status: int = 200
    body: bytes = b'{"id":"x1","event":"message"}'
    hang: bool = False
    received: list[Received] = field(default_factory=list)
    port: int = 0
    in_flight: int = 0
    max_in_flight: int = 0

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        task_status.started()
        await trio.serve_listeners(self._connection, listeners)

    async def _connection(self, stream: trio.SocketStream) -> None:
        conn = h11.Connection(h11.SERVER)
        try:
            while True:
                request = await self._request(conn, stream)
                if request is None:
                    return
                self.in_flight += 1
                self.max_in_flight = max(self.max_in_flight, self.in_flight)
                try:
                    if self.hang:
                        await trio.sleep_forever()
                    headers = [
                        ("content-type", "application/json"),
                        ("content-length", str(len(self.body))),
                    ]
                    for event in (
                        h11.Response(status_code=self.status, headers=headers),
                        h11.Data(data=self.body),
                        h11.EndOfMessage(),
                    ):
                        await stream.send_all(conn.send(event) or b"")
                finally:
                    self.in_flight -= 1
                if conn.our_state is h11.MUST_CLOSE:
                    return
                conn.start_next_cycle()
        except (trio.BrokenResourceError, trio.ClosedResourceError, h11.RemoteProtocolError):
            return
        finally:
            await stream.aclose()

    async def _request(self, conn: h11.Connection, stream: trio.SocketStream) -> Received | None:
        head: h11.Request | None = None
        body = bytearray()
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await stream.receive_some(65536))
            elif isinstance(event, h11.Request):
                head = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage) and head is not None:
                break
            else:  # the client closed the connection between requests
                return None
        headers = {k.decode(): v.decode() for k, v in head.headers}
        received = Received(head.method.decode(), head.target.decode(), headers, bytes(body))
        self.received.append(received)
        return received


@pytest.fixture
async def ntfy(nursery: trio.Nursery) -> NtfyServer:
    """A server posing as ntfy on 127.0.0.1, running until the test ends."""
    server = NtfyServer()
    await nursery.start(server.serve)
    return server
