"""The email sink: one mail per notification, through the operator's SMTP server.

A fire reaches its owner at the account's own address (``note.destination is None``:
``note.data["email"]``) and at each extra address they confirmed (an ``email`` destination).
The mail says it all in its subject (``BTCUSDT rose to 70,000.00 (above 70,000)``, from
:mod:`engine.plugins.text`) and carries the details twice, as ``multipart/alternative``: a text
part and an HTML part in which every user text (an alert's name, a username) is escaped.

``Message-ID: <outbox-{note.message_id()}@{domain}>`` is the same on every retry of one outbox
row (``domain``: ``message_id_domain``, else the sender's domain), so a receiver that saw the
first try can drop the duplicate of an at-least-once retry.

aiosmtplib runs on the engine's trio-asyncio loop (``trio_asyncio.aio_as_trio``). Connections
are pooled (:class:`SmtpPool`): opened lazily, at most ``connections`` at once, each carrying one
mail at a time, reused for a burst and closed after ``idle_timeout_s`` unused or as soon as the
server drops them.

What a reply means (``deliver`` raises; the delivery loop acts):

- a 4xx reply, a refused, dropped or silent connection: :class:`DeliveryFailed`, retried;
- a 5xx for the recipient (RCPT), or for this message (DATA): :class:`DeliveryRefused`, dead
  with the server's words kept;
- a 5xx for the whole session (greeting, EHLO, STARTTLS, login, MAIL FROM), an untrusted
  certificate, a server without the STARTTLS or AUTH asked for: :class:`SinkUnavailable`,
  retried and shown on ``/readyz`` (the operator's problem).

No reason ever holds the password: the server's words are scrubbed of it.
"""

from __future__ import annotations

import binascii
import html
import logging
import os
import re
import secrets
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from email.header import Header
from email.utils import formatdate
from typing import Any, ClassVar

import aiosmtplib
import trio
import trio_asyncio

from engine.errors import ConfigError, DeliveryFailed, DeliveryRefused, SinkUnavailable
from engine.model import Notification
from engine.plugins import Sink, hookimpl
from engine.plugins.text import details, subject, text_body

log = logging.getLogger(__name__)

MAX_ADDRESS = 254  # RFC 5321's path limit less the angle brackets
MAX_LOCAL_PART = 64
# RFC 5322 atext: what a dot-atom local part may hold besides letters and digits.
_ATEXT = frozenset("!#$%&'*+-/=?^_`{|}~")
_NOT_ID = re.compile(
    r"[^A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]"
)  # what a Message-ID's left part cannot hold


# --- addresses ------------------------------------------------------------------------------------


def check_address(text: str) -> str:
    """``text`` as one plain address (``name@example.com``), the domain lower-cased; or
    ``ValueError`` with a reason a person can act on.

    Plain means: one ``@``, no display name, no quoting, no comment, no line break, at most 254
    characters, a dot-atom local part of at most 64 (non-ASCII letters allowed: SMTPUTF8) and a
    domain of dot-separated labels. Surrounding spaces are dropped.
    """
    if not isinstance(text, str):
        raise ValueError("an email address must be a string")
    address = text.strip()
    if not address:
        raise ValueError("an email address must not be empty")
    if len(address) > MAX_ADDRESS:
        raise ValueError(f"an email address has at most {MAX_ADDRESS} characters")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in address):
        raise ValueError("an email address holds no line break or control character")
    if any(ch.isspace() or ch in '<>",;:()[]\\' for ch in address):
        raise ValueError(
            "give one plain address such as name@example.com, without a display name, "
            "quotes or brackets"
        )
    if address.count("@") != 1:
        raise ValueError("an email address has exactly one @, as in name@example.com")
    local, domain = address.split("@")
    _check_local_part(local)
    return f"{local}@{_check_domain(domain)}"


