"""Notifications through the whole engine, with real parts: the engine as ``run_engine`` (and as
``triggerbook run`` in a child process that is killed), the local Binance server of the feed
tests, a real SMTP server (aiosmtpd) and a real webhook receiver that verifies signatures.

Each test fires alerts with a trade frame and watches what reaches the servers: at least once,
never twice when nothing failed, never lost across an outage or a ``kill -9``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
import trio

from engine.app import Engine, run_engine
from engine.config import Config
from engine.feeds.testing import ExchangeServer, read_binance_request, serve_exchange
from engine.plugins.registry import load_registry
from engine.store.outbox import NotificationState
from tests.sinks.conftest import MailRecorder, MailServerFactory, start_smtp
from tests.sinks.webhook_receiver import Reply, WebhookReceiver
from tests.test_end_to_end import login, trade

SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # 24 bytes of base64: a valid key


@pytest.fixture
async def database(fresh_database: Callable[[], Awaitable[str]]) -> str:
    return await fresh_database()


def free_port() -> int:
    """A port nothing listens on (bound then released: good enough on loopback)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_config(
    tmp_path: Path, database: str, server: ExchangeServer, sinks: str, http_port: int = 0
) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(
        f'[http]\nport = {http_port}\n[database]\nurl = "{database}"\n'
        f'data_dir = "{tmp_path / "pg"}"\n[auth]\nsecret = "{"s" * 48}"\n'
        f'[feeds.binance]\nurl = "{server.url}"\n'
        "[delivery]\nretry_base_s = 0.05\nretry_cap_s = 0.3\n" + sinks
    )
    return path


def load(path: Path) -> Config:
    return load_registry().load_config(path, environ={})


def email_table(port: int, **extra: object) -> str:
    keys: dict[str, object] = {
        "enabled": "true",
        "host": '"127.0.0.1"',
        "port": port,
        "sender": '"alerts@triggerbook.test"',
        "timeout_s": 2.0,
        "helo_name": '"engine.test"',
        **extra,
    }
    return "[sinks.email]\n" + "".join(f"{key} = {value}\n" for key, value in keys.items())


WEBHOOK_TABLE = "[sinks.webhook]\nenabled = true\nallow_private = true\ntimeout_s = 2.0\n"


async def notes_of(engine: Engine, alert_id: int) -> list[NotificationState]:
    return (await engine.parts.store.outbox.notifications_of([alert_id])).get(alert_id, [])


async def until_notes(
    engine: Engine, alert_id: int, condition: Callable[[list[NotificationState]], bool]
) -> list[NotificationState]:
    while True:
        notes = await notes_of(engine, alert_id)
        if notes and condition(notes):
            return notes
        await trio.sleep(0.02)


async def until(condition: Callable[[], bool]) -> None:
    while not condition():  # noqa: ASYNC110  (another thread's state)
        await trio.sleep(0.02)


async def create_alert(client: httpx.AsyncClient, headers: dict[str, str], target: str) -> int:
    body = {"symbol": "BTCUSDT", "target_price": target, "direction": "above", "name": "moon"}
    response = await client.post("/api/alerts", headers=headers, json=body)
    assert response.status_code == 201, response.text
    return response.json()["id"]


async def add_webhook(engine: Engine, username: str, url: str) -> int:
    """A confirmed webhook destination of ``username`` (the store's own row)."""

    async def insert(con):
        return await con.fetchval(
            "INSERT INTO destinations (owner_id, kind, target, secret, confirmed_at) "
            "SELECT id, 'webhook', $2, $3, now() FROM users WHERE username = $1 RETURNING id",
            username,
            url,
            SECRET,
        )

    return await engine.parts.store.bridge.run(insert)


async def fire(server: ExchangeServer, price: str, trade_id: int) -> None:
    await server.wait_until(lambda: "BTCUSDT" in server.subscribed())
    await server.send_for("BTCUSDT", trade("BTCUSDT", price, trade_id))


async def test_smtp_down_at_the_fire_and_up_later_delivers_once(
    tmp_path: Path, database: str
) -> None:
    port = free_port()
    handler = MailRecorder()
    controller = None
    try:
        with trio.fail_after(40):
            async with serve_exchange(read_binance_request) as server:
                config = load(write_config(tmp_path, database, server, email_table(port)))
                async with trio.open_nursery() as nursery:
                    engine: Engine = await nursery.start(run_engine, config, load_registry())
                    base = f"http://127.0.0.1:{engine.http_port}"
                    async with httpx.AsyncClient(base_url=base) as client:
                        headers = await login(client, "alice")
                        alert_id = await create_alert(client, headers, "70000")
                    await fire(server, "70001.5", 1)
                    failed = await until_notes(
                        engine, alert_id, lambda ns: any(n.attempts >= 2 for n in ns)
                    )
                    (email,) = [n for n in failed if n.channel == "email"]
                    assert email.state == "pending" and email.last_error
                    controller = await trio.to_thread.run_sync(start_smtp, handler, port)
                    notes = await until_notes(
                        engine,
                        alert_id,
                        lambda ns: all(n.state == "delivered" for n in ns),
                    )
                    await trio.sleep(0.3)  # a second copy would have arrived by now
                    nursery.cancel_scope.cancel()
    finally:
        if controller is not None:
            controller.stop()
    assert len(handler.messages) == 1
    (mail,) = handler.messages
    (email,) = [n for n in notes if n.channel == "email"]
    assert mail["Message-ID"] == f"<outbox-{email.id}@triggerbook.test>"
    assert mail["To"] == "alice@example.com"
    assert mail["Subject"] == "BTCUSDT rose to 70,001.5 (above 70,000)"
    assert email.attempts >= 3 and email.last_error is None


