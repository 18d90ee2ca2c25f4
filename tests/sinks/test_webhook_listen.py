"""``triggerbook webhooks listen``: the real webhook sink delivers to the local receiver, which
prints one block per request and verifies signatures as the sink makes them; its bounds; the
real command in a subprocess, stopped with SIGINT."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import msgspec
import pytest
import trio

from engine.errors import DeliveryFailed, DeliveryRefused
from engine.model import Destination, Notification
from engine.sinks.listen import Listener, key_of, verify
from engine.sinks.webhook import WebhookSink, sign

SECRET = WebhookSink().new_secret()
DATA: dict[str, object] = {
    "alert_id": "42",
    "name": "BTC breakout",
    "username": "ada",
    "exchange": "binance",
    "symbol": "BTCUSDT",
    "direction": "above",
    "target_price": "70000",
    "triggered_price": "70000.10",
    "triggered_at": "2026-11-25T17:36:16.123456+00:00",
}
ROOT = Path(__file__).resolve().parents[2]

Started = tuple[str, list[str]]  # the listener's URL, the blocks it printed


def note(url: str, *, secret: str = SECRET, id: int = 7, **data: object) -> Notification:
    destination = Destination(id=3, owner_id=1, kind="webhook", target=url, secret=secret)
    return Notification(
        id=id, alert_id=42, channel="webhook", data={**DATA, **data}, destination=destination
    )


def sink() -> WebhookSink:
    return WebhookSink({"allow_private": True, "timeout_s": 5.0})


@pytest.fixture
def listen(nursery: trio.Nursery) -> Callable[..., Awaitable[Started]]:
    """Start a Listener (keywords: its fields) on 127.0.0.1, any free port."""

    async def start(**options: object) -> Started:
        blocks: list[str] = []
        options.setdefault("key", key_of(SECRET))
        listener = Listener(out=blocks.append, **options)  # type: ignore[arg-type]
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        url = await nursery.start(listener.serve, listeners)
        return f"{url}hook", blocks

    return start


def signed(body: bytes, *, timestamp: int | None = None, secret: str = SECRET) -> dict[str, str]:
    stamp = int(time.time()) if timestamp is None else timestamp
    return sign(key_of(secret), "msg_1", stamp, body)


async def test_a_delivery_is_printed_and_verified(listen) -> None:
    url, blocks = await listen()
    webhook = sink()
    with trio.fail_after(10):
        async with webhook.open():
            await webhook.deliver(note(url))
            await webhook.deliver(note(url, id=8))
    first, second = blocks
    assert re.match(r"--- POST /hook from 127\.0\.0\.1:\d+ at 20\d\d-\d\d-\d\dT", first)
    assert "webhook-id:        7\n" in first
    assert re.search(r"webhook-timestamp: \d{10} \(\d s old\)\n", first)
    assert "signature:         verified\n" in first
    assert "answered:          204\n" in first
    body = first.split("answered:          204\n", 1)[1]
    assert '\n  "type": "alert.fired",\n' in body  # pretty-printed
    assert msgspec.json.decode(body)["data"] == DATA
    assert "webhook-id:        8\n" in second
    # Keep-alive: the sink's second POST came over the first one's connection.
    peer = re.compile(r"from (\S+) at")
    assert peer.search(first).group(1) == peer.search(second).group(1)  # type: ignore[union-attr]


async def test_a_wrong_secret_does_not_verify_and_is_refused(listen) -> None:
    url, blocks = await listen()
    with trio.fail_after(10), pytest.raises(DeliveryRefused, match=r"HTTP 401.*does not verify"):
        await sink().deliver(note(url, secret=WebhookSink().new_secret()))
    assert "signature:         refused: the signature does not verify" in blocks[0]
    assert "answered:          401\n" in blocks[0]
    assert "verified" not in blocks[0]


async def test_without_a_secret_nothing_is_checked(listen) -> None:
    url, blocks = await listen(key=None)
    with trio.fail_after(10):
        await sink().deliver(note(url, secret=WebhookSink().new_secret()))
    assert "signature:         not checked (no secret given)\n" in blocks[0]
    assert "answered:          204\n" in blocks[0]


async def test_any_of_several_v1_signatures_may_match(listen) -> None:
    url, blocks = await listen()
    body = b'{"type":"alert.test"}'
    headers = signed(body)
    good = headers["webhook-signature"]
    headers["webhook-signature"] = f"v1,bm9wZQ== v2,{good[3:]} {good}"
    with trio.fail_after(10):
        async with httpx.AsyncClient() as client:
            response = await client.post(url, content=body, headers=headers)
    assert response.status_code == 204
    assert "signature:         verified\n" in blocks[0]


@pytest.mark.parametrize(
    ("offset_s", "age"),
    [(-330, r"3[23]\d s old"), (400, r"[34]\d\d s in the future")],
)
async def test_a_timestamp_more_than_5_minutes_off_is_refused(
    listen, offset_s: int, age: str
) -> None:
    url, blocks = await listen()
    body = b'{"type":"alert.fired"}'
    with trio.fail_after(10):
        async with httpx.AsyncClient() as client:
            response = await client.post(
                url, content=body, headers=signed(body, timestamp=int(time.time()) + offset_s)
            )
    assert response.status_code == 401
    assert re.match(rf"refused: webhook-timestamp is {age} \(more than 300 s off\)", response.text)
    assert "the signature itself verifies" in blocks[0]
    assert "answered:          401\n" in blocks[0]


def test_verify_names_what_is_missing_or_malformed() -> None:
    key = key_of(SECRET)
    now = time.time()
    assert verify(key, {}, b"", now).text == (
        "refused: no webhook-id, webhook-timestamp, webhook-signature header"
    )
    headers = {**signed(b"{}"), "webhook-timestamp": "soon"}
    assert verify(key, headers, b"{}", now).text == "refused: webhook-timestamp is not an integer"
    assert verify(key, signed(b"{}"), b"{}", now).ok
    assert not verify(key, signed(b"{}"), b"{} ", now).ok  # the body changed on the way
    with pytest.raises(ValueError, match="not a whsec_"):
        key_of("whsec_!!")


async def test_an_over_long_body_is_refused_with_413(listen) -> None:
    url, blocks = await listen(body_max=64 * 1024)
    with trio.fail_after(10):
        # The real sink, with a name that makes its body too long for this listener.
        with pytest.raises(
            DeliveryRefused, match=re.escape("HTTP 413 from 127.0.0.1: refused: the body is")
        ):
            await sink().deliver(note(url, name="x" * 70_000))

        async def chunks():  # no content-length: the cap is counted as the body arrives
            for _ in range(40):
                yield b"y" * 4096

        async with httpx.AsyncClient() as client:
            response = await client.post(url, content=chunks())
    assert response.status_code == 413
    assert len(blocks) == 2
    assert all("answered:          413\n" in block for block in blocks)
    assert all("over 65536 bytes" in block for block in blocks)


async def test_the_default_cap_is_1_mib(listen) -> None:
    url, blocks = await listen()
    with trio.fail_after(10):
        async with httpx.AsyncClient() as client:
            response = await client.post(url, content=b"z" * (1024 * 1024 + 1))
    assert response.status_code == 413
    assert "over 1048576 bytes" in blocks[0]


async def test_status_500_makes_the_sink_retry(listen) -> None:
    url, blocks = await listen(status=500)
    with (
        trio.fail_after(10),
        pytest.raises(DeliveryFailed, match=re.escape("HTTP 500 from 127.0.0.1")),
    ):
        await sink().deliver(note(url))
    assert "signature:         verified\n" in blocks[0]
    assert "answered:          500\n" in blocks[0]


async def test_a_slow_request_gets_408_and_a_long_head_431(listen) -> None:
    url, blocks = await listen(timeout_s=0.3, head_max=1024)
    port = int(url.split(":")[2].split("/")[0])
    with trio.fail_after(10):
        slow = await trio.open_tcp_stream("127.0.0.1", port)
        await slow.send_all(b"POST /hook HTTP/1.1\r\nhost: x\r\n")  # and nothing more
        assert (await _read_all(slow)).startswith(b"HTTP/1.1 408 ")
        long = await trio.open_tcp_stream("127.0.0.1", port)
        await long.send_all(b"POST /hook HTTP/1.1\r\nhost: x\r\nx-pad: " + b"p" * 2048)
        assert (await _read_all(long)).startswith(b"HTTP/1.1 431 ")
        idle = await trio.open_tcp_stream("127.0.0.1", port)
        assert await _read_all(idle) == b""  # an idle connection is closed without a word
    assert "request not read within 0.3 s; 408" in blocks[0]
    assert "a malformed request" in blocks[1] and "answered 431" in blocks[1]


async def _read_all(stream: trio.SocketStream) -> bytes:
    data = b""
    while chunk := await stream.receive_some():
        data += chunk
    await stream.aclose()
    return data


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_the_command_prints_each_request_and_stops_on_sigint() -> None:
    port = _free_port()
    command = [sys.executable, "-m", "engine.cli", "webhooks", "listen", "--port", str(port)]
    with trio.fail_after(60):
        process = await trio.lowlevel.open_process(
            [*command, "--secret", SECRET],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert process.stdout is not None
        out = b""
        try:
            while b"allow_private" not in out:
                chunk = await process.stdout.receive_some()
                assert chunk, out.decode()
                out += chunk
            assert f"listening for webhooks at http://127.0.0.1:{port}/".encode() in out
            assert b"(signatures verified with --secret)" in out
            body = msgspec.json.encode({"type": "alert.fired", "data": DATA})
            async with httpx.AsyncClient() as client:
                response = await client.post(
                    f"http://127.0.0.1:{port}/hook", content=body, headers=signed(body)
                )
            assert response.status_code == 204
            while not re.search(rb"--- POST /hook .*?\n}\n", out, re.S):
                chunk = await process.stdout.receive_some()
                assert chunk, out.decode()
                out += chunk
            process.send_signal(signal.SIGINT)
            assert await process.wait() == 0
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    block = out.decode().split("--- POST", 1)[1]
    assert "webhook-id:        msg_1\n" in block
    assert "signature:         verified\n" in block
    assert '  "symbol": "BTCUSDT",\n' in block
