"""A local Standard Webhooks receiver that prints what it is sent: ``triggerbook webhooks listen``.

For operators and newcomers who want to watch notifications arrive on one machine: point a
webhook destination at it (the engine delivers to 127.0.0.1 only with ``[sinks.webhook]
allow_private = true``) and each request shows up on stdout as one block::

    --- POST /hook from 127.0.0.1:50412 at 2026-11-25T18:40:12.345+00:00
    webhook-id:        7
    webhook-timestamp: 1764095999 (13 s old)
    signature:         verified
    answered:          204
    {
      "type": "alert.fired",
      ...
    }

With the destination's secret (the ``whsec_...`` shown once when it was created) every request
is verified as the webhook sink signs it (``engine.sinks.webhook.sign``): any of the
space-separated ``v1,`` signatures may match (compared with ``hmac.compare_digest``), and a
``webhook-timestamp`` more than 5 minutes away from now is refused, as the specification asks.
A request that fails verification is answered 401 with the reason, so the sink marks the
notification dead with that reason. Every other request is answered ``status`` (default 204;
500 shows the sink's retries).

Bounds, so that a stray client cannot hold it: a request head over 64 KiB is answered 431 and
a body over 1 MiB 413 (then the connection closes); a request not read within ``timeout_s``
is answered 408, and a kept-alive connection idle that long is closed. HTTP/1.1 through h11
(httpcore's own parser) on Trio: nothing blocks but the print of each block.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

import h11
import msgspec
import trio

from engine.errors import DeliveryRefused
from engine.sinks.webhook import secret_key, sign

HEAD_MAX = 64 * 1024
BODY_MAX = 1024 * 1024
TIMEOUT_S = 10.0
TOLERANCE_S = 5 * 60  # the specification's window around webhook-timestamp
REFUSED = 401  # a request that fails verification
DRAIN_MAX = 4 * BODY_MAX  # after an early 413, read and drop this much so the client sees it
DRAIN_S = 1.0
RECEIVE_BYTES = 65536
TEXT_SHOWN = 4000  # characters of a body that is not JSON
SIGNED_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")


def key_of(secret: str) -> bytes:
    """The HMAC key of a ``whsec_...`` secret, as the sink derives it; ``ValueError`` when the
    secret is malformed (the message never shows it)."""
    try:
        return secret_key(secret)
    except DeliveryRefused as exc:
        raise ValueError(f"not a whsec_... signing secret: {exc}") from None


# ---------------------------------------------------------------- the pure parts


@dataclass(frozen=True)
class Verdict:
    """What verification made of one request: ``ok``, and a line saying why."""

    ok: bool
    text: str


def verify(key: bytes, headers: Mapping[str, str], body: bytes, now: float) -> Verdict:
    """Check one request's Standard Webhooks headers against ``key`` at time ``now``.

    Refused: a missing header, a timestamp that is not an integer or is more than
    :data:`TOLERANCE_S` away from ``now``, or no ``v1,`` signature that matches.
    """
    missing = [name for name in SIGNED_HEADERS if not headers.get(name)]
    if missing:
        return Verdict(False, f"refused: no {', '.join(missing)} header")
    stamp = headers["webhook-timestamp"].strip()
    if not (stamp.isascii() and stamp.isdigit()):
        return Verdict(False, "refused: webhook-timestamp is not an integer")
    timestamp = int(stamp)
    expected = sign(key, headers["webhook-id"], timestamp, body)["webhook-signature"].encode()
    signed = any(
        hmac.compare_digest(candidate.encode("latin-1"), expected)
        for candidate in headers["webhook-signature"].split()
    )
    skew = now - timestamp
    if abs(skew) > TOLERANCE_S:
        itself = "verifies" if signed else "does not verify either"
        return Verdict(
            False,
            f"refused: webhook-timestamp is {_age(skew)} (more than {TOLERANCE_S} s off); "
            f"the signature itself {itself}",
        )
    if not signed:
        return Verdict(
            False, "refused: the signature does not verify (another secret, or a changed body)"
        )
    return Verdict(True, "verified")


def render(
    method: str,
    target: str,
    peer: str,
    headers: Mapping[str, str],
    body: bytes | None,
    check: str,
    status: int,
    arrived: float,
) -> str:
    """The block printed for one request (``body`` None: it was not read)."""
    when = datetime.fromtimestamp(arrived, UTC).isoformat(timespec="milliseconds")
    lines = [
        f"--- {method} {target} from {peer} at {when}",
        f"webhook-id:        {headers.get('webhook-id', '(none)')}",
        f"webhook-timestamp: {_stamp(headers.get('webhook-timestamp'), arrived)}",
        f"signature:         {check}",
        f"answered:          {status}",
    ]
    if body is not None:
        lines.append(_body(body))
    return "\n".join(lines) + "\n"


def _stamp(value: str | None, arrived: float) -> str:
    if value is None:
        return "(none)"
    text = value.strip()
    if not (text.isascii() and text.isdigit()):
        return f"{value} (not an integer)"
    return f"{text} ({_age(arrived - int(text))})"


def _age(skew: float) -> str:
    seconds = round(abs(skew))
    return f"{seconds} s old" if skew >= 0 else f"{seconds} s in the future"


def _body(body: bytes) -> str:
    if not body:
        return "(no body)"
    try:
        return msgspec.json.format(body, indent=2).decode("utf-8", "replace")
    except msgspec.DecodeError:
        text = body.decode("utf-8", "replace")
        more = f"\n... ({len(text) - TEXT_SHOWN} more characters)" if len(text) > TEXT_SHOWN else ""
        return f"body ({len(body)} bytes, not JSON):\n{text[:TEXT_SHOWN]}{more}"


# ---------------------------------------------------------------- the server


class _TooLarge(Exception):
    """The request's body goes over the cap (raised while reading, answered 413)."""

    def __init__(self, head: h11.Request) -> None:
        super().__init__()
        self.head = head


