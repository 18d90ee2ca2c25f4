"""Destinations on the page, in Chromium: a webhook added, its secret shown once and copied, a
test sent to a real HTTP receiver, a reload that resumes the session without the secret, a
delete; an address, and the account's own, confirmed with the code a real SMTP server (aiosmtpd)
received.

The webhook receiver is a plain stdlib HTTP server on 127.0.0.1 (the webhook sink is told to
allow private addresses, as a local deployment would be)."""

from __future__ import annotations

import re
import threading
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from engine.config import Config
from tests.sinks.conftest import MailRecorder, start_smtp
from tests.web.browser.harness import LiveEngine, shot
from tests.web.browser.test_page import HOSTILE, sign_up


def with_webhooks(config: Config) -> Config:
    """The webhook sink on, private addresses allowed (the receiver is on 127.0.0.1)."""
    webhook = {**config.sinks["webhook"], "enabled": True, "allow_private": True}
    return replace(config, sinks={**config.sinks, "webhook": webhook})


class Receiver(BaseHTTPRequestHandler):
    """Answers every POST with 204 and keeps its headers (``server.received``)."""

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        self.rfile.read(length)
        self.server.received.append(dict(self.headers))  # type: ignore[attr-defined]
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:  # quiet
        return


@pytest.fixture
def receiver() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    server.received = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.mark.parametrize("live_engine", [with_webhooks], indirect=True)
def test_a_webhook_destination_from_the_page(
    live_engine: LiveEngine, page: Page, receiver: ThreadingHTTPServer
) -> None:
    base = live_engine.base_url
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
    sign_up(page, base, "carol")
    expect(page.locator("#channels input[value=webhook]")).to_be_checked()

    form = page.locator("#destination-form")
    form.locator("[name=kind]").select_option("webhook")
    target = f"http://127.0.0.1:{receiver.server_address[1]}/hook"
    form.locator("[name=target]").fill(target)
    form.locator("[name=name]").fill(HOSTILE)
    form.locator("button[type=submit]").click()

    secret = page.locator("#secret")
    expect(secret).to_have_text(re.compile(r"^whsec_\S+$"))
    value = secret.text_content()
    page.click("#copy-secret")
    expect(page.locator("#copy-secret")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == value

    item = page.locator("#destinations li[data-kind=webhook]")
    expect(item.locator(".name")).to_have_text(HOSTILE)
    expect(item.locator(".target")).to_have_text(target)
    item.locator("button[data-act=test]").click()
    expect(item.locator(".outcome")).to_have_text("delivered")
    assert len(receiver.received) == 1
    assert {"webhook-id", "webhook-signature"} <= {k.lower() for k in receiver.received[0]}
    shot(page, "destinations")

    page.click("#hide-secret")
    expect(page.locator("#secret-box")).to_be_hidden()
    # A reload resumes the session from this tab's refresh token; the secret is never shown again.
    page.reload()
    expect(page.locator("#who")).to_have_text("carol")
    expect(item.locator(".name")).to_have_text(HOSTILE)
    assert value is not None and value not in page.content()
    assert page.locator("main img").count() == 0

    item.locator("button[data-act=delete]").click()
    expect(page.locator("#destinations li[data-kind=webhook]")).to_have_count(0)
    expect(page.locator("#destinations")).to_contain_text("None yet")


@pytest.fixture
def smtp() -> Iterator[tuple[int, MailRecorder]]:
    """A real SMTP server (aiosmtpd, in its own thread and loop): its port and what it got."""
    recorder = MailRecorder()
    controller = start_smtp(recorder)
    try:
        yield controller.port, recorder
    finally:
        controller.stop()


@pytest.fixture
def mail_engine(
    tmp_path: Path,
    fresh_database: Callable[[], Awaitable[str]],
    smtp: tuple[int, MailRecorder],
) -> Iterator[LiveEngine]:
    """The engine with its email sink pointed at :func:`smtp`."""

    def with_mail(config: Config) -> Config:
        mail = {
            **config.sinks["email"],
            "enabled": True,
            "host": "127.0.0.1",
            "port": smtp[0],
            "confirm_account": True,
        }
        return replace(config, sinks={**config.sinks, "email": mail})

    live = LiveEngine(tmp_path, fresh_database, with_mail)
    live.start()
    try:
        yield live
    finally:
        live.stop()


def test_an_address_is_confirmed_with_the_mailed_code(
    mail_engine: LiveEngine, page: Page, smtp: tuple[int, MailRecorder]
) -> None:
    _, recorder = smtp
    sign_up(page, mail_engine.base_url, "ivy")
    banner = page.locator("#account-confirm")
    expect(banner).to_be_visible()  # confirm_account is on: the account's address waits
    expect(banner.locator("#account-email")).to_have_text("ivy@example.com")
    form = page.locator("#destination-form")
    form.locator("[name=kind]").select_option("email")
    form.locator("[name=target]").fill("ivy.work@example.com")
    form.locator("button[type=submit]").click()

    item = page.locator("#destinations li[data-kind=email]")
    expect(item).to_contain_text("waiting for the code mailed to it")
    expect(page.locator("#secret-box")).to_be_hidden()  # only webhooks have a secret
    assert len(recorder.messages) == 1
    assert recorder.envelopes[0][1] == ["ivy.work@example.com"]
    body = recorder.messages[0].get_body(("plain",))
    assert body is not None
    found = re.search(r"\b(\d{6})\b", body.get_content())
    assert found, body.get_content()

    item.locator("[name=code]").fill("000000" if found.group(1) != "000000" else "111111")
    item.locator(".confirm button").click()
    expect(page.locator(".toast.error")).to_contain_text("code")
    item.locator("[name=code]").fill(found.group(1))
    item.locator(".confirm button").click()
    expect(item).not_to_contain_text("waiting for the code")
    expect(item.locator(".confirm")).to_have_count(0)

    # The account's own address, the same way.
    page.click("#send-account-code")
    expect(page.locator("#account-outcome")).to_have_text("Sent: check your mail.")
    assert len(recorder.messages) == 2 and recorder.envelopes[1][1] == ["ivy@example.com"]
    mailed = recorder.messages[1].get_body(("plain",))
    assert mailed is not None
    code = re.search(r"\b(\d{6})\b", mailed.get_content())
    assert code, mailed.get_content()
    banner.locator("[name=code]").fill(code.group(1))
    banner.locator("button[type=submit]").click()
    expect(banner).to_be_hidden()