def _check_local_part(local: str) -> None:
    if not local:
        raise ValueError("an email address needs a name before the @")
    if len(local) > MAX_LOCAL_PART:
        raise ValueError(f"the part before the @ has at most {MAX_LOCAL_PART} characters")
    if local.startswith(".") or local.endswith(".") or ".." in local:
        raise ValueError("the part before the @ cannot start or end with a dot, or hold two")
    if not all(ch.isalnum() or ch in _ATEXT or ch == "." or ord(ch) > 127 for ch in local):
        raise ValueError("the part before the @ holds a character an address cannot have")


def _check_domain(domain: str) -> str:
    domain = domain.lower()
    if not domain:
        raise ValueError("an email address needs a domain after the @")
    for label in domain.split("."):
        if not label or len(label) > 63:
            raise ValueError(f"the domain {domain!r} is not a valid domain name")
        if label.startswith("-") or label.endswith("-"):
            raise ValueError(f"the domain {domain!r} has a label that starts or ends with -")
        if not all(ch.isalnum() or ch == "-" or ord(ch) > 127 for ch in label):
            raise ValueError(f"the domain {domain!r} holds a character a domain cannot have")
    return domain


# --- the message ----------------------------------------------------------------------------------


def message_id(note: Notification, domain: str) -> str:
    """The mail's stable ``Message-ID``: the same for every try of one notification."""
    return f"<outbox-{_NOT_ID.sub('-', note.message_id())}@{domain}>"


def compose(note: Notification, *, sender: str, recipient: str, domain: str) -> bytes:
    """The mail for ``note`` as the bytes of DATA: headers, then a text part and an HTML part
    (``multipart/alternative``), each UTF-8 in quoted-printable (7-bit and readable raw).

    Written out directly rather than through ``email.message.EmailMessage``, whose header
    objects cost some 5 ms a mail of the Trio thread (measured; the stdlib parser reads every
    mail of the tests back). The addresses are checked ones (no line break can reach a
    header); the subject's whitespace is collapsed and RFC 2047-encoded when not ASCII.
    ``Auto-Submitted: auto-generated`` (RFC 3834) keeps vacation responders from answering.
    """
    boundary = f"=_triggerbook_{secrets.token_hex(12)}"
    head = (
        f"From: {sender}\r\n"
        f"To: {recipient}\r\n"
        f"Subject: {_header_text(subject(note))}\r\n"
        f"Date: {formatdate(usegmt=True)}\r\n"
        f"Message-ID: {message_id(note, domain)}\r\n"
        "Auto-Submitted: auto-generated\r\n"
        "MIME-Version: 1.0\r\n"
        f'Content-Type: multipart/alternative; boundary="{boundary}"\r\n'
        "\r\n"
    )
    return b"".join(
        (
            head.encode(),
            _part("text/plain", text_body(note), boundary),
            _part("text/html", html_body(note), boundary),
            f"--{boundary}--\r\n".encode(),
        )
    )


def _header_text(text: str) -> str:
    text = " ".join(text.split())  # no line break, tab or run of spaces survives
    return text if text.isascii() else Header(text, "utf-8").encode(linesep="\r\n")


def _part(content_type: str, text: str, boundary: str) -> bytes:
    plain = text.replace("\r\n", "\n").replace("\r", "\n").encode()
    body = binascii.b2a_qp(plain, istext=True).replace(b"\n", b"\r\n")
    head = (
        f"--{boundary}\r\n"
        f'Content-Type: {content_type}; charset="utf-8"\r\n'
        "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
    )
    return head.encode() + body + b"\r\n"  # that CRLF belongs to the next boundary


_INTRO = {
    "fire": "Your alert fired.",
    "test": "This is a test notification: no alert fired. Your alerts will arrive like this.",
    "confirm": (
        "Enter this code in triggerbook to confirm that alerts may be sent to this address. "
        "If you did not ask for it, ignore this mail: nothing will be sent here."
    ),
}


