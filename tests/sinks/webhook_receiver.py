"""A real HTTP/1.1 webhook receiver for the tests, on 127.0.0.1, that verifies every request.

Started with ``await nursery.start(receiver.serve)``; each request is recorded with what
``standardwebhooks.Webhook(secret).verify`` made of it (the parsed body, or the exception), and
answered by ``respond`` (default: 204). ``Reply(hang=True)`` reads the request and never answers.
Keep-alive is honoured, so a client's pooled connections are exercised as in production.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import h11
import standardwebhooks
import trio


@dataclass(frozen=True)
class Reply:
    status: int = 204
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    hang: bool = False


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    verified: object = None  # the parsed JSON body, or the WebhookVerificationError
    peer: str = ""


@dataclass
class WebhookReceiver:
    secret: str
    respond: Callable[[Received], Reply] = field(default=lambda _: Reply())
    received: list[Received] = field(default_factory=list)
    port: int = 0

    def url(self, path: str = "/hook", host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

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
                reply = self.respond(request)
                if reply.hang:
                    await trio.sleep_forever()
                headers = [*reply.headers, ("content-length", str(len(reply.body)))]
                for event in (
                    h11.Response(status_code=reply.status, headers=headers),
                    h11.Data(data=reply.body),
                    h11.EndOfMessage(),
                ):
                    await stream.send_all(conn.send(event) or b"")
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
            else:  # ConnectionClosed, or the peer went away between requests
                return None
        headers = {k.decode(): v.decode() for k, v in head.headers}
        received = Received(
            head.method.decode(),
            head.target.decode(),
            headers,
            bytes(body),
            peer=str(stream.socket.getpeername()[0]),
        )
        try:
            received.verified = standardwebhooks.Webhook(self.secret).verify(bytes(body), headers)
        except standardwebhooks.WebhookVerificationError as exc:
            received.verified = exc
        self.received.append(received)
        return received
