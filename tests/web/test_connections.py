"""Connections under abuse (issue 15, finding 1): deadlines for the head, the body and idle
keep-alive on both request paths, the connection cap, the open-file limit (web/listener.py).

Every test talks to the real server over real sockets (``trio.open_tcp_stream``) with the
deadlines set short in its configuration, and checks when the server answers or closes.
"""

from __future__ import annotations

import resource
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import h11
import pytest
import trio

from engine.config import load_config
from engine.errors import ConfigError
from tests.web.conftest import Api, start_api
from web.listener import FD_RESERVE, fit_fd_limit, plan_fd_limit

SHORT = 0.5  # every deadline of the short configuration, seconds
SLACK = 1.0  # how late past a deadline the server may act on a loaded machine


def _env(**keys: object) -> dict[str, str]:
    return {f"TRIGGERBOOK_HTTP_{name.upper()}": str(value) for name, value in keys.items()}


SHORT_ENV = _env(head_timeout_s=SHORT, body_timeout_s=SHORT, keep_alive_s=SHORT)


@asynccontextmanager
async def server(
    store: Any, nursery: trio.Nursery, tmp_path: Path, environ: dict[str, str]
) -> AsyncIterator[Api]:
    async with start_api(store, nursery, tmp_path, environ) as api:
        yield api


async def _closed_after(stream: trio.SocketStream) -> float:
    """Seconds until the server closes ``stream``, reading (and dropping) what it sends."""
    start = trio.current_time()
    while await stream.receive_some(65536):
        pass
    return trio.current_time() - start


async def _response(stream: trio.SocketStream, conn: h11.Connection) -> h11.Response:
    """The next whole response on ``stream`` (its body read and dropped)."""
    head = None
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(await stream.receive_some(65536))
        elif isinstance(event, h11.Response):
            head = event
        elif isinstance(event, h11.EndOfMessage):
            assert head is not None
            return head
        elif isinstance(event, h11.ConnectionClosed):
            raise AssertionError("closed before a whole response")


async def _get(stream: trio.SocketStream, conn: h11.Connection, path: str) -> int:
    """``GET path`` on a keep-alive connection; the status."""
    if conn.our_state is h11.DONE:
        conn.start_next_cycle()
    request = h11.Request(method="GET", target=path, headers=[("host", "localhost")])
    await stream.send_all(conn.send(request) + conn.send(h11.EndOfMessage()))
    return (await _response(stream, conn)).status_code


async def test_a_connection_that_sends_nothing_is_closed_at_the_head_deadline(
    store: Any, nursery: trio.Nursery, tmp_path: Path
) -> None:
    async with server(store, nursery, tmp_path, SHORT_ENV) as api:
        with trio.fail_after(SHORT + SLACK + 2):
            stream = await trio.open_tcp_stream("127.0.0.1", api.port)
            held = await _closed_after(stream)
        assert SHORT * 0.8 <= held <= SHORT + SLACK


async def test_half_a_request_line_is_closed_at_the_head_deadline(
    store: Any, nursery: trio.Nursery, tmp_path: Path
) -> None:
    async with server(store, nursery, tmp_path, SHORT_ENV) as api:
        with trio.fail_after(SHORT + SLACK + 2):
            stream = await trio.open_tcp_stream("127.0.0.1", api.port)
            start = trio.current_time()
            await stream.send_all(b"GET /hea")
            await trio.sleep(SHORT / 2)
            await stream.send_all(b"lthz HTTP/1.1\r\nHost: x\r\n")  # the head never ends
            await _closed_after(stream)
            held = trio.current_time() - start
        assert SHORT * 0.8 <= held <= SHORT + SLACK