def html_body(note: Notification) -> str:
    """The HTML part: the subject as a heading and the details as a table; every user text
    goes through ``html.escape``, so an alert named ``<img src=x onerror=...>`` is just text."""
    esc = html.escape
    rows = "\n".join(
        f'<tr><th align="left" style="padding:2px 12px 2px 0">{esc(label)}</th>'
        f"<td>{esc(value)}</td></tr>"
        for label, value in details(note)
    )
    code = ""
    if note.event == "confirm":
        code = (
            '<p style="font-size:28px;font-family:monospace;letter-spacing:4px">'
            f"{esc(str(note.data.get('code', '')))}</p>\n"
        )
    intro = _INTRO.get(note.event, _INTRO["fire"])
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
        f"<title>{esc(subject(note))}</title></head>\n"
        '<body style="font-family:sans-serif">\n'
        f"<h2>{esc(subject(note))}</h2>\n<p>{esc(intro)}</p>\n{code}"
        f"<table>\n{rows}\n</table>\n"
        '<p style="color:#777;font-size:12px">Sent by triggerbook.</p>\n'
        "</body></html>\n"
    )


def recipient(note: Notification) -> str:
    """Where ``note`` goes: the destination's address, else the one a confirmation is for,
    else the account's own address. ``DeliveryRefused`` when there is none fit to send to."""
    if note.destination is not None:
        raw: object = note.destination.target
    elif note.event == "confirm" and note.data.get("address"):
        raw = note.data["address"]
    else:
        raw = note.data.get("email")
    if not raw:
        raise DeliveryRefused("no email address to send to (the account has none)")
    try:
        return check_address(str(raw))
    except ValueError as exc:
        raise DeliveryRefused(f"the address is not deliverable: {exc}") from None


# --- connections ----------------------------------------------------------------------------------


class _Connection:
    """One open SMTP session and when it was last put back."""

    __slots__ = ("reused", "since", "smtp")

    def __init__(self, smtp: aiosmtplib.SMTP) -> None:
        self.smtp = smtp
        self.since = 0.0
        self.reused = False  # True once taken from the idle list


class SmtpPool:
    """At most ``size`` open SMTP connections, each lent to one delivery at a time.

    Opened lazily: a connection is made when a delivery finds none idle and a slot free, and
    put back after the mail unless the session can no longer be trusted (a timeout, a
    cancellation, a dropped connection). Idle connections are taken last-in first-out, so in a
    quiet spell the oldest ones age out: :meth:`run_reaper` closes each ``idle_s`` after its
    last use. ``opened`` counts the connections made, for tests and metrics.
    """

    def __init__(
        self, connect: Callable[[], Awaitable[aiosmtplib.SMTP]], size: int, idle_s: float
    ) -> None:
        self._connect = connect
        self._slots = trio.Semaphore(size)
        self._idle: list[_Connection] = []
        self._idle_s = idle_s
        self._returned = trio.Event()
        self._closed = False
        self.opened = 0

    @asynccontextmanager
    async def lend(self, *, fresh: bool = False) -> AsyncIterator[_Connection]:
        """A connection for one mail, waiting for a free slot. It goes back to the pool when
        the body returns or raises :class:`_Reply` (the server answered: the session is in
        step); anything else closes it. ``fresh`` skips the idle ones."""
        async with self._slots:
            conn = None if fresh else self._take_idle()
            if conn is None:
                conn = _Connection(await self._connect())
                self.opened += 1
            try:
                yield conn
            except _Reply:
                self._give_back(conn)
                raise
            except BaseException:
                conn.smtp.close()
                raise
            else:
                self._give_back(conn)

    def _take_idle(self) -> _Connection | None:
        while self._idle:
            conn = self._idle.pop()
            if conn.smtp.is_connected:
                conn.reused = True
                return conn
            conn.smtp.close()  # the server dropped it while idle
        return None

    def _give_back(self, conn: _Connection) -> None:
        if self._closed or not conn.smtp.is_connected:
            conn.smtp.close()
            return
        conn.since = trio.current_time()
        self._idle.append(conn)
        self._returned.set()

    async def run_reaper(self) -> None:
        """Close idle connections ``idle_s`` after their last use; runs until cancelled."""
        while True:
            if not self._idle:
                self._returned = trio.Event()
                await self._returned.wait()
                continue
            oldest = self._idle[0]
            if trio.current_time() >= oldest.since + self._idle_s:
                self._idle.pop(0)
                await _quit(oldest.smtp)
            else:
                await trio.sleep_until(oldest.since + self._idle_s)

    async def aclose(self) -> None:
        """Say QUIT on every idle connection (at most a second, even when cancelled)."""
        self._closed = True
        idle, self._idle = self._idle, []
        with trio.CancelScope(shield=True), trio.move_on_after(1.0):
            async with trio.open_nursery() as nursery:
                for conn in idle:
                    nursery.start_soon(_quit, conn.smtp)
        for conn in idle:
            conn.smtp.close()


