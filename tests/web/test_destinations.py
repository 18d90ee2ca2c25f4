"""Destinations and alert channels through the real server and store (issue 14, the user's side).

Sinks: ``probe`` (``tests/web/probe_sink.py``: its targets choose the outcome), the built-in
webhook sink (SSRF refusals at create), and the email sink against a real aiosmtpd server for
the confirmation codes (a recording stand-in named ``email`` where the sink is not installed).
The delivery loops run in the test's nursery, so a test notification, a code and a fire's
notifications go out for real.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import re
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import trio

from engine import limits
from engine.model import Fire, Tick
from engine.plugins.registry import load_registry
from tests.web import probe_sink
from tests.web.conftest import Api, start_api
from web.fastlane import FastLane

PROBE = {"TRIGGERBOOK_SINKS_PROBE_ENABLED": "true"}


@pytest.fixture
async def probe_api(store: Any, nursery: trio.Nursery, tmp_path: Path) -> AsyncIterator[Api]:
    """The server with the probe sink enabled and the delivery loops running."""
    probe_sink.DELIVERED.clear()
    async with start_api(store, nursery, tmp_path, PROBE, extra_plugins=(probe_sink,)) as api:
        await nursery.start(api.ctx.delivery.run)
        yield api


async def _count(api: Api, table: str) -> int:
    async def count(con: Any) -> int:
        return await con.fetchval(f"SELECT count(*) FROM {table}")

    return await api.ctx.store.bridge.run(count)


async def test_create_list_delete_are_the_owners_alone(probe_api: Api) -> None:
    api = probe_api
    with trio.fail_after(30):
        alice, bob = await api.user("alice"), await api.user("bob")
        r = await api.client.post(
            "/api/destinations",
            headers=alice,
            json={"kind": "probe", "target": "probe:ok?secret=hunter2", "name": " mine "},
        )
        assert r.status_code == 201, r.text
        made = r.json()
        assert made["kind"] == "probe" and made["name"] == "mine" and made["confirmed"] is True
        assert made["target"] == "probe:ok?secret=***"  # masked by the sink, even to its owner
        assert "secret" not in made  # the probe signs nothing
        listed = (await api.client.get("/api/destinations", headers=alice)).json()["results"]
        assert [d["id"] for d in listed] == [made["id"]]
        assert "hunter2" not in str(listed)
        assert (await api.client.get("/api/destinations", headers=bob)).json() == {"results": []}
        one = f"/api/destinations/{made['id']}"
        for method, path in (("DELETE", one), ("POST", f"{one}/test")):
            r = await api.client.request(method, path, headers=bob)
            assert r.status_code == 404, (method, path, r.text)
        r = await api.client.post(f"{one}/confirm", headers=bob, json={"code": "123456"})
        assert r.status_code == 404
        assert (await api.client.delete(one, headers=alice)).status_code == 204
        assert (await api.client.delete(one, headers=alice)).status_code == 404
        assert (await api.client.get("/api/destinations", headers=alice)).json()["results"] == []
        # deleted, not forgotten: the row stays for the notifications that went through it
        assert await _count(api, "destinations WHERE deleted_at IS NOT NULL") == 1


async def test_bad_input_is_a_422_naming_the_field_and_stores_nothing(probe_api: Api) -> None:
    api = probe_api
    with trio.fail_after(30):
        alice = await api.user("alice")
        cases = [
            ({"kind": "nope", "target": "probe:ok"}, "kind"),
            ({"kind": "webhook", "target": "https://example.com/"}, "kind"),  # not enabled
            ({"kind": 3, "target": "probe:ok"}, "kind"),
            ({"kind": "probe", "target": 7}, "target"),
            ({"kind": "probe", "target": ""}, "target"),
            ({"kind": "probe", "target": "elsewhere"}, "target"),  # the sink's check_target
            ({"kind": "probe", "target": "probe:" + "x" * limits.TARGET_MAX}, "target"),
            ({"kind": "probe", "target": "probe:ok\u0000"}, "target"),
            ({"kind": "probe", "target": "probe:ok", "name": "n" * 201}, "name"),
            ({"kind": "probe", "target": "probe:ok", "name": "a\nb"}, "name"),
            ({"kind": "probe", "target": "probe:ok", "colour": "red"}, "colour"),
            ({"target": "probe:ok"}, "kind"),
        ]
        for body, field in cases:
            r = await api.client.post("/api/destinations", headers=alice, json=body)
            assert r.status_code == 422, (body, r.text)
            assert r.headers["content-type"] == "application/problem+json"
            assert r.json()["field"] == field, (body, r.json())
        r = await api.client.post(
            "/api/destinations",
            headers={**alice, "Content-Type": "application/json"},
            content=b"[1]",
        )
        assert r.status_code == 400
        assert await _count(api, "destinations") == 0


async def test_a_second_copy_is_a_409_and_the_cap_is_a_409_limit_reached(probe_api: Api) -> None:
    api = probe_api
    with trio.fail_after(60):
        alice = await api.user("alice")
        body = {"kind": "probe", "target": "probe:ok"}
        assert (await api.client.post("/api/destinations", headers=alice, json=body)).status_code
        r = await api.client.post("/api/destinations", headers=alice, json=body)
        assert r.status_code == 409 and r.json()["type"].endswith(":conflict")
        for n in range(1, limits.DESTINATIONS_MAX):
            body = {"kind": "probe", "target": f"probe:ok#{n}"}
            r = await api.client.post("/api/destinations", headers=alice, json=body)
            assert r.status_code == 201, r.text
        r = await api.client.post(
            "/api/destinations", headers=alice, json={"kind": "probe", "target": "probe:more"}
        )
        assert r.status_code == 409 and r.json()["type"].endswith(":limit-reached"), r.text
        assert await _count(api, "destinations") == limits.DESTINATIONS_MAX


async def test_the_test_endpoint_answers_each_outcome(probe_api: Api) -> None:
    api = probe_api
    with trio.fail_after(30):
        alice = await api.user("alice")
        seen = {}
        for outcome in ("ok", "fail", "refuse"):
            made = await api.client.post(
                "/api/destinations",
                headers=alice,
                json={"kind": "probe", "target": f"probe:{outcome}"},
            )
            r = await api.client.post(f"/api/destinations/{made.json()['id']}/test", headers=alice)
            assert r.status_code == 200, r.text
            seen[outcome] = r.json()
        assert seen["ok"] == {"state": "delivered", "reason": None}
        assert seen["fail"] == {"state": "failed", "reason": "the probe failed, as asked"}
        assert seen["refuse"] == {"state": "refused", "reason": "the probe refused, as asked"}
        (note,) = probe_sink.DELIVERED
        assert note.event == "test" and note.key.startswith("test-")
        assert note.data["username"] == "alice" and note.data["symbol"] == "BTCUSDT"
        assert await _count(api, "outbox") == 0  # sent now, outside the outbox


async def test_webhook_secret_is_shown_once(
    store: Any, nursery: trio.Nursery, tmp_path: Path
) -> None:
    environ = {
        "TRIGGERBOOK_SINKS_WEBHOOK_ENABLED": "true",
        "TRIGGERBOOK_SINKS_WEBHOOK_ALLOW_PRIVATE": "true",
    }
    with trio.fail_after(30):
        async with start_api(store, nursery, tmp_path, environ) as api:
            alice = await api.user("alice")
            r = await api.client.post(
                "/api/destinations",
                headers=alice,
                json={"kind": "webhook", "target": "http://127.0.0.1:9/hook?token=abc"},
            )
            assert r.status_code == 201, r.text
            made = r.json()
            assert made["secret"].startswith("whsec_")
            assert made["target"] == "http://127.0.0.1:9/hook?token=***"
            listed = (await api.client.get("/api/destinations", headers=alice)).json()
            assert "secret" not in listed["results"][0]
            assert made["secret"] not in str(listed) and "abc" not in str(listed)
            (row,) = await api.ctx.store.destinations.list(1)
            assert row.secret == made["secret"]  # kept for signing, never shown again


async def test_webhook_targets_that_reach_private_addresses_are_refused_at_create(
    store: Any, nursery: trio.Nursery, tmp_path: Path
) -> None:
    environ = {"TRIGGERBOOK_SINKS_WEBHOOK_ENABLED": "true"}  # allow_private off, the default
    with trio.fail_after(30):
        async with start_api(store, nursery, tmp_path, environ) as api:
            alice = await api.user("alice")
            for url in (
                "http://127.0.0.1:8080/hook",
                "http://localhost/hook",
                "https://10.0.0.1/hook",
                "http://169.254.169.254/latest/meta-data",
                "ftp://example.com/",
            ):
                r = await api.client.post(
                    "/api/destinations", headers=alice, json={"kind": "webhook", "target": url}
                )
                assert r.status_code == 422, (url, r.text)
                assert r.json()["field"] == "target"
            assert await _count(api, "destinations") == 0


async def test_alert_channels_are_checked_folded_and_shown(probe_api: Api) -> None:
    api = probe_api
    with trio.fail_after(30):
        alice = await api.user("alice")
        base = {"symbol": "BTCUSDT", "target_price": "70000", "direction": "above"}
        for channels in (["nope"], ["probe", "webhook"], "probe", [1], ["probe"] * 33):
            r = await api.client.post(
                "/api/alerts", headers=alice, json={**base, "channels": channels}
            )
            assert r.status_code == 422, (channels, r.text)
            assert r.json()["field"] == "channels"
        assert await _count(api, "alerts") == 0
        r = await api.client.post(
            "/api/alerts", headers=alice, json={**base, "channels": ["probe", "probe"]}
        )
        assert r.status_code == 201, r.text
        assert r.json()["channels"] == ["probe"] and r.json()["channels_default"] is False
        r = await api.client.post("/api/alerts", headers=alice, json={**base, "channels": []})
        assert r.json()["channels"] == [] and r.json()["channels_default"] is False
        r = await api.client.post("/api/alerts", headers=alice, json=base)
        # the defaults: every enabled channel (the console is on by default)
        assert r.json()["channels"] == ["console", "probe"] and r.json()["channels_default"]
        stored = await api.ctx.store.get_alert(1, r.json()["id"])
        assert stored is not None and stored.channels is None  # NULL: decided at fire time
        page = (await api.client.get("/api/alerts", headers=alice)).json()["results"]
        assert [a["channels"] for a in page] == [["console", "probe"], [], ["probe"]]
        assert all("notifications" not in a for a in page)


async def test_a_fire_shows_its_notifications(probe_api: Api) -> None:
    api = probe_api
    with trio.fail_after(30):
        alice = await api.user("alice")
        dest = await api.client.post(
            "/api/destinations", headers=alice, json={"kind": "probe", "target": "probe:ok"}
        )
        r = await api.client.post(
            "/api/alerts",
            headers=alice,
            json={
                "symbol": "BTCUSDT",
                "target_price": "70000",
                "direction": "above",
                "channels": ["probe"],
            },
        )
        alert = r.json()
        one = f"/api/alerts/{alert['id']}"
        assert (await api.client.get(one, headers=alice)).json()["notifications"] == []
        stored = await api.ctx.store.get_alert(1, alert["id"])
        assert stored is not None
        tick = Tick("binance", "BTCUSDT", Decimal("70001"), 1_700_000_000_000, 1)
        fired = await api.ctx.store.record_fires(
            [Fire(tick, (stored.trigger(),))], api.ctx.delivery.fire_channels()
        )
        assert fired == [alert["id"]]
        api.ctx.delivery.wake()
        while True:
            notes = (await api.client.get(one, headers=alice)).json()["notifications"]
            if notes and notes[0]["state"] != "pending":
                break
            await trio.sleep(0.02)
        (note,) = notes  # channels ["probe"]: no console line
        assert note["channel"] == "probe" and note["destination_id"] == dest.json()["id"]
        assert note["state"] == "delivered" and note["attempts"] == 1
        assert note["last_error"] is None and note["delivered_at"] is not None
        (delivered,) = probe_sink.DELIVERED
        assert delivered.event == "fire" and delivered.data["triggered_price"] == "70001"


async def test_readyz_shows_the_channels(probe_api: Api) -> None:
    with trio.fail_after(30):
        r = await probe_api.client.get("/readyz")
        channels = r.json()["checks"]["channels"]
        assert channels == {
            "console": {"ok": True, "reason": None},
            "probe": {"ok": True, "reason": None},
        }


# --- email confirmation ---------------------------------------------------------------------


class _Inbox:
    """The codes mailed: from a real aiosmtpd server, or from the stand-in sink."""

    def __init__(self, handler: Any | None) -> None:
        self.handler = handler

    def mails(self) -> list[tuple[str, str]]:
        """(recipient, code) of every confirmation sent so far."""
        if self.handler is None:
            return [
                (
                    str(n.destination.target if n.destination else n.data["address"]),
                    str(n.data["code"]),
                )
                for n in probe_sink.DELIVERED
                if n.event == "confirm"
            ]
        out = []
        for raw, rcpt in self.handler.mails:
            message = email.message_from_bytes(raw, policy=email.policy.default)
            match = re.search(r"\b(\d{6})\b", str(message["Subject"]))
            assert match, message["Subject"]
            out.append((rcpt, match.group(1)))
        return out

    async def code_for(self, address: str) -> str:
        while True:
            found = [code for to, code in self.mails() if to == address]
            if found:
                return found[-1]
            await trio.sleep(0.02)


class _Recorder:
    def __init__(self) -> None:
        self.mails: list[tuple[bytes, str]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        for rcpt in envelope.rcpt_tos:
            self.mails.append((envelope.original_content or b"", rcpt))
        return "250 OK"


@pytest.fixture
async def smtp() -> AsyncIterator[tuple[int, _Recorder]]:
    """A real aiosmtpd server on 127.0.0.1, port chosen; started in a thread, with an asyncio
    loop of its own (not the test's trio-asyncio one)."""
    from aiosmtpd.controller import Controller

    class PortZero(Controller):
        def _trigger_server(self) -> None:
            assert self.server is not None
            self.port = self.server.sockets[0].getsockname()[1]
            super()._trigger_server()

    recorder = _Recorder()

    def begin() -> PortZero:
        controller = PortZero(
            recorder, hostname="127.0.0.1", port=0, loop=asyncio.SelectorEventLoop()
        )
        controller.start()
        return controller

    controller = await trio.to_thread.run_sync(begin)
    try:
        yield controller.port, recorder
    finally:
        await trio.to_thread.run_sync(controller.stop)


@pytest.fixture
async def mail_api(
    store: Any, nursery: trio.Nursery, tmp_path: Path, smtp: tuple[int, _Recorder]
) -> AsyncIterator[tuple[Api, _Inbox]]:
    """The server with the email sink (``confirm_account`` on) on the real SMTP server, or
    with the stand-in where the email sink is not installed."""
    probe_sink.DELIVERED.clear()
    real = "email" in load_registry(entry_points=False).sinks
    port, recorder = smtp
    environ = {
        "TRIGGERBOOK_SINKS_EMAIL_ENABLED": "true",
        "TRIGGERBOOK_SINKS_EMAIL_CONFIRM_ACCOUNT": "true",
        "TRIGGERBOOK_SINKS_CONSOLE_ENABLED": "false",
    }
    extra: tuple[object, ...] = ()
    if real:
        environ |= {
            "TRIGGERBOOK_SINKS_EMAIL_HOST": "127.0.0.1",
            "TRIGGERBOOK_SINKS_EMAIL_PORT": str(port),
            "TRIGGERBOOK_SINKS_EMAIL_SENDER": "alerts@example.com",
        }
    else:
        extra = (probe_sink.FakeEmail(),)
    async with start_api(store, nursery, tmp_path, environ, extra_plugins=extra) as api:
        await nursery.start(api.ctx.delivery.run)
        yield api, _Inbox(recorder if real else None)


async def test_an_email_destination_is_used_only_once_confirmed(
    mail_api: tuple[Api, _Inbox],
) -> None:
    api, inbox = mail_api
    with trio.fail_after(30):
        alice = await api.user("alice")
        r = await api.client.post(
            "/api/destinations",
            headers=alice,
            json={"kind": "email", "target": "second@Example.COM"},
        )
        assert r.status_code == 201, r.text
        made = r.json()
        assert made["confirmed"] is False and "secret" not in made
        assert made["confirmation"] == {"state": "delivered", "reason": None}
        one = f"/api/destinations/{made['id']}"
        code = await inbox.code_for("second@example.com")
        assert (await api.client.post(f"{one}/test", headers=alice)).status_code == 403
        wrong = "000000" if code != "000000" else "111111"
        r = await api.client.post(f"{one}/confirm", headers=alice, json={"code": wrong})
        assert r.status_code == 422 and r.json()["field"] == "code"
        assert "4 tries left" in r.json()["detail"]
        r = await api.client.post(f"{one}/confirm", headers=alice, json={"code": code})
        assert r.status_code == 200 and r.json()["confirmed"] is True, r.text
        assert (await api.client.post(f"{one}/confirm/resend", headers=alice)).status_code == 409
        r = await api.client.post(f"{one}/test", headers=alice)
        assert r.json() == {"state": "delivered", "reason": None}


async def test_wrong_codes_end_a_code_and_a_new_one_can_be_asked_for(
    mail_api: tuple[Api, _Inbox],
) -> None:
    api, inbox = mail_api
    with trio.fail_after(30):
        alice = await api.user("alice")
        made = await api.client.post(
            "/api/destinations", headers=alice, json={"kind": "email", "target": "b@example.com"}
        )
        one = f"/api/destinations/{made.json()['id']}"
        code = await inbox.code_for("b@example.com")
        wrong = "000000" if code != "000000" else "111111"
        for _ in range(limits.CODE_TRIES):
            r = await api.client.post(f"{one}/confirm", headers=alice, json={"code": wrong})
            assert r.status_code == 422
        assert "too many wrong tries" in r.json()["detail"]
        r = await api.client.post(f"{one}/confirm", headers=alice, json={"code": code})
        assert r.status_code == 422 and "too many wrong tries" in r.json()["detail"]
        r = await api.client.post(f"{one}/confirm/resend", headers=alice)
        assert r.status_code == 200 and r.json()["state"] == "delivered"
        fresh = await inbox.code_for("b@example.com")  # send_now returned: the mail is in
        r = await api.client.post(f"{one}/confirm", headers=alice, json={"code": fresh})
        assert r.status_code == 200 and r.json()["confirmed"] is True
        (row,) = await api.ctx.store.destinations.list(1)
        assert row.confirmed_at is not None


async def test_the_account_address_is_confirmed_with_a_code(
    mail_api: tuple[Api, _Inbox],
) -> None:
    api, inbox = mail_api
    with trio.fail_after(30):
        alice = await api.user("alice")
        me = (await api.client.get("/api/users/me", headers=alice)).json()
        assert me["email_confirmed"] is False
        r = await api.client.post("/api/users/me/email/confirm", headers=alice, json={"code": "1"})
        assert r.status_code == 409  # nothing sent yet
        r = await api.client.post("/api/users/me/email/confirm/send", headers=alice)
        assert r.status_code == 200 and r.json()["state"] == "delivered", r.text
        code = await inbox.code_for("alice@example.com")
        r = await api.client.post("/api/users/me/email/confirm", headers=alice, json={"code": code})
        assert r.status_code == 200
        assert r.json() == {"email": "alice@example.com", "email_confirmed": True}
        me = (await api.client.get("/api/users/me", headers=alice)).json()
        assert me["email_confirmed"] is True
        r = await api.client.post("/api/users/me/email/confirm/send", headers=alice)
        assert r.status_code == 409


async def test_codes_per_hour_are_bounded(mail_api: tuple[Api, _Inbox]) -> None:
    api, _inbox = mail_api
    with trio.fail_after(30):
        alice = await api.user("alice")
        made = await api.client.post(
            "/api/destinations", headers=alice, json={"kind": "email", "target": "c@example.com"}
        )
        one = f"/api/destinations/{made.json()['id']}"
        for _ in range(limits.CODES_PER_HOUR - 1):  # the create sent the first
            assert (await api.client.post(f"{one}/confirm/resend", headers=alice)).is_success
        r = await api.client.post(f"{one}/confirm/resend", headers=alice)
        assert r.status_code == 429 and "Retry-After" in r.headers


async def test_the_fast_lane_takes_a_create_with_channels(
    probe_api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Channels do not send a create off the lane (web/fastlane.py shares parse_create), and
    the lane's answer is the one the app gives (a second alert through the app, compared)."""
    api = probe_api
    handed: list[str] = []
    original = FastLane._hand_over

    async def counted(self: FastLane, scope: Any, receive: Any, send: Any) -> None:
        handed.append(scope["path"])
        await original(self, scope, receive, send)

    monkeypatch.setattr(FastLane, "_hand_over", counted)
    with trio.fail_after(30):
        alice = await api.user("alice")
        handed.clear()
        body = {"symbol": "BTCUSDT", "target_price": "5", "channels": ["probe", "console"]}
        body["direction"] = "below"
        by_lane = await api.client.post("/api/alerts", headers=alice, json=body)
        assert by_lane.status_code == 201 and handed == []
        # a repeated Authorization header is always handed to the app
        token = alice["Authorization"]
        headers = [("Authorization", token), ("Authorization", token)]
        by_app = await api.client.post("/api/alerts", headers=headers, json=body)
        assert by_app.status_code == 201 and handed == ["/api/alerts"]
        lane, app = by_lane.json(), by_app.json()
        assert lane.pop("id") + 1 == app.pop("id")
        lane.pop("created_at"), app.pop("created_at")
        assert lane == app and lane["channels"] == ["probe", "console"]


async def test_a_webhook_test_is_signed_and_its_outcome_told(
    store: Any, nursery: trio.Nursery, tmp_path: Path
) -> None:
    """The real webhook sink against a real receiver that verifies Standard Webhooks
    signatures with the secret the 201 showed: 2xx delivered, 500 failed, 404 refused."""
    from tests.sinks.webhook_receiver import Received, Reply, WebhookReceiver

    status = {"now": 204}

    def respond(_request: Received) -> Reply:
        return Reply(status["now"])

    receiver = WebhookReceiver("whsec_" + "A" * 44, respond)
    environ = {
        "TRIGGERBOOK_SINKS_WEBHOOK_ENABLED": "true",
        "TRIGGERBOOK_SINKS_WEBHOOK_ALLOW_PRIVATE": "true",
    }
    with trio.fail_after(30):
        await nursery.start(receiver.serve)
        async with start_api(store, nursery, tmp_path, environ) as api:
            await nursery.start(api.ctx.delivery.run)
            alice = await api.user("alice")
            made = await api.client.post(
                "/api/destinations",
                headers=alice,
                json={"kind": "webhook", "target": receiver.url()},
            )
            assert made.status_code == 201, made.text
            receiver.secret = made.json()["secret"]
            test = f"/api/destinations/{made.json()['id']}/test"
            r = await api.client.post(test, headers=alice)
            assert r.json() == {"state": "delivered", "reason": None}
            (got,) = receiver.received
            assert isinstance(got.verified, dict), got.verified  # the signature verified
            assert got.headers["webhook-id"].startswith("test-")
            status["now"] = 500
            r = await api.client.post(test, headers=alice)
            assert r.json()["state"] == "failed"
            status["now"] = 404
            r = await api.client.post(test, headers=alice)
            assert r.json()["state"] == "refused" and "404" in r.json()["reason"]
