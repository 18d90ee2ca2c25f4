"""The chat sink against a real HTTP server posing as ntfy (``conftest.py``), on 127.0.0.1 only:
what arrives, failures, a server that never answers, the limiter, targets refused and masked,
and the plugin as the engine loads it."""

from __future__ import annotations

import logging
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import trio
from triggerbook_apprise import ChatSink, triggerbook_sinks, urls

from engine.errors import ConfigError, DeliveryFailed, DeliveryRefused
from engine.model import Destination, Notification
from engine.plugins.registry import load_registry
from engine.plugins.text import subject

if TYPE_CHECKING:
    from conftest import NtfyServer

DATA: dict[str, object] = {
    "alert_id": "42",
    "name": "BTC breakout",
    "username": "ada",
    "email": "ada@example.com",
    "exchange": "binance",
    "symbol": "BTCUSDT",
    "direction": "above",
    "target_price": "70000",
    "triggered_price": "70000.10",
    "created_at": "2026-11-25T17:00:00+00:00",
    "triggered_at": "2026-11-25T17:36:16.123456+00:00",
}
TELEGRAM = "tgram://123456:ABCDEFSECRET/12345"


def note(target: str, destination_id: int = 7, event: str = "fire") -> Notification:
    destination = Destination(destination_id, 1, "chat", target)
    return Notification(1001, 42, "chat", dict(DATA), destination=destination, event=event, key="")


# ------------------------------------------------------------------------ delivery


async def test_ntfy_gets_the_title_and_the_body(ntfy: NtfyServer) -> None:
    sink = ChatSink()
    sent = note(f"ntfy://127.0.0.1:{ntfy.port}/prices")
    with trio.fail_after(10):
        await sink.deliver(sent)
    [request] = ntfy.received
    payload = request.json()
    assert payload["topic"] == "prices"
    assert payload["title"] == subject(sent) == "BTCUSDT rose to 70,000.10 (above 70,000)"
    message = str(payload["message"])
    assert "Exchange:  binance" in message and "Price:     70,000.10" in message
    assert "BTC breakout" in message and not message.startswith("BTCUSDT rose")


async def test_json_scheme_posts_to_its_path_and_the_client_is_reused(ntfy: NtfyServer) -> None:
    sink = ChatSink()
    sent = note(f"json://127.0.0.1:{ntfy.port}/hooks/chat", event="test")
    with trio.fail_after(10):
        await sink.deliver(sent)
        await sink.deliver(sent)
    assert [r.path for r in ntfy.received] == ["/hooks/chat", "/hooks/chat"]
    assert ntfy.received[0].json()["title"] == "[test] " + subject(note("x"))
    assert len(sink._services) == 1  # one Apprise object for the destination