async def _quit(smtp: aiosmtplib.SMTP) -> None:
    try:
        await trio_asyncio.aio_as_trio(smtp.quit)(timeout=1.0)
    except (aiosmtplib.SMTPException, OSError):
        pass  # the server went first: nothing to be polite to
    finally:
        smtp.close()


class _Reply(Exception):
    """A delivery error after a complete SMTP reply: the session is still in step."""

    def __init__(self, error: Exception) -> None:
        self.error = error


# --- the sink -------------------------------------------------------------------------------------


class EmailSink(Sink):
    """Mails each notification through ``[sinks.email]``'s SMTP server; see the module doc."""

    name = "email"
    takes_destinations: ClassVar[bool] = True
    reaches_account: ClassVar[bool] = True
    options: ClassVar[Mapping[str, Any]] = {
        "host": "localhost",
        "port": 25,
        "sender": "alerts@localhost",
        "username": "",
        "password": "",
        "starttls": False,  # upgrade a plain connection with STARTTLS (required when set)
        "tls": False,  # implicit TLS from the first byte (usually port 465)
        "validate_certs": True,
        "ca_file": "",  # a PEM file of the CA that signed the server's certificate
        "connections": 4,  # open SMTP connections at most, each one mail at a time
        "idle_timeout_s": 30.0,  # close a connection unused this long
        "message_id_domain": "",  # empty: the sender's domain
        "helo_name": "",  # empty: this machine's fully qualified name
        # Mail the account's own address only once its owner confirmed it (issue 14); read by
        # whoever queues the rows (FireChannels.confirmed_account), not by the sink itself.
        "confirm_account": False,
    }

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        super().__init__(config)
        cfg = self.config
        if cfg["tls"] and cfg["starttls"]:
            raise ConfigError(
                "[sinks.email] tls and starttls: choose one (465 is tls, 587 starttls)"
            )
        if cfg["connections"] < 1:
            raise ConfigError("[sinks.email] connections must be at least 1")
        if cfg["ca_file"] and not os.path.isfile(cfg["ca_file"]):
            raise ConfigError(f"[sinks.email] ca_file {cfg['ca_file']!r} is not a readable file")
        try:
            self.sender = check_address(cfg["sender"])
        except ValueError as exc:
            raise ConfigError(f"[sinks.email] sender: {exc}") from None
        try:
            self.domain = _check_domain(cfg["message_id_domain"] or self.sender.rsplit("@")[1])
        except ValueError as exc:
            raise ConfigError(f"[sinks.email] message_id_domain: {exc}") from None
        self.pool: SmtpPool | None = None
        self._tls_context: ssl.SSLContext | None = None
        self._helo = cfg["helo_name"]

    # --- targets --------------------------------------------------------------------------------

    def check_target(self, target: str) -> str:
        """One plain address, the domain lower-cased (:func:`check_address`)."""
        return check_address(target)

    # --- lifetime -------------------------------------------------------------------------------

    @asynccontextmanager
    async def open(self) -> AsyncIterator[None]:
        """The connection pool for the engine's lifetime; needs the trio-asyncio loop around.
        Raises :class:`ConfigError` for a ``ca_file`` that is not a CA certificate."""
        cfg = self.config
        if cfg["tls"] or cfg["starttls"]:
            self._tls_context = await trio.to_thread.run_sync(self._build_tls_context)
        if not self._helo:
            self._helo = await trio.to_thread.run_sync(socket.getfqdn)
        pool = SmtpPool(self._connect, cfg["connections"], cfg["idle_timeout_s"])
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(pool.run_reaper)
                self.pool = pool
                try:
                    yield
                finally:
                    self.pool = None
                    nursery.cancel_scope.cancel()
        finally:
            await pool.aclose()

    def _build_tls_context(self) -> ssl.SSLContext:
        cfg = self.config
        try:
            context = ssl.create_default_context(cafile=cfg["ca_file"] or None)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"[sinks.email] ca_file {cfg['ca_file']!r}: {exc}") from None
        if not cfg["validate_certs"]:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    async def _connect(self) -> aiosmtplib.SMTP:
        cfg = self.config
        smtp = aiosmtplib.SMTP(
            hostname=cfg["host"],
            port=cfg["port"],
            username=cfg["username"] or None,
            password=cfg["password"] or None,
            local_hostname=self._helo,
            timeout=cfg["timeout_s"],
            use_tls=cfg["tls"],
            start_tls=bool(cfg["starttls"]),
            tls_context=self._tls_context,
        )
        try:
            await trio_asyncio.aio_as_trio(smtp.connect)()
        except BaseException as exc:
            smtp.close()
            if isinstance(exc, (aiosmtplib.SMTPException, OSError)):
                raise self._session_error(exc) from None
            raise
        log.debug("smtp %s:%s: connection opened", cfg["host"], cfg["port"])
        return smtp

    # --- delivery -------------------------------------------------------------------------------

    async def deliver(self, note: Notification) -> None:
        """Mail ``note``; raises a delivery error as the module doc's table says, and
        :class:`DeliveryFailed` when the whole delivery takes more than ``timeout_s``.

        A connection taken from the pool that the server closed meanwhile (a dropped link, a
        421 "closing") is replaced by a fresh one once. Cancellable at any point; a connection
        interrupted mid-session is closed, never reused.
        """
        pool = self.pool
        if pool is None:
            raise RuntimeError("EmailSink.deliver needs the sink open (async with sink.open())")
        to = recipient(note)
        msg = compose(note, sender=self.sender, recipient=to, domain=self.domain)
        timeout = self.config["timeout_s"]
        with trio.move_on_after(timeout) as scope:
            try:
                await self._send(pool, msg, to, fresh=False)
            except _StaleConnection:
                await self._send(pool, msg, to, fresh=True)
        if scope.cancelled_caught:
            raise DeliveryFailed(f"{self._where()}: no answer within {timeout:g} s")

    async def _send(self, pool: SmtpPool, msg: bytes, to: str, *, fresh: bool) -> None:
        # RFC 6531: an address beyond ASCII needs SMTPUTF8 (aiosmtplib refuses it when the
        # server does not offer it: SMTPNotSupported, a refusal of this recipient).
        options = [] if (to + self.sender).isascii() else ["SMTPUTF8"]
        # timeout=None: deliver's cancel scope is the deadline. aiosmtplib's own per-command
        # timeouts (an asyncio timer each, through the trio-asyncio loop) cost a quarter of
        # the sink's CPU per mail (measured: bench sinks, 1,140 -> 860 us).
        try:
            async with pool.lend(fresh=fresh) as conn:
                try:
                    await trio_asyncio.aio_as_trio(conn.smtp.sendmail)(
                        self.sender, [to], msg, mail_options=options, timeout=None
                    )
                except aiosmtplib.SMTPServerDisconnected as exc:
                    if conn.reused:
                        raise _StaleConnection from None
                    raise self._send_error(exc) from None
                except aiosmtplib.SMTPResponseException as exc:
                    if conn.reused and exc.code == 421:
                        raise _StaleConnection from None
                    raise _Reply(self._send_error(exc)) from None
                except (aiosmtplib.SMTPRecipientsRefused, aiosmtplib.SMTPNotSupported) as exc:
                    raise _Reply(self._send_error(exc)) from None
                except (aiosmtplib.SMTPException, OSError) as exc:
                    raise self._send_error(exc) from None
        except _Reply as reply:
            raise reply.error from None

    # --- what a failure means -------------------------------------------------------------------

    def _where(self) -> str:
        return f"smtp {self.config['host']}:{self.config['port']}"

    def _reason(self, text: str) -> str:
        password = self.config["password"]
        if password:
            text = text.replace(password, "***")
        return f"{self._where()}: {text}"

    def _session_error(self, exc: BaseException) -> DeliveryFailed:
        """An error while connecting, greeting, upgrading to TLS or logging in."""
        if _untrusted_certificate(exc):
            return SinkUnavailable(self._reason(f"the server's certificate is not trusted: {exc}"))
        if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
            return self._by_code(exc, "login refused")
        if isinstance(exc, aiosmtplib.SMTPResponseException):
            return self._by_code(exc, "session refused")
        if isinstance(exc, _NETWORK_ERRORS):
            return DeliveryFailed(self._reason(_describe(exc)))
        # No STARTTLS or AUTH offered, no login method in common: a setting to fix.
        return SinkUnavailable(self._reason(f"cannot open a session: {exc}"))

    def _send_error(self, exc: BaseException) -> DeliveryFailed | DeliveryRefused:
        """An error while sending one mail: MAIL FROM, RCPT TO, DATA."""
        if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
            first = exc.recipients[0]
            reason = self._reason(f"recipient refused: {first.code} {first.message}")
            return DeliveryRefused(reason) if first.code >= 500 else DeliveryFailed(reason)
        if isinstance(exc, aiosmtplib.SMTPDataError):
            reason = self._reason(f"message refused: {exc.code} {exc.message}")
            return DeliveryRefused(reason) if exc.code >= 500 else DeliveryFailed(reason)
        if isinstance(exc, aiosmtplib.SMTPSenderRefused):
            return self._by_code(exc, "sender refused")
        if isinstance(exc, aiosmtplib.SMTPResponseException):
            return self._by_code(exc, "refused")
        if isinstance(exc, aiosmtplib.SMTPNotSupported):  # a non-ASCII address, no SMTPUTF8
            return DeliveryRefused(self._reason(str(exc)))
        return DeliveryFailed(self._reason(_describe(exc)))

    def _by_code(self, exc: aiosmtplib.SMTPResponseException, what: str) -> DeliveryFailed:
        """4xx: try again later; 5xx: the channel itself is refused (the operator's problem)."""
        reason = self._reason(f"{what}: {exc.code} {exc.message}")
        return SinkUnavailable(reason) if exc.code >= 500 else DeliveryFailed(reason)


# A connection that could not be made or was lost: worth another try later.
_NETWORK_ERRORS = (
    aiosmtplib.SMTPTimeoutError,
    aiosmtplib.SMTPServerDisconnected,
    aiosmtplib.SMTPConnectError,
    OSError,
)


class _StaleConnection(Exception):
    """A pooled connection turned out closed before the server took the mail."""


def _untrusted_certificate(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if isinstance(exc, aiosmtplib.SMTPException) else f"{type(exc).__name__}: {text}"


@hookimpl
def triggerbook_sinks() -> list[type[Sink]]:
    return [EmailSink]