async def _slow_body(port: int, path: str, headers: bytes) -> tuple[bytes, float]:
    """Send a head declaring 1,000 bytes of JSON and 1 byte of it; what comes back before the
    server closes, and when it closed."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    start = trio.current_time()
    await stream.send_all(
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n".encode()
        + headers
        + b"Content-Length: 1000\r\n\r\n{"
    )
    got = b""
    while chunk := await stream.receive_some(65536):
        got += chunk
    return got, trio.current_time() - start


async def test_a_slow_body_on_the_quart_path_gets_408_at_the_body_deadline(
    store: Any, nursery: trio.Nursery, tmp_path: Path
) -> None:
    async with server(store, nursery, tmp_path, SHORT_ENV) as api:
        with trio.fail_after(SHORT + SLACK + 5):
            got, held = await _slow_body(api.port, "/api/auth/login", b"")
        assert got.startswith(b"HTTP/1.1 408 "), got
        assert b"connection: close" in got.lower()
        assert b"application/problem+json" in got
        assert SHORT * 0.8 <= held <= SHORT + SLACK


async def test_a_slow_body_on_the_fast_lane_gets_408_at_the_body_deadline(
    store: Any, nursery: trio.Nursery, tmp_path: Path
) -> None:
    async with server(store, nursery, tmp_path, SHORT_ENV) as api:
        with trio.fail_after(30):
            auth = (await api.user("alice"))["Authorization"]
        with trio.fail_after(SHORT + SLACK + 5):
            got, held = await _slow_body(
                api.port, "/api/alerts", f"Authorization: {auth}\r\n".encode()
            )
        assert got.startswith(b"HTTP/1.1 408 "), got
        assert b"connection: close" in got.lower()
        assert SHORT * 0.8 <= held <= SHORT + SLACK
        assert await api.drain() == []  # nothing reached the book


async def test_an_idle_keep_alive_connection_is_closed_after_keep_alive_s(
    store: Any, nursery: trio.Nursery, tmp_path: Path
) -> None:
    env = _env(head_timeout_s=5.0, keep_alive_s=SHORT)  # the first head's deadline is not it
    async with server(store, nursery, tmp_path, env) as api:
        with trio.fail_after(SHORT + SLACK + 5):
            stream = await trio.open_tcp_stream("127.0.0.1", api.port)
            conn = h11.Connection(h11.CLIENT)
            assert await _get(stream, conn, "/healthz") == 200
            assert await _get(stream, conn, "/healthz") == 200  # kept alive between them
            held = await _closed_after(stream)
        assert SHORT * 0.8 <= held <= SHORT + SLACK


async def _is_closed(stream: trio.SocketStream) -> bool:
    with trio.move_on_after(0.05):
        return await stream.receive_some(65536) == b""
    return False


async def test_a_flood_past_the_cap_sheds_silent_connections_and_established_ones_are_served(
    store: Any, nursery: trio.Nursery, tmp_path: Path
) -> None:
    cap = 20
    env = _env(max_connections=cap, head_timeout_s=30.0, keep_alive_s=30.0)
    async with server(store, nursery, tmp_path, env) as api:
        with trio.fail_after(20):
            established = await trio.open_tcp_stream("127.0.0.1", api.port)
            kept = h11.Connection(h11.CLIENT)
            assert await _get(established, kept, "/healthz") == 200
            await trio.sleep(0.2)  # the fixture's own client has gone: its slot is free
            flood = [await trio.open_tcp_stream("127.0.0.1", api.port) for _ in range(cap + 10)]
            await trio.sleep(0.5)

            # the cap holds: the oldest silent connections were closed to let the newer in
            still_open = [s for s in flood if not await _is_closed(s)]
            assert len(still_open) <= cap - 1
            assert not await _is_closed(flood[-1])
            assert await _get(established, kept, "/healthz") == 200  # served throughout

            newcomer = await trio.open_tcp_stream("127.0.0.1", api.port)
            assert await _get(newcomer, h11.Connection(h11.CLIENT), "/healthz") == 200
            for stream in flood:
                await stream.aclose()
            assert await _get(established, kept, "/healthz") == 200


async def test_past_the_cap_new_connections_wait_for_a_slot(
    store: Any, nursery: trio.Nursery, tmp_path: Path
) -> None:
    cap = 3
    env = _env(max_connections=cap, head_timeout_s=30.0, keep_alive_s=30.0)
    async with server(store, nursery, tmp_path, env) as api:
        with trio.fail_after(20):
            await trio.sleep(0.2)  # the fixture's own client has gone: its slot is free
            served = [await trio.open_tcp_stream("127.0.0.1", api.port) for _ in range(cap)]
            conns = [h11.Connection(h11.CLIENT) for _ in served]
            for stream, conn in zip(served, conns, strict=True):
                assert await _get(stream, conn, "/healthz") == 200  # none is shed: all served

            newcomer = await trio.open_tcp_stream("127.0.0.1", api.port)  # in the backlog
            fresh = h11.Connection(h11.CLIENT)
            with trio.move_on_after(1.0) as waited:
                await _get(newcomer, fresh, "/healthz")
            assert waited.cancelled_caught, "a connection past the cap was served"
            for stream, conn in zip(served, conns, strict=True):
                assert await _get(stream, conn, "/healthz") == 200  # still served

            await served[0].aclose()
            assert (await _response(newcomer, fresh)).status_code == 200  # its slot, then


def test_the_fd_plan_fits_the_cap_under_the_hard_limit() -> None:
    inf = resource.RLIM_INFINITY
    assert plan_fd_limit(1000, 1024, 20000) == (1000 + FD_RESERVE, 1000)
    assert plan_fd_limit(1000, 4096, 20000) == (4096, 1000)  # never lowered
    assert plan_fd_limit(1000, 1024, inf) == (1000 + FD_RESERVE, 1000)
    assert plan_fd_limit(1000, 256, 800) == (800, 800 - FD_RESERVE)  # the hard limit wins
    assert plan_fd_limit(1000, 64, 100) == (100, 1)
    assert plan_fd_limit(1000, inf, inf) == (inf, 1000)


def test_the_fd_limit_is_raised_at_start(caplog: pytest.LogCaptureFixture) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 700
    if hard != resource.RLIM_INFINITY and hard < want + FD_RESERVE:
        pytest.skip(f"the hard open-file limit ({hard}) is below {want + FD_RESERVE}")
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(512, want // 2), hard))
        caplog.set_level("INFO", logger="web.listener")
        assert fit_fd_limit(want) == want
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == want + FD_RESERVE
        assert "at most 700 connections" in caplog.text
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_the_http_keys_are_checked(tmp_path: Path) -> None:
    (tmp_path / "c.toml").write_text("[http]\nmax_connections = 50\nkeep_alive_s = 2\n")
    http = load_config(tmp_path / "c.toml", environ={}).http
    assert (http.max_connections, http.keep_alive_s, http.head_timeout_s) == (50, 2.0, 10.0)
    assert http.send_timeout_s == 10.0
    shorter = load_config(tmp_path / "c.toml", environ=_env(send_timeout_s=2.5)).http
    assert shorter.send_timeout_s == 2.5
    for key, value in (
        ("head_timeout_s", "0"),
        ("body_timeout_s", "nan"),
        ("send_timeout_s", "0"),
        ("send_timeout_s", "-1"),
        ("max_connections", "0"),
    ):
        with pytest.raises(ConfigError, match=key):
            load_config(tmp_path / "c.toml", environ=_env(**{key: value}))
