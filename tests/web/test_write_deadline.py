"""The write deadline (``[http] send_timeout_s``, web/listener.py): a client that stops reading
cannot hold its connection, its stream's place or the engine's shutdown.

hypercorn shields its socket writes from cancellation; once a client that never reads has
filled the kernel's buffers, a write waits for it for as long as it likes. Every test uses a
real server and a client socket with a tiny receive buffer that never reads, and watches the
server from outside: the log line naming the client, the stream's place, the web's shutdown.
"""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Iterator
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import trio
from trio_websocket import open_websocket_url

from engine.events import FireEvent
from tests.web.conftest import SETTINGS, Api, start_api
from tests.web.test_stream import FAST, _closed, _raw_never_reading, _read_to_end, _url

SHORT = 0.5  # send_timeout_s of the tests that wait for it, seconds
LONG = 3.0  # send_timeout_s of the shutdown test: still waiting when the web is cancelled
SLACK = 1.5  # how late past a deadline the server may act on a loaded machine
# One place per user, so a second stream shows whether the first still holds its place; room
# for every fire, so the stream never drops the client itself (4429): only the deadline can.
SETTINGS_ONE = replace(FAST, stream_per_user=1, stream_buffer=100_000)
CLOSED_LOG = "a write waited"


def _env(send_timeout_s: float) -> dict[str, str]:
    """The environment that sets ``[http] send_timeout_s`` (``run_web`` passes it on)."""
    return {"TRIGGERBOOK_HTTP_SEND_TIMEOUT_S": str(send_timeout_s)}


class _Closes(logging.Handler):
    """The listener's log lines of connections closed at the write deadline: each names the
    client's address, which :meth:`wait` waits for."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []
        self._changed = trio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if CLOSED_LOG in (message := record.getMessage()):
            self.lines.append(message)
            self._changed.set()

    def closed(self, client: trio.SocketStream) -> bool:
        host, port = client.socket.getsockname()[:2]
        return any(f" {host}:{port}:" in line for line in self.lines)

    async def wait(self, client: trio.SocketStream) -> float:
        """Seconds until ``client``'s connection is closed at the write deadline."""
        start = trio.current_time()
        while not self.closed(client):
            self._changed = trio.Event()
            await self._changed.wait()
        return trio.current_time() - start


@pytest.fixture
def closes() -> Iterator[_Closes]:
    handler = _Closes()
    logger = logging.getLogger("web.listener")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


def _fires(owner_id: int, start: int, count: int) -> list[FireEvent]:
    digits = "1" * 200  # ~0.6 KB a message
    return [
        FireEvent(
            alert_id,
            owner_id,
            "binance",
            "BTCUSDT",
            "above",
            Decimal(f"70000.{digits}"),
            Decimal(f"70001.{digits}"),
            1_700_000_000_000 + alert_id,
        )
        for alert_id in range(start, start + count)
    ]


async def _flooded_stream(api: Api, username: str) -> tuple[str, trio.SocketStream, Any]:
    """A stream of ``username`` that never reads, sent ~2 MB of fires: far more than the
    kernel's buffers hold, so the server's write to it is waiting. Its token, socket, wsproto."""
    headers = await api.user(username)
    token = headers["Authorization"].removeprefix("Bearer ")
    owner = (await api.client.get("/api/users/me", headers=headers)).json()["id"]
    stream, raw = await _raw_never_reading(api, token, [])
    await trio.sleep(0.1)  # admitted: its auth and subscribe have been read
    for batch in range(40):
        api.ctx.fires.publish(_fires(owner, batch * 100 + 1, 100))
        await trio.sleep(0.005)
    await trio.sleep(0.05)
    return token, stream, raw


async def _refused_as_second(api: Api, token: str) -> None:
    async with open_websocket_url(_url(api)) as ws:
        await ws.send_message(json.dumps({"type": "auth", "token": token}))
        code, _ = await _closed(ws)
    assert code == 4408, "the flooded stream no longer held its place"


async def test_a_stream_that_stops_reading_is_closed_at_the_write_deadline_and_frees_its_place(
    store: Any, tmp_path: Path, closes: _Closes
) -> None:
    env = _env(SHORT)
    with trio.fail_after(60) as limit:
        async with trio.open_nursery() as web:
            async with start_api(store, web, tmp_path, env, settings=SETTINGS_ONE) as api:
                token, stream, raw = await _flooded_stream(api, "nora")
                try:
                    with trio.fail_after(SHORT + SLACK):
                        await _refused_as_second(api, token)  # the write waits: place held
                        held = await closes.wait(stream)
                    assert held <= SHORT + SLACK
                    async with open_websocket_url(_url(api)) as again:  # its place is free
                        await again.send_message(json.dumps({"type": "auth", "token": token}))
                        await again.send_message(json.dumps({"type": "ping"}))
                        assert json.loads(await again.get_message()) == {"type": "pong"}
                    total, _closes = await _read_to_end(stream, raw)
                    assert total < 1_000_000, "the server kept writing after the deadline"
                finally:
                    await stream.aclose()
            start = trio.current_time()
            limit.deadline = start + SETTINGS.grace_s + SLACK
            web.cancel_scope.cancel()
    assert trio.current_time() - start <= SETTINGS.grace_s + SLACK  # nothing held the shutdown


async def test_shutdown_with_a_stream_that_stops_reading_ends_within_grace_and_the_deadline(
    store: Any, tmp_path: Path, closes: _Closes
) -> None:
    env = _env(LONG)
    with trio.fail_after(60) as limit:
        async with trio.open_nursery() as web:
            async with start_api(store, web, tmp_path, env, settings=SETTINGS_ONE) as api:
                token, stream, _raw = await _flooded_stream(api, "olga")
                await _refused_as_second(api, token)
            assert not closes.closed(stream)  # its write still waits
            start = trio.current_time()
            limit.deadline = start + SETTINGS.grace_s + LONG + SLACK
            web.cancel_scope.cancel()
    try:
        assert trio.current_time() - start <= SETTINGS.grace_s + LONG + SLACK
        assert closes.closed(stream)  # the deadline, not the client, ended the write
    finally:
        await stream.aclose()


async def test_a_plain_client_that_never_reads_its_responses_is_closed_at_the_write_deadline(
    store: Any,
    nursery: trio.Nursery,
    tmp_path: Path,
    closes: _Closes,
) -> None:
    env = _env(SHORT)
    async with start_api(store, nursery, tmp_path, env) as api:
        size = len((await api.client.get("/openapi.json")).content)
        requests = 40  # pipelined, ~2 MB of answers
        sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
        await sock.connect(("127.0.0.1", api.port))
        stream = trio.SocketStream(sock)
        try:
            with trio.fail_after(SHORT + SLACK + 2):
                await stream.send_all(b"GET /openapi.json HTTP/1.1\r\nHost: x\r\n\r\n" * requests)
                held = await closes.wait(stream)
            assert held <= SHORT + SLACK + 1
            total = 0
            with trio.fail_after(10):
                try:
                    while data := await stream.receive_some(65536):
                        total += len(data)
                except trio.BrokenResourceError:
                    pass
            assert total < requests * size / 2, (total, requests * size)
        finally:
            await stream.aclose()