async def test_a_webhook_500_then_200_is_delivered_once_with_one_id(
    tmp_path: Path, database: str
) -> None:
    answers = iter([Reply(500), Reply(204)])
    receiver = WebhookReceiver(SECRET, respond=lambda _: next(answers))
    with trio.fail_after(40):
        async with serve_exchange(read_binance_request) as server, trio.open_nursery() as outer:
            await outer.start(receiver.serve)
            config = load(write_config(tmp_path, database, server, WEBHOOK_TABLE))
            async with trio.open_nursery() as nursery:
                engine: Engine = await nursery.start(run_engine, config, load_registry())
                base = f"http://127.0.0.1:{engine.http_port}"
                async with httpx.AsyncClient(base_url=base) as client:
                    headers = await login(client, "alice")
                    hook = await add_webhook(engine, "alice", receiver.url())
                    alert_id = await create_alert(client, headers, "70000")
                await fire(server, "70000", 1)
                notes = await until_notes(
                    engine, alert_id, lambda ns: all(n.state != "pending" for n in ns)
                )
                nursery.cancel_scope.cancel()
            outer.cancel_scope.cancel()
    (webhook,) = [n for n in notes if n.channel == "webhook"]
    assert (webhook.destination_id, webhook.state, webhook.attempts) == (hook, "delivered", 2)
    assert [n.channel for n in notes] == ["console", "webhook"]
    assert len(receiver.received) == 2
    first, second = receiver.received
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == str(webhook.id)
    for request in receiver.received:
        assert isinstance(request.verified, dict), request.verified
        assert request.verified["type"] == "alert.fired"
        assert request.verified["data"]["alert_id"] == alert_id
        assert request.verified["data"]["triggered_price"] == "70000"


async def test_a_thousand_fires_in_one_tick_are_a_thousand_mails_none_twice(
    tmp_path: Path, database: str, mail_server: MailServerFactory
) -> None:
    smtp = await mail_server()
    with trio.fail_after(90):
        async with serve_exchange(read_binance_request) as server:
            table = email_table(smtp.port, connections=4, concurrency=16)
            config = load(write_config(tmp_path, database, server, table))
            async with trio.open_nursery() as nursery:
                engine: Engine = await nursery.start(run_engine, config, load_registry())
                store = engine.parts.store
                owner = await store.create_user("bulk", "bulk@example.com", "h")

                async def copy(con):
                    await con.copy_records_to_table(
                        "alerts",
                        records=[
                            (owner.id, "binance", "BTCUSDT", Decimal(i + 1), "above")
                            for i in range(1000)
                        ],
                        columns=["owner_id", "exchange", "symbol", "target_price", "direction"],
                    )

                await store.bridge.run(copy)
                nursery.cancel_scope.cancel()  # restart: the book loads the thousand alerts
            async with trio.open_nursery() as nursery:
                engine = await nursery.start(run_engine, config, load_registry())
                await fire(server, "5000", 1)
                await until(lambda: len(smtp.handler.messages) >= 1000)
                await trio.sleep(0.5)  # a duplicate would have arrived by now
                backlog = await engine.parts.store.outbox.backlog()
                nursery.cancel_scope.cancel()
    ids = [m["Message-ID"] for m in smtp.handler.messages]
    assert len(ids) == 1000 and len(set(ids)) == 1000
    assert backlog == {}
    assert len(smtp.handler.peers) <= 4 * 3  # connections reused across the burst