class _Lines(logging.Handler):
    """Every line that reaches the root logger: what the engine's log would show."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


async def test_a_500_is_a_failure_whose_reason_holds_no_secret(ntfy: NtfyServer) -> None:
    root, engine_log = logging.getLogger(), _Lines()
    root.addHandler(engine_log)
    ntfy.status = 500
    ntfy.body = b'{"code": 50001, "error": "token tk_SECRETVALUE refused for s3cretpass"}'
    sink = ChatSink()
    target = f"ntfy://ada:s3cretpass@127.0.0.1:{ntfy.port}/prices?token=tk_SECRETVALUE"
    try:
        with trio.fail_after(10), pytest.raises(DeliveryFailed) as info:
            await sink.deliver(note(target))
    finally:
        root.removeHandler(engine_log)
    reason = info.value.reason
    assert "error=50001" in reason and reason.startswith("ntfy://")
    assert "s3cretpass" not in reason and "SECRETVALUE" not in reason
    # Apprise's own lines (which quote the server) stay out of the engine's log.
    logged = "\n".join(engine_log.lines)
    assert "s3cretpass" not in logged and "SECRETVALUE" not in logged
    assert len(ntfy.received) == 1


async def test_a_refused_connection_is_a_failure() -> None:
    with trio.socket.socket() as sock:  # a port nobody listens on
        await sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with trio.fail_after(10), pytest.raises(DeliveryFailed, match=r"127\.0\.0\.1"):
        await ChatSink().deliver(note(f"ntfy://127.0.0.1:{port}/prices"))


async def test_a_server_that_never_answers_is_cancelled_in_time(ntfy: NtfyServer) -> None:
    ntfy.hang = True
    sink = ChatSink()
    with trio.fail_after(10):
        start = trio.current_time()
        with trio.move_on_after(0.5) as scope:  # as the delivery loop's deadline does
            await sink.deliver(note(f"ntfy://127.0.0.1:{ntfy.port}/prices"))
        assert scope.cancelled_caught
        assert trio.current_time() - start < 1.5  # the thread was abandoned, not awaited
        assert len(ntfy.received) == 1


async def test_threads_are_bounded_by_concurrency(ntfy: NtfyServer) -> None:
    ntfy.hang = True
    sink = ChatSink({"concurrency": 2})
    with trio.fail_after(10):
        with trio.move_on_after(1.0):
            async with trio.open_nursery() as nursery:
                for destination_id in range(5):
                    target = f"ntfy://127.0.0.1:{ntfy.port}/t{destination_id}"
                    nursery.start_soon(sink.deliver, note(target, destination_id))
        assert ntfy.max_in_flight == 2


async def test_one_destination_is_paced_in_trio_so_a_deadline_sends_nothing_twice(
    ntfy: NtfyServer,
) -> None:
    sink = ChatSink()  # ntfy: Apprise asks for 5.5 s between two requests to one service
    target = f"ntfy://127.0.0.1:{ntfy.port}/prices"
    with trio.fail_after(10):
        with trio.move_on_after(1.0):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(sink.deliver, note(target))
                nursery.start_soon(sink.deliver, note(target))
        # The second waited in Trio and was cancelled there: no thread is left to send it
        # (one pausing inside Apprise would still hold its limiter token, and send later).
        assert sink.limiter.borrowed_tokens == 0
    assert len(ntfy.received) == 1
    assert sink._services[(7, target)].interval == 5.5


async def test_a_target_no_longer_valid_is_refused() -> None:
    with trio.fail_after(5):
        with pytest.raises(DeliveryRefused, match="no longer usable") as info:
            await ChatSink({"schemes": "ntfy"}).deliver(note(TELEGRAM))
        assert "SECRET" not in info.value.reason
        with pytest.raises(DeliveryRefused):
            await ChatSink().deliver(note("tgram://"))
        with pytest.raises(DeliveryRefused, match="needs a destination"):
            await ChatSink().deliver(Notification(1, 42, "chat", dict(DATA)))


# ------------------------------------------------------------------------ targets


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("garbage", "must start with the service's scheme"),
        ("123456:ABCDEFSECRET", "must start with the service's scheme"),
        ("tgarm://123456:ABCDEFSECRET/12345", "unknown chat service tgarm://"),
        ("tgram://ABCDEFSECRET", "not a valid tgram:// URL"),
        ("tgram://123456:ABCDEFSECRET/1 ntfy://x", "spaces"),
        ("tgram://123456:ABCDEFSECRET/1,ntfy://x", "one URL"),
        ("ntfy://" + "x" * 2100, "at most 2048"),
    ],
)
def test_check_target_refuses_without_echoing_the_secret(target: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason) as info:
        ChatSink().check_target(target)
    assert "SECRET" not in str(info.value) and "123456" not in str(info.value)


def test_check_target_keeps_a_good_url_and_honours_the_allow_list() -> None:
    assert ChatSink().check_target(f"  {TELEGRAM}\n") == TELEGRAM
    assert ChatSink().check_target("ntfy://127.0.0.1:8080/prices").startswith("ntfy://")
    narrow = ChatSink({"schemes": "ntfy, ntfys json"})
    assert narrow.schemes == {"ntfy", "ntfys", "json"}
    assert narrow.check_target("ntfys://prices") == "ntfys://prices"
    with pytest.raises(ValueError, match=r"tgram:// is not allowed here") as info:
        narrow.check_target(TELEGRAM)
    assert "SECRET" not in str(info.value)


def test_an_unknown_scheme_in_the_allow_list_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"\[sinks.chat\] schemes: .*telegramm"):
        ChatSink({"schemes": "ntfy,telegramm"})


def test_mask_target_hides_the_token() -> None:
    sink = ChatSink()
    shown = sink.mask_target(TELEGRAM)
    assert shown.startswith("tgram://") and "12345" in shown
    assert "ABCDEFSECRET" not in shown and "123456:" not in shown
    assert sink.mask_target("ntfy://ada:s3cretpass@host/topic") == ("ntfy://ada:****@host/topic")
    assert "tk_SECRET" not in sink.mask_target("ntfy://host/topic?token=tk_SECRET")
    slack = sink.mask_target("slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ/#general")
    assert "TIiajkdnlazkcOXrIdevi7FQ" not in slack
    assert sink.mask_target("tgarm://123456:ABCDEFSECRET/1") == "tgarm://***"
    assert sink.mask_target("123456:ABCDEFSECRET") == "***"


def test_scrub_hides_what_the_privacy_form_hides() -> None:
    visible = urls.shown(urls.service(TELEGRAM))
    text = "bot 123456:ABCDEFSECRET refused chat 12345 (ABCDEF%53ECRET)"
    scrubbed = urls.scrub(text, TELEGRAM, visible)
    assert "ABCDEFSECRET" not in scrubbed and "123456" not in scrubbed
    assert "refused chat 12345" in scrubbed  # the chat id is shown, so it stays
    assert len(urls.scrub("x" * 1000, TELEGRAM, visible)) == 300


# ------------------------------------------------------------------------ as a plugin


def test_the_entry_point_registers_the_chat_sink() -> None:
    assert triggerbook_sinks() == [ChatSink]
    names = {ep.name: ep.value for ep in entry_points(group="triggerbook")}
    assert names.get("chat") == "triggerbook_apprise"
    registry = load_registry()
    assert registry.sinks["chat"] is ChatSink
    assert any(
        line.startswith("sink") and "triggerbook-apprise" in line for line in registry.describe()
    )
    sink = registry.sink("chat", {"schemes": "tgram"})
    assert sink.takes_destinations and not sink.reaches_account


def test_its_table_validates(tmp_path: Path) -> None:
    registry = load_registry()
    config_file = tmp_path / "config.toml"
    config_file.write_text(
        '[sinks.chat]\nenabled = true\nschemes = "tgram, ntfys"\ntimeout_s = 20\n'
    )
    config = registry.load_config(config_file, environ={})
    table = config.sinks["chat"]
    assert table["enabled"] is True and table["schemes"] == "tgram, ntfys"
    assert table["timeout_s"] == 20.0 and table["concurrency"] == ChatSink.concurrency
    from_env = registry.load_config(
        config_file, environ={"TRIGGERBOOK_SINKS_CHAT_SCHEMES": "slack"}
    )
    assert from_env.sinks["chat"]["schemes"] == "slack"
    config_file.write_text('[sinks.chat]\ntoken = "x"\n')
    with pytest.raises(ConfigError, match=r"unknown key 'token' in \[sinks\.chat\]"):
        registry.load_config(config_file, environ={})
    config_file.write_text('[sinks.chat]\nschemes = ["tgram"]\n')
    with pytest.raises(ConfigError, match="schemes must be a string"):
        registry.load_config(config_file, environ={})
