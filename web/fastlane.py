"""The fast lane: the two hottest requests served without Quart's per-request machinery.

Measured under load (benchmarks/api_load.py), Quart's request and app contexts, routing, hooks
and response wrapper cost about as much CPU as hypercorn's HTTP handling itself. ``FastLane`` is
an ASGI wrapper in front of the Quart app that answers the common, well-formed case of
``POST /api/alerts`` and ``GET /api/alerts`` directly, with the same handler code (validation,
the create batcher, the listing) and the same response bytes. Anything else goes to the Quart
app unchanged: every other route, another method, a ``root_path``, a repeated header, a
missing or refused token, a body that is not a small declared-length JSON object, a query
beyond ``page``/``page_size`` digits, and every validation error. A request handed over after
its body was read gets that body replayed, so Quart sees the request exactly as sent and
answers with its usual problem+json. Nothing is written before the hand-over point, so no
request is ever handled twice with effect.

After the write of a create, errors are answered here with the app's own responses
(``error_response``, handed in by ``web.app.create_app``). Every response is counted in
``http_requests`` as the app does.

Every request the app answers goes through an :class:`_Exchange`, which keeps the connection
sound when an answer comes before the body was read (a 405, 404, 401, 413 ...): see there.

A body must arrive whole within ``[http] body_timeout_s`` of the lane starting to read it (as
the app's ``BODY_TIMEOUT`` bounds Quart's read): past it the lane answers 408 itself, with
``Connection: close``, rather than wait for a client that trickles bytes (issue 15).

``enabled=False`` (``WebSettings.fast_lane``) hands every request over: the app alone, behind
the same ``_Exchange``, which is what ``benchmarks/api_load.py`` measures the lane against.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

import trio
from werkzeug.exceptions import RequestTimeout
from werkzeug.sansio.utils import get_current_url, get_host

from engine.errors import ApiError, StoreUnavailable
from web import alert_core as core
from web import validation as v
from web.auth import ACCESS, bearer_token
from web.context import State

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

PATH = "/api/alerts"
JSON = b"application/json"
# The only list queries taken here: page and/or page_size, once each, as plain digits.
SIMPLE_QUERY = re.compile(rb"(?:(?:page|page_size)=[0-9]{1,9})(?:&(?:page|page_size)=[0-9]{1,9})?")
MAX_BASES = 64
ERROR_HOOK = Callable[[BaseException, str, str], Any]
Answer = tuple[int, list[tuple[bytes, bytes]], bytes]  # status, headers, body
# How long an answer given before the body was read waits for the rest of that body.
DRAIN_S = 2.0
CLOSE = (b"connection", b"close")


class _HandOver(Exception):
    """The request is not the common case: let the Quart app answer it."""


class FastLane:
    """ASGI app: the fast lane for the hottest requests, in front of ``app`` (see above)."""

    def __init__(
        self,
        app: ASGIApp,
        state: State,
        error_response: ERROR_HOOK,
        max_body: int,
        drain_s: float = DRAIN_S,
        *,
        enabled: bool = True,
    ) -> None:
        self._app = app
        self._enabled = enabled
        self._drain_s = drain_s
        self._state = state
        self._error_response = error_response
        self._max_body = max_body
        self._body_timeout_s = state.ctx.config.http.body_timeout_s
        self._count = state.ctx.metrics.http_requests.inc
        # werkzeug's base URL per (scheme, Host header, server): 9 us to build, the same for
        # every request of a client. Bounded: the Host header is the client's to choose.
        self._bases: dict[tuple[str, bytes, Any], str] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        method = scope["method"]
        if (
            not self._enabled
            or scope["path"] != PATH
            or scope.get("root_path", "")
            or method not in ("GET", "POST")
        ):
            await self._hand_over(scope, receive, send)
            return
        received: list[Message] = []
        try:
            headers = _headers(scope)
            user_id = self._user(headers)
            if scope["method"] == "GET":
                if b"transfer-encoding" in headers or headers.get(b"content-length", b"0") != b"0":
                    raise _HandOver  # a GET with a body: the app answers it, the body read
                status, headers, body = await self._list(scope, headers, user_id)
            else:
                status, headers, body = await self._create(headers, user_id, receive, received)
        except _HandOver:
            await self._hand_over(scope, _replay(received, receive), send)
            return
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        self._count(method=scope["method"], status=str(status))

    async def _hand_over(self, scope: Scope, receive: Receive, send: Send) -> None:
        exchange = _Exchange(scope, receive, send, self._max_body, self._drain_s)
        await self._app(scope, exchange.receive, exchange.send)

    def _user(self, headers: dict[bytes, bytes]) -> int:
        raw = headers.get(b"authorization")
        if raw is None:
            raise _HandOver
        try:
            return self._state.tokens.verify(bearer_token(raw.decode("latin-1")), ACCESS).user_id
        except ApiError:
            raise _HandOver from None

    async def _list(self, scope: Scope, headers: dict[bytes, bytes], user_id: int) -> Answer:
        raw = scope["query_string"]
        host = headers.get(b"host")
        if host is None or (raw and not SIMPLE_QUERY.fullmatch(raw)):
            raise _HandOver
        pairs = [pair.split("=", 1) for pair in raw.decode("ascii").split("&")] if raw else []
        query = dict(pairs)
        if len(query) != len(pairs):  # a repeated name: the app takes the first, as werkzeug does
            raise _HandOver
        scheme, server = scope["scheme"], scope.get("server")
        key = (scheme, host, server)
        base = self._bases.get(key)
        if base is None:
            # werkzeug's request.base_url, from the same parts of the scope
            base = get_current_url(
                scheme, get_host(scheme, host.decode("latin-1"), server), "", PATH
            )
            if len(self._bases) >= MAX_BASES:
                self._bases.clear()
            self._bases[key] = base
        try:
            payload = await core.alert_page(self._state, user_id, query, base)
        except (ApiError, StoreUnavailable):
            raise _HandOver from None  # the app answers (and logs) it as usual; nothing changed
        return _json(200, self._state.encoder.encode(payload))

    async def _create(
        self, headers: dict[bytes, bytes], user_id: int, receive: Receive, received: list[Message]
    ) -> Answer:
        content_type = headers.get(b"content-type")
        length = headers.get(b"content-length")
        if (
            content_type is None
            or content_type.split(b";", 1)[0].strip().lower() != JSON
            or length is None
            or not length.isdigit()
            or not 0 < int(length) <= self._max_body
        ):
            raise _HandOver
        chunks: list[bytes] = []
        with trio.move_on_after(self._body_timeout_s) as reading:
            while True:
                message = await receive()
                received.append(message)
                if message["type"] != "http.request":
                    raise _HandOver
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    break
        if reading.cancelled_caught:  # nothing written yet: answered as Quart's BODY_TIMEOUT is
            return await self._answer(RequestTimeout(), CLOSE)
        body = b"".join(chunks)
        if len(body) != int(length):
            raise _HandOver
        try:
            fields = self._state.bodies[core.CREATE].clean(v.parse_json_object(body))
            row = await core.parse_create(self._state, user_id, fields)
        except ApiError:
            raise _HandOver from None
        # Past this point the request has an effect: errors are answered here, as the app would.
        try:
            alert = await core.write_create(self._state, row)
        except Exception as error:  # answered (and logged) like the app's handlers, not hidden
            return await self._answer(error)
        return _json(201, self._state.encoder.encode(core.alert_view(alert, self._state)))

    async def _answer(self, error: BaseException, *extra: tuple[bytes, bytes]) -> Answer:
        """The app's answer to ``error`` on ``POST /api/alerts``, plus ``extra`` headers."""
        response = self._error_response(error, "POST", PATH)
        headers = [(k.lower().encode(), val.encode()) for k, val in response.headers.items()]
        return response.status_code, [*headers, *extra], await response.get_data()


