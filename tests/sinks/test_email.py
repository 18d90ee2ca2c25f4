"""engine/sinks/email.py against a real SMTP server (aiosmtpd, started here on 127.0.0.1).

The sink is driven directly, as the delivery loop drives it: inside ``trio_asyncio.open_loop()``
and the sink's own ``open()``, one ``deliver`` per notification.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
import trio_asyncio

from engine.errors import ConfigError, DeliveryFailed, DeliveryRefused, SinkUnavailable
from engine.model import Destination, Notification
from engine.plugins.registry import load_registry
from engine.plugins.text import text_body
from engine.sinks.email import EmailSink, check_address, html_body

HOSTILE = "<img src=x onerror=alert(1)>"
DATA: dict[str, object] = {
    "alert_id": "42",
    "name": HOSTILE,
    "username": "alice & bob",
    "email": "alice@Example.COM",
    "exchange": "binance",
    "symbol": "BTCUSDT",
    "direction": "above",
    "target_price": "70000",
    "triggered_price": "70000.00",
    "created_at": "2026-11-25T16:00:00+00:00",
    "triggered_at": "2026-11-25T17:00:00.123+00:00",
}
SUBJECT = "BTCUSDT rose to 70,000.00 (above 70,000)"


def note(id: int = 7, **changes: Any) -> Notification:
    fields: dict[str, Any] = {"id": id, "alert_id": 42, "channel": "email", "data": dict(DATA)}
    fields.update(changes)
    return Notification(**fields)


def sink_for(server_port: int, **options: Any) -> EmailSink:
    config = {
        "host": "127.0.0.1",
        "port": server_port,
        "sender": "alerts@triggerbook.test",
        "helo_name": "client.test",
        "timeout_s": 5.0,
        **options,
    }
    return EmailSink(config)


@asynccontextmanager
async def opened(sink: EmailSink) -> AsyncIterator[EmailSink]:
    async with trio_asyncio.open_loop(), sink.open():
        yield sink


# --- the mail ---------------------------------------------------------------------------------


async def test_the_mail_has_its_headers_and_both_parts_with_user_text_escaped(mail_server):
    with trio.fail_after(10):
        server = await mail_server()
        async with opened(sink_for(server.port)) as sink:
            await sink.deliver(note(7))
    [msg] = server.handler.messages
    assert server.handler.envelopes == [("alerts@triggerbook.test", ["alice@example.com"])]
    assert msg["Message-ID"] == "<outbox-7@triggerbook.test>"
    assert msg["Subject"] == SUBJECT
    assert msg["From"] == "alerts@triggerbook.test"
    assert msg["To"] == "alice@example.com"
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg["Date"]
    assert msg.get_content_type() == "multipart/alternative"
    text = msg.get_body(("plain",)).get_content().replace("\r\n", "\n")
    page = msg.get_body(("html",)).get_content()
    assert text == text_body(note(7))  # both parts arrive exactly as written
    assert page.replace("\r\n", "\n") == html_body(note(7))
    assert text.startswith(SUBJECT + "\n")
    for fact in (HOSTILE, "binance", "above 70,000", "70,000.00", "alice & bob", "17:00:00.123"):
        assert fact in text
    assert HOSTILE not in page
    assert "<img" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "alice &amp; bob" in page
    assert "70,000.00" in page


async def test_message_id_is_stable_per_notification_and_takes_the_configured_domain(mail_server):
    with trio.fail_after(10):
        server = await mail_server()
        async with opened(sink_for(server.port, message_id_domain="ids.example")) as sink:
            await sink.deliver(note(9, attempts=0))
            await sink.deliver(note(9, attempts=1))  # a retry of the same outbox row
            await sink.deliver(note(0, event="test", key="test-5-1"))
    ids = [m["Message-ID"] for m in server.handler.messages]
    assert ids == [
        "<outbox-9@ids.example>",
        "<outbox-9@ids.example>",
        "<outbox-test-5-1@ids.example>",
    ]


async def test_a_destination_gets_its_own_address_and_test_and_confirm_mails_read_well(
    mail_server,
):
    extra = Destination(id=3, owner_id=1, kind="email", target="ops@example.org")
    with trio.fail_after(10):
        server = await mail_server()
        async with opened(sink_for(server.port)) as sink:
            await sink.deliver(note(1, destination=extra))
            await sink.deliver(note(0, destination=extra, event="test", key="test-3-1"))
            confirm = {"username": "alice", "code": "492-113", "address": "ops@example.org"}
            await sink.deliver(note(2, destination=extra, event="confirm", data=confirm))
    fire, test, code = server.handler.messages
    assert [m["To"] for m in (fire, test, code)] == ["ops@example.org"] * 3
    assert test["Subject"] == f"[test] {SUBJECT}"
    assert "no alert fired" in test.get_body(("plain",)).get_content()
    assert "no alert fired" in test.get_body(("html",)).get_content()
    assert code["Subject"] == "Your triggerbook confirmation code: 492-113"
    assert "492-113" in code.get_body(("plain",)).get_content()
    assert "492-113" in code.get_body(("html",)).get_content()


async def test_a_non_ascii_address_goes_out_with_smtputf8(mail_server):
    with trio.fail_after(10):
        server = await mail_server()
        async with opened(sink_for(server.port)) as sink:
            await sink.deliver(note(1, data={**DATA, "email": "é@example.com"}))
    [msg] = server.handler.messages
    assert msg["To"] == "é@example.com"


async def test_a_non_ascii_address_is_refused_by_a_server_without_smtputf8(mail_server):
    with trio.fail_after(10):
        server = await mail_server(enable_SMTPUTF8=False)
        async with opened(sink_for(server.port)) as sink:
            with pytest.raises(DeliveryRefused, match="SMTPUTF8"):
                await sink.deliver(note(1, data={**DATA, "email": "é@example.com"}))
            await sink.deliver(note(2))  # the connection is still good
            assert sink.pool is not None and sink.pool.opened == 1
    assert len(server.handler.messages) == 1


async def test_long_lines_dots_and_non_ascii_text_survive_the_trip(mail_server):
    name = "." + "Ünïcödé = ≠ " * 30 + "\n.\r\n.end"
    data = {**DATA, "name": name, "symbol": "ÄÖÜ€", "username": "ana\r\nBcc: eve@example.com"}
    with trio.fail_after(10):
        server = await mail_server()
        async with opened(sink_for(server.port)) as sink:
            await sink.deliver(note(1, data=data))
    [msg] = server.handler.messages
    assert msg["Subject"] == "ÄÖÜ€ rose to 70,000.00 (above 70,000)"
    assert msg["Bcc"] is None
    text = msg.get_body(("plain",)).get_content().replace("\r\n", "\n")
    expected = text_body(note(1, data=data)).replace("\r\n", "\n").replace("\r", "\n")
    assert text == expected


async def test_an_account_without_an_address_is_refused_not_retried(mail_server):
    with trio.fail_after(10):
        server = await mail_server()
        async with opened(sink_for(server.port)) as sink:
            with pytest.raises(DeliveryRefused, match="no email address"):
                await sink.deliver(note(1, data={**DATA, "email": ""}))
            with pytest.raises(DeliveryRefused, match="not deliverable"):
                await sink.deliver(note(1, data={**DATA, "email": "a@b.c\r\nBcc: x@y.z"}))
    assert server.handler.messages == []


# --- TLS and login ----------------------------------------------------------------------------


async def test_starttls_with_a_private_ca_and_login(mail_server, tls_ca):
    with trio.fail_after(10):
        server = await mail_server(starttls=tls_ca.server_context, logins={"bob": "s3cret"})
        sink = sink_for(
            server.port, starttls=True, ca_file=tls_ca.ca_file, username="bob", password="s3cret"
        )
        async with opened(sink):
            await sink.deliver(note(1))
    [session] = server.handler.sessions
    assert server.handler.encrypted == [True]  # the mail went over the upgraded connection
    assert session.authenticated
    assert server.handler.messages[0]["Subject"] == SUBJECT


async def test_an_untrusted_certificate_is_the_operators_problem(mail_server, tls_ca):
    with trio.fail_after(10):
        server = await mail_server(starttls=tls_ca.server_context)
        async with opened(sink_for(server.port, starttls=True)) as sink:
            with pytest.raises(SinkUnavailable, match="not trusted"):
                await sink.deliver(note(1))
        # validate_certs = false: the operator chose to accept it.
        async with opened(sink_for(server.port, starttls=True, validate_certs=False)) as sink:
            await sink.deliver(note(2))
    assert [m["Message-ID"] for m in server.handler.messages] == ["<outbox-2@triggerbook.test>"]


async def test_implicit_tls(mail_server, tls_ca):
    with trio.fail_after(10):
        server = await mail_server(tls=tls_ca.server_context)
        async with opened(sink_for(server.port, tls=True, ca_file=tls_ca.ca_file)) as sink:
            await sink.deliver(note(1))
    assert server.handler.encrypted == [True]
    assert len(server.handler.messages) == 1


async def test_a_refused_login_is_sink_unavailable_and_never_shows_the_password(
    mail_server, tls_ca
):
    with trio.fail_after(10):
        server = await mail_server(starttls=tls_ca.server_context, logins={"bob": "right"})
        sink = sink_for(
            server.port, starttls=True, ca_file=tls_ca.ca_file, username="bob", password="hunter2"
        )
        async with opened(sink):
            with pytest.raises(SinkUnavailable) as caught:
                await sink.deliver(note(1))
    reason = caught.value.reason
    assert "535" in reason and "login refused" in reason
    assert "hunter2" not in reason and "hunter2" not in str(caught.value)
    assert server.handler.messages == []


# --- what each reply means ----------------------------------------------------------------------


async def test_a_550_for_the_recipient_is_dead_with_its_reason_and_the_connection_stays(
    mail_server,
):
    with trio.fail_after(10):
        server = await mail_server(rcpt_reply="550 5.1.1 <alice@example.com>: no such user")
        async with opened(sink_for(server.port)) as sink:
            with pytest.raises(
                DeliveryRefused, match=re.escape("550 5.1.1 <alice@example.com>: no such")
            ):
                await sink.deliver(note(1))
            server.handler.rcpt_reply = None
            await sink.deliver(note(2))
            assert sink.pool is not None and sink.pool.opened == 1  # reused after RSET
    assert len(server.handler.messages) == 1


@pytest.mark.parametrize(
    ("command", "reply"),
    [
        ("rcpt_reply", "450 4.2.1 mailbox busy"),
        ("rcpt_reply", "451 4.3.0 try again later"),
        ("mail_reply", "421 4.3.2 service shutting down"),
        ("mail_reply", "451 4.7.1 greylisted"),
        ("data_reply", "452 4.3.1 insufficient storage"),
    ],
)
async def test_a_4xx_reply_is_retried_later(mail_server, command: str, reply: str):
    with trio.fail_after(10):
        server = await mail_server(**{command: reply})
        async with opened(sink_for(server.port)) as sink:
            with pytest.raises(DeliveryFailed) as caught:
                await sink.deliver(note(1))
    assert type(caught.value) is DeliveryFailed  # neither SinkUnavailable nor refused
    assert reply in caught.value.reason


async def test_a_5xx_for_the_sender_is_sink_unavailable(mail_server):
    with trio.fail_after(10):
        server = await mail_server(mail_reply="553 5.7.1 sender not allowed")
        async with opened(sink_for(server.port)) as sink:
            with pytest.raises(SinkUnavailable, match="sender refused: 553"):
                await sink.deliver(note(1))


async def test_a_5xx_for_the_message_is_dead(mail_server):
    with trio.fail_after(10):
        server = await mail_server(data_reply="554 5.6.0 message looks like spam")
        async with opened(sink_for(server.port)) as sink:
            with pytest.raises(DeliveryRefused, match="message refused: 554"):
                await sink.deliver(note(1))


async def test_the_server_down_is_retried_later():
    with trio.fail_after(10):
        listener = trio.socket.socket()
        await listener.bind(("127.0.0.1", 0))
        port = listener.getsockname()[1]
        listener.close()  # nothing listens there now
        async with opened(sink_for(port)) as sink:
            with pytest.raises(DeliveryFailed) as caught:
                await sink.deliver(note(1))
    assert type(caught.value) is DeliveryFailed
    assert f"127.0.0.1:{port}" in caught.value.reason


async def test_a_server_that_never_answers_times_out_within_timeout_s(silent_port):
    with trio.fail_after(10):
        async with opened(sink_for(silent_port, timeout_s=0.5)) as sink:
            start = trio.current_time()
            with pytest.raises(DeliveryFailed) as caught:
                await sink.deliver(note(1))
            waited = trio.current_time() - start
    assert type(caught.value) is DeliveryFailed
    assert 0.4 <= waited < 2.0
    assert "0.5" in caught.value.reason or "Timed out" in caught.value.reason


async def test_a_delivery_to_a_silent_server_is_cancellable(silent_port):
    with trio.fail_after(10):
        async with opened(sink_for(silent_port, timeout_s=30.0)) as sink:
            start = trio.current_time()
            with trio.move_on_after(0.3) as scope:
                await sink.deliver(note(1))
            assert scope.cancelled_caught
            assert trio.current_time() - start < 2.0


# --- the pool -----------------------------------------------------------------------------------


async def test_200_mails_go_through_a_few_connections_used_in_parallel(mail_server):
    with trio.fail_after(60):
        server = await mail_server(data_delay_s=0.002)
        async with opened(sink_for(server.port, connections=4)) as sink:
            limit = trio.CapacityLimiter(8)  # the delivery loop's ``concurrency``

            async def one(i: int) -> None:
                async with limit:
                    await sink.deliver(note(1000 + i))

            async with trio.open_nursery() as nursery:
                for i in range(200):
                    nursery.start_soon(one, i)
            assert sink.pool is not None
            opened_connections = sink.pool.opened
    handler = server.handler
    assert len(handler.messages) == 200
    assert len({m["Message-ID"] for m in handler.messages}) == 200
    assert 2 <= len(handler.peers) <= 4 < 200
    assert opened_connections == len(handler.peers)
    assert handler.max_in_flight >= 2  # several connections carried mails at once


async def test_idle_connections_are_closed_and_dropped_ones_replaced(mail_server):
    with trio.fail_after(10):
        server = await mail_server()
        async with opened(sink_for(server.port, idle_timeout_s=0.2)) as sink:
            await sink.deliver(note(1))
            await sink.deliver(note(2))  # the same connection
            await trio.sleep(0.5)  # past idle_timeout_s: the pool closed it
            await sink.deliver(note(3))
            assert sink.pool is not None and sink.pool.opened == 2
    assert len(server.handler.peers) == 2
    assert len(server.handler.messages) == 3


async def test_a_connection_the_server_closed_is_not_reused(mail_server):
    with trio.fail_after(10):
        server = await mail_server(timeout=0.3)  # the server drops a client idle 0.3 s
        async with opened(sink_for(server.port, idle_timeout_s=60.0)) as sink:
            await sink.deliver(note(1))
            await trio.sleep(0.8)
            await sink.deliver(note(2))
            assert sink.pool is not None and sink.pool.opened == 2
    assert len(server.handler.messages) == 2


async def test_deliver_needs_the_sink_open():
    with pytest.raises(RuntimeError, match="open"):
        await sink_for(25).deliver(note(1))


# --- targets and options ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("alice@example.com", "alice@example.com"),
        ("  Alice.Smith+alerts@Example.COM ", "Alice.Smith+alerts@example.com"),
        ("é@exämple.de", "é@exämple.de"),
        ("ops@localhost", "ops@localhost"),
    ],
)
def test_check_target_normalises_a_plain_address(given: str, stored: str) -> None:
    assert EmailSink().check_target(given) == stored


@pytest.mark.parametrize(
    ("given", "reason"),
    [
        ("", "empty"),
        ("alice", "exactly one @"),
        ("a@b@c.d", "exactly one @"),
        ("Alice <alice@example.com>", "display name"),
        ('"alice"@example.com', "display name"),
        ("alice@example.com\r\nBcc: eve@example.com", "line break"),
        ("alice@example.com\n", None),  # stripped: a trailing newline alone is harmless
        ("a" * 65 + "@example.com", "at most 64"),
        ("a@" + "b" * 250 + ".com", "at most 254"),
        (".alice@example.com", "dot"),
        ("alice@", "domain"),
        ("@example.com", "name before the @"),
        ("alice@-example.com", "starts or ends with -"),
        ("alice@exa_mple.com", "cannot have"),
        ("alice@example..com", "not a valid domain"),
    ],
)
def test_check_target_refuses_anything_but_one_plain_address(given: str, reason: str | None):
    sink = EmailSink()
    if reason is None:
        assert sink.check_target(given) == "alice@example.com"
        return
    with pytest.raises(ValueError, match=reason):
        sink.check_target(given)
    with pytest.raises(ValueError):
        check_address(given)


def test_email_is_a_builtin_sink_with_its_options() -> None:
    registry = load_registry(entry_points=False)
    assert registry.sinks["email"] is EmailSink
    section = registry.sections()["sinks.email"]
    assert section["enabled"] is False
    assert section["connections"] == 4
    assert section["validate_certs"] is True
    assert section["starttls"] is False and section["tls"] is False
    assert EmailSink.takes_destinations and EmailSink.reaches_account


@pytest.mark.parametrize(
    ("options", "reason"),
    [
        ({"tls": True, "starttls": True}, "choose one"),
        ({"connections": 0}, "at least 1"),
        ({"sender": "Alerts <alerts@example.com>"}, "sender"),
        ({"ca_file": "/nonexistent/ca.pem"}, "ca_file"),
    ],
)
def test_bad_options_are_refused_at_start(options: dict[str, Any], reason: str) -> None:
    with pytest.raises(ConfigError, match=reason):
        EmailSink(options)