@dataclass(frozen=True)
class _Request:
    head: h11.Request
    body: bytes

    @property
    def headers(self) -> dict[str, str]:
        return _headers(self.head)


@dataclass(frozen=True)
class Listener:
    """Answers each request with ``status`` (or a refusal) and hands its block to ``out``.

    ``key`` (from :func:`key_of`) turns verification on. ``out`` is called once per request
    with the block (:func:`render`), from the Trio thread: keep it quick (a print).
    """

    key: bytes | None = None
    status: int = 204
    out: Callable[[str], None] = print
    body_max: int = BODY_MAX
    head_max: int = HEAD_MAX
    timeout_s: float = TIMEOUT_S
    clock: Callable[[], float] = field(default=time.time, repr=False)

    async def serve(
        self,
        listeners: list[trio.SocketListener],
        *,
        task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Serve ``listeners`` until cancelled; ``started`` with the first one's URL."""
        host, port = listeners[0].socket.getsockname()[:2]
        task_status.started(f"http://{f'[{host}]' if ':' in host else host}:{port}/")
        await trio.serve_listeners(self._connection, listeners)

    async def _connection(self, stream: trio.SocketStream) -> None:
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=self.head_max)
        host, port = stream.socket.getpeername()[:2]
        peer = f"{host}:{port}"
        try:
            while await self._exchange(conn, stream, peer):
                conn.start_next_cycle()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            await stream.aclose()

    async def _exchange(self, conn: h11.Connection, stream: trio.SocketStream, peer: str) -> bool:
        """Read one request and answer it; whether the connection may carry another."""
        request: _Request | None = None
        with trio.move_on_after(self.timeout_s):
            try:
                request = await self._read(conn, stream)
            except h11.RemoteProtocolError as exc:
                status = exc.error_status_hint
                self.out(f"--- from {peer}: a malformed request ({exc}); answered {status}\n")
                await self._answer(conn, stream, status, str(exc), close=True)
                return False
            except _TooLarge as too_large:
                await self._too_large(conn, stream, peer, too_large.head)
                return False
            if request is None:  # the client closed the connection
                return False
        if request is None:  # the timeout: 408 if a request had begun, else an idle close
            if conn.their_state is h11.SEND_BODY or conn.trailing_data[0]:
                self.out(f"--- from {peer}: request not read within {self.timeout_s:g} s; 408\n")
                with trio.move_on_after(self.timeout_s):
                    await self._answer(conn, stream, 408, "request timeout", close=True)
            return False
        return await self._reply(conn, stream, peer, request)

    async def _read(self, conn: h11.Connection, stream: trio.SocketStream) -> _Request | None:
        head: h11.Request | None = None
        body = bytearray()
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await stream.receive_some(RECEIVE_BYTES)
                if not data and (head is not None or conn.trailing_data[0]):
                    return None  # the client went away in the middle of a request
                conn.receive_data(data)
            elif isinstance(event, h11.Request):
                head = event
                length = _headers(head).get("content-length", "")
                if length.isdigit() and int(length) > self.body_max:
                    raise _TooLarge(head)
                if conn.client_is_waiting_for_100_continue:
                    go_on = h11.InformationalResponse(status_code=100)  # curl waits for it
                    await stream.send_all(conn.send(go_on) or b"")
            elif isinstance(event, h11.Data) and head is not None:
                body += event.data
                if len(body) > self.body_max:
                    raise _TooLarge(head)
            elif isinstance(event, h11.EndOfMessage) and head is not None:
                return _Request(head, bytes(body))
            else:  # ConnectionClosed: the client went away between requests
                return None

    async def _reply(
        self, conn: h11.Connection, stream: trio.SocketStream, peer: str, request: _Request
    ) -> bool:
        arrived = self.clock()
        headers = request.headers
        status, reason = self.status, ""
        if self.key is None:
            check = "not checked (no secret given)"
        else:
            verdict = verify(self.key, headers, request.body, arrived)
            check = verdict.text
            if not verdict.ok:
                status, reason = REFUSED, verdict.text
        head = request.head
        self.out(
            render(
                head.method.decode("latin-1"),
                head.target.decode("latin-1"),
                peer,
                headers,
                request.body,
                check,
                status,
                arrived,
            )
        )
        with trio.move_on_after(self.timeout_s):
            await self._answer(conn, stream, status, reason)
            return conn.our_state is not h11.MUST_CLOSE
        return False

    async def _too_large(
        self, conn: h11.Connection, stream: trio.SocketStream, peer: str, head: h11.Request
    ) -> None:
        """Answer 413 and close, after reading (and dropping) what the client is still
        sending, within bounds, so that it reads the answer rather than a reset."""
        reason = f"refused: the body is over {self.body_max} bytes"
        headers = _headers(head)
        method, target = head.method.decode("latin-1"), head.target.decode("latin-1")
        self.out(render(method, target, peer, headers, None, reason, 413, self.clock()))
        await self._answer(conn, stream, 413, reason, close=True)
        dropped = 0
        with trio.move_on_after(DRAIN_S):
            while dropped < DRAIN_MAX and (data := await stream.receive_some(RECEIVE_BYTES)):
                dropped += len(data)

    async def _answer(
        self,
        conn: h11.Connection,
        stream: trio.SocketStream,
        status: int,
        reason: str,
        *,
        close: bool = False,
    ) -> None:
        if conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        body = reason.encode() if status not in (204, 304) else b""
        headers = [("content-type", "text/plain; charset=utf-8")] if body else []
        if status not in (204, 304):
            headers.append(("content-length", str(len(body))))
        if close:
            headers.append(("connection", "close"))
        events: list[h11.Event] = [h11.Response(status_code=status, headers=headers)]
        if body:
            events.append(h11.Data(data=body))
        events.append(h11.EndOfMessage())
        for event in events:
            data = conn.send(event)
            if data:
                await stream.send_all(data)


def _headers(head: h11.Request) -> dict[str, str]:
    """The request's headers by lower-case name (h11 lowers them), as latin-1 text."""
    return {name.decode("latin-1"): value.decode("latin-1") for name, value in head.headers}
