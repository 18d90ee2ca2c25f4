"""Servers that sinks deliver to, started by the tests themselves.

``mail_server`` (per test): an async factory of real aiosmtpd servers on 127.0.0.1, each on a
port of its own and in a thread of its own (its own asyncio loop, apart from the trio-asyncio
loop of the sink under test); every server it started is stopped after the test::

    server = await mail_server()                                   # plain SMTP
    server = await mail_server(starttls=tls_ca.server_context, logins={"bob": "pw"})
    server = await mail_server(tls=tls_ca.server_context)          # implicit TLS
    server = await mail_server(rcpt_reply="550 5.1.1 no such user")
    server.handler.messages                                        # what it received

``server.handler`` is a ``MailRecorder``: it keeps every mail as an ``EmailMessage``, counts
the connections that sent mail and the mails in flight at once, and answers MAIL, RCPT or DATA
with the reply a test chose, if any. Other keywords go to aiosmtpd's ``SMTP`` (``timeout=0.3``:
the server drops a connection idle that long).

``tls_ca`` (session): a private CA (trustme) and a server certificate for 127.0.0.1 and
localhost signed by it; ``tls_ca.ca_file`` is the CA's PEM, for a client's ``ca_file``.

``silent_port`` (per test): the port of a TCP server on 127.0.0.1 that accepts connections and
never says a word, run in the test's nursery.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import ssl
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import trio
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session


class MailRecorder:
    """An aiosmtpd handler that records what it is sent.

    ``messages``: every mail accepted, parsed. ``envelopes``: (MAIL FROM, RCPT TOs) of each.
    ``peers``: one (host, port) per client connection that sent a MAIL command, so
    ``len(peers)`` is the number of connections used. ``max_in_flight``: the most DATA
    commands being handled at once (several connections used in parallel); ``data_delay_s``
    holds each DATA that long so that overlaps show. ``sessions``: each accepted mail's
    session (``.authenticated``); ``encrypted``: whether each came over TLS (implicit or
    STARTTLS). A ``*_reply`` answers that command instead of
    accepting it.
    """

    def __init__(
        self,
        *,
        mail_reply: str | None = None,
        rcpt_reply: str | None = None,
        data_reply: str | None = None,
        data_delay_s: float = 0.0,
    ) -> None:
        self.mail_reply = mail_reply
        self.rcpt_reply = rcpt_reply
        self.data_reply = data_reply
        self.data_delay_s = data_delay_s
        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.sessions: list[Session] = []
        self.encrypted: list[bool] = []
        self.peers: set[Any] = set()
        self.in_flight = 0
        self.max_in_flight = 0

    async def handle_MAIL(
        self, server: Any, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        self.peers.add(session.peer)
        if self.mail_reply:
            return self.mail_reply
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: Any, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if self.rcpt_reply:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.data_delay_s:
                await asyncio.sleep(self.data_delay_s)
        finally:
            self.in_flight -= 1
        if self.data_reply:
            return self.data_reply
        raw = envelope.original_content or b""
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(parsed)
        self.envelopes.append((str(envelope.mail_from), list(envelope.rcpt_tos)))
        self.sessions.append(session)
        self.encrypted.append(server.transport.get_extra_info("ssl_object") is not None)
        return "250 2.0.0 accepted"


@dataclass
class MailServer:
    """A running aiosmtpd server: where it listens and its handler."""

    host: str
    port: int
    handler: MailRecorder
    controller: Controller = field(repr=False)


class _PortZeroController(Controller):
    """aiosmtpd's threaded controller on a port the system picks (it assumes a fixed one)."""

    def _trigger_server(self) -> None:
        assert self.server is not None
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


def start_smtp(handler: MailRecorder, port: int = 0, **options: Any) -> Controller:
    """A started aiosmtpd server on 127.0.0.1 (``port`` 0: one the system picks, read back into
    ``.port``), in a thread of its own with its own asyncio loop. Blocks while it starts: call
    it from a worker thread in async tests. ``options`` go to aiosmtpd's ``Controller``."""
    controller = _PortZeroController(
        handler, hostname="127.0.0.1", port=port, loop=asyncio.SelectorEventLoop(), **options
    )
    controller.start()
    return controller


@dataclass(frozen=True)
class TlsFiles:
    """A private CA, the PEM of its certificate, and a server context it signed."""

    ca_file: str
    server_context: ssl.SSLContext


@pytest.fixture(scope="session")
def tls_ca() -> Iterator[TlsFiles]:
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    with tempfile.TemporaryDirectory(prefix="triggerbook-ca-") as folder:
        ca_file = Path(folder) / "ca.pem"
        ca.cert_pem.write_to_path(str(ca_file))
        yield TlsFiles(str(ca_file), context)


MailServerFactory = Callable[..., Awaitable[MailServer]]


@pytest.fixture
def mail_server() -> Iterator[MailServerFactory]:
    started: list[Controller] = []

    async def start(
        *,
        tls: ssl.SSLContext | None = None,
        starttls: ssl.SSLContext | None = None,
        logins: dict[str, str] | None = None,
        mail_reply: str | None = None,
        rcpt_reply: str | None = None,
        data_reply: str | None = None,
        data_delay_s: float = 0.0,
        **smtp_options: Any,
    ) -> MailServer:
        """Start a server; ``logins`` (user -> password) makes AUTH required. A refused login
        is answered ``535 ... <the password tried>``, so a test can check a client never
        repeats the server's words with the password in them."""
        handler = MailRecorder(
            mail_reply=mail_reply,
            rcpt_reply=rcpt_reply,
            data_reply=data_reply,
            data_delay_s=data_delay_s,
        )
        if starttls is not None:
            smtp_options.update(tls_context=starttls, require_starttls=True)
        if logins is not None:
            smtp_options.update(
                authenticator=_authenticator(logins),
                auth_required=True,
                auth_require_tls=starttls is not None or tls is not None,
            )

        def begin() -> Controller:
            # In a thread: the server's asyncio loop is its own, not the test's trio-asyncio one.
            controller = start_smtp(
                handler, ssl_context=tls, server_hostname="mail.test", **smtp_options
            )
            started.append(controller)
            return controller

        controller = await trio.to_thread.run_sync(begin)
        return MailServer("127.0.0.1", controller.port, handler, controller)

    yield start
    for controller in started:
        controller.stop()


def _authenticator(logins: dict[str, str]) -> Callable[..., AuthResult]:
    def authenticate(
        server: Any, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        user, password = auth_data.login.decode(), auth_data.password.decode()
        if logins.get(user) == password:
            return AuthResult(success=True)
        return AuthResult(
            success=False, handled=False, message=f"535 5.7.8 bad credentials {password!r}"
        )

    return authenticate


@pytest.fixture
async def silent_port(nursery: trio.Nursery) -> int:
    port: int = await nursery.start(_serve_silence)
    return port


async def _serve_silence(task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
    """Accept connections and hold them open without a word (no SMTP greeting)."""
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    task_status.started(listeners[0].socket.getsockname()[1])
    await trio.serve_listeners(_hold, listeners)


async def _hold(stream: trio.SocketStream) -> None:
    async with stream:
        await trio.sleep_forever()