async def test_a_permanent_550_is_dead_and_the_engine_unharmed(
    tmp_path: Path, database: str, mail_server: MailServerFactory
) -> None:
    smtp = await mail_server(rcpt_reply="550 5.1.1 no such user here")
    with trio.fail_after(40):
        async with serve_exchange(read_binance_request) as server:
            config = load(write_config(tmp_path, database, server, email_table(smtp.port)))
            async with trio.open_nursery() as nursery:
                engine: Engine = await nursery.start(run_engine, config, load_registry())
                base = f"http://127.0.0.1:{engine.http_port}"
                async with httpx.AsyncClient(base_url=base) as client:
                    headers = await login(client, "alice")
                    first = await create_alert(client, headers, "70000")
                    await fire(server, "70000", 1)
                    notes = await until_notes(
                        engine, first, lambda ns: all(n.state != "pending" for n in ns)
                    )
                    states = {n.channel: (n.state, n.attempts, n.last_error) for n in notes}
                    assert states["console"][0] == "delivered"
                    assert states["email"][:2] == ("dead", 1)
                    assert "550" in states["email"][2]
                    # still matching, still answering
                    second = await create_alert(client, headers, "80000")
                    await fire(server, "80000", 2)
                    await until_notes(engine, second, lambda ns: len(ns) == 2)
                    assert (await client.get("/healthz")).status_code == 200
                nursery.cancel_scope.cancel()


async def test_a_mail_server_that_never_answers_is_timed_out_while_webhooks_flow(
    tmp_path: Path, database: str, silent_port: int
) -> None:
    receiver = WebhookReceiver(SECRET)
    with trio.fail_after(40):
        async with serve_exchange(read_binance_request) as server, trio.open_nursery() as outer:
            await outer.start(receiver.serve)
            sinks = email_table(silent_port, timeout_s=0.5) + WEBHOOK_TABLE
            config = load(write_config(tmp_path, database, server, sinks))
            async with trio.open_nursery() as nursery:
                engine: Engine = await nursery.start(run_engine, config, load_registry())
                base = f"http://127.0.0.1:{engine.http_port}"
                async with httpx.AsyncClient(base_url=base) as client:
                    headers = await login(client, "alice")
                    await add_webhook(engine, "alice", receiver.url())
                    ids = [await create_alert(client, headers, str(70000 + i)) for i in range(5)]
                await fire(server, "71000", 1)
                await until(lambda: len(receiver.received) == 5)
                for alert_id in ids:
                    notes = await until_notes(
                        engine,
                        alert_id,
                        lambda ns: any(n.channel == "email" and n.attempts >= 2 for n in ns),
                    )
                    states = {n.channel: n for n in notes}
                    assert states["webhook"].state == "delivered"
                    assert states["email"].state == "pending"
                    assert "timed out" in (states["email"].last_error or "")
                nursery.cancel_scope.cancel()
            outer.cancel_scope.cancel()


CHILD_READY = b"triggerbook ready on"


async def test_killed_after_the_commit_and_before_delivery_delivers_after_restart_once(
    tmp_path: Path, database: str, mail_server: MailServerFactory, silent_port: int
) -> None:
    """The child engine commits the fire and hangs on a mail server that never answers; it is
    killed with SIGKILL mid-delivery. The next start delivers the mail at once, and once."""
    smtp = await mail_server()
    with trio.fail_after(60):
        async with serve_exchange(read_binance_request) as server:
            http_port = free_port()
            child_sinks = email_table(silent_port, timeout_s=60.0)
            path = write_config(tmp_path, database, server, child_sinks, http_port)
            env = {**os.environ, "PYTHONUNBUFFERED": "1"}
            child = await trio.lowlevel.open_process(
                [sys.executable, "-m", "engine.cli", "run", "--config", str(path)],
                stderr=subprocess.PIPE,
                env=env,
            )
            try:
                assert child.stderr is not None
                seen = b""
                while CHILD_READY not in seen:
                    chunk = await child.stderr.receive_some()
                    assert chunk, f"the child engine exited: {seen.decode(errors='replace')}"
                    seen += chunk
                base = f"http://127.0.0.1:{http_port}"
                async with httpx.AsyncClient(base_url=base) as client:
                    headers = await login(client, "alice")
                    alert_id = await create_alert(client, headers, "70000")
                    await fire(server, "70000", 1)
                    while True:
                        alert = (
                            await client.get(f"/api/alerts/{alert_id}", headers=headers)
                        ).json()
                        if alert["status"] == "triggered":
                            break
                        await trio.sleep(0.02)
                await trio.sleep(0.5)  # the email sink has claimed it and waits on the silence
            finally:
                child.send_signal(signal.SIGKILL)
                await child.wait()
            assert child.returncode == -signal.SIGKILL

            sinks = email_table(smtp.port)
            config = load(write_config(tmp_path, database, server, sinks))
            async with trio.open_nursery() as nursery:
                engine: Engine = await nursery.start(run_engine, config, load_registry())
                await until_notes(engine, alert_id, lambda ns: len(ns) == 2)
                notes = await until_notes(
                    engine, alert_id, lambda ns: all(n.state == "delivered" for n in ns)
                )
                await trio.sleep(0.3)
                nursery.cancel_scope.cancel()
    (email,) = [n for n in notes if n.channel == "email"]
    assert len(smtp.handler.messages) == 1
    assert smtp.handler.messages[0]["Message-ID"] == f"<outbox-{email.id}@triggerbook.test>"