def _json(status: int, body: bytes) -> Answer:
    headers = [(b"content-type", JSON), (b"content-length", str(len(body)).encode())]
    return status, headers, body


def _headers(scope: Scope) -> dict[bytes, bytes]:
    """The request headers by lower-case name; a repeated header this lane reads hands over."""
    out: dict[bytes, bytes] = {}
    for name, value in scope["headers"]:
        key = name.lower()
        if key in out and key in (b"authorization", b"content-type", b"content-length", b"host"):
            raise _HandOver
        out[key] = value
    return out


def _replay(received: list[Message], receive: Receive) -> Receive:
    """``receive`` that first gives back the messages the lane already took."""
    pending = list(received)

    async def replayed() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed


class _Exchange:
    """One request the app answers: the body is read to its end before the answer starts.

    Why: an answer given before the body was read (a 405 from routing, a 401, a 415 ...)
    leaves the body on the connection, and hypercorn (h11) can only start the next request
    once the body has ended. Left alone, hypercorn closes the connection from inside the app's
    last ``send``; quart-trio cancels that send as the app ends, so the close never ran and the
    connection hung with the client waiting (issue 12, case 8). So:

    - before the answer starts, the rest of the body is read and dropped, up to the body cap
      and for at most ``drain_s``: the connection stays usable for the next request;
    - a body over the cap (declared or sent), or one that does not arrive in time, gets the
      answer with ``Connection: close``, and the connection closes after it; so does a 408
      (the body did not arrive within ``BODY_TIMEOUT``), at once, without waiting for more;
    - the answer's last message is sent shielded from cancellation, so hypercorn's recycling
      (or closing) of the connection, which runs inside it, always runs to its end.

    Quart reads the body in a task of its own; both readers take ``_lock`` so that each message
    is noted exactly once and the drain never waits for a message Quart already took.
    """

    __slots__ = ("_cap", "_done", "_drain_s", "_lock", "_receive", "_seen", "_send", "_too_big")

    def __init__(
        self, scope: Scope, receive: Receive, send: Send, cap: int, drain_s: float
    ) -> None:
        self._receive = receive
        self._send = send
        self._cap = cap
        self._drain_s = drain_s
        self._lock = trio.Lock()
        self._done = False
        self._seen = 0
        self._too_big = _declared_length(scope) > cap

    async def receive(self) -> Message:
        async with self._lock:
            return self._note(await self._receive())

    def _note(self, message: Message) -> Message:
        if message["type"] == "http.request":
            self._seen += len(message.get("body", b""))
            self._done = not message.get("more_body", False)
        else:  # http.disconnect: nothing more will come
            self._done = True
        return message

    async def _drain(self) -> bool:
        """Read the rest of the body; False when it is over the cap or does not end in time."""
        with trio.move_on_after(self._drain_s):
            while not self._done:
                if self._too_big or self._seen > self._cap:
                    return False
                async with self._lock:
                    if not self._done:
                        self._note(await self._receive())
            return self._seen <= self._cap
        return False

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start" and not self._done:
            headers = list(message.get("headers", ()))
            closing = any(k.lower() == b"connection" and b"close" in v.lower() for k, v in headers)
            if not closing and (message["status"] == 408 or not await self._drain()):
                message = {**message, "headers": [*headers, CLOSE]}
        if kind == "http.response.body" and not message.get("more_body", False):
            with trio.CancelScope(shield=True):
                await self._send(message)
            return
        await self._send(message)


def _declared_length(scope: Scope) -> int:
    """The request's Content-Length (0 when absent; h11 has already refused a malformed one)."""
    for name, value in scope["headers"]:
        if name.lower() == b"content-length":
            return int(value) if value.isdigit() else 0
    return 0
