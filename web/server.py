"""Serve the API with hypercorn's trio worker inside the engine's nursery.

``run_web`` binds ``config.http.host:port`` (port 0 picks a free one), reports the bound port
through ``task_status.started(port)`` and serves until cancelled. Cancellation is graceful:
the server stops accepting, in-flight requests get ``WebSettings.grace_s`` to finish, then
whatever is left is cancelled.

Connections are bounded by ``[http]`` (``engine.config.HttpConfig``): hypercorn's own settings
where it has one (idle keep-alive, the head's size), ``web/listener.py`` for the rest (the
connection cap, the first head's deadline), and the body deadline in both request paths: the
Quart app's ``BODY_TIMEOUT`` (``web/http.py`` reads bodies through it) and the fast lane's
receive loop (``web/fastlane.py``), each answering 408.
"""

from __future__ import annotations

import logging

import trio
from hypercorn.config import Config as HypercornConfig

from engine.config import HttpConfig
from engine.parts import Parts
from web.app import create_app
from web.auth import resolve_secret
from web.context import WebSettings
from web.listener import fit_fd_limit, serve
from web.stream import run_prices

log = logging.getLogger(__name__)

WS_PING_S = 15.0  # hypercorn pings every WebSocket (/api/stream) this often; off by default
MAX_HEAD = 16 * 1024  # bytes of request line and headers (hypercorn's h11 answers 431 past it)
STREAM_SHARE = 0.8  # of [http] max_connections, the most /api/stream may hold at once


def hypercorn_config(
    host: str, port: int, grace_s: float, http: HttpConfig | None = None
) -> HypercornConfig:
    """How the engine runs hypercorn (also the API benchmark's ceiling server): one bind, no
    access log, errors to our logger, a deep accept backlog, and ``http``'s (the defaults when
    None) idle keep-alive. A request head is capped at h11's 16 KiB (431 past it); there is no
    per-read timeout, which would close a quiet WebSocket: deadlines are per head and body."""
    http = http or HttpConfig(host, port)
    hconfig = HypercornConfig()
    hconfig.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    hconfig.graceful_timeout = grace_s
    hconfig.accesslog = None
    hconfig.errorlog = log
    hconfig.keep_alive_timeout = http.keep_alive_s
    hconfig.h11_max_incomplete_size = MAX_HEAD
    hconfig.read_timeout = None
    hconfig.websocket_ping_interval = WS_PING_S
    hconfig.backlog = 1024
    return hconfig


def bound_port(binds: list[str]) -> int:
    """The port of hypercorn's first bind (``http://127.0.0.1:41234`` -> 41234)."""
    return int(binds[0].rsplit(":", 1)[1])


async def run_web(
    ctx: Parts,
    *,
    settings: WebSettings | None = None,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the API until cancelled; ``task_status.started`` gets the bound port.

    Raises ``OSError`` when the address cannot be bound (a port in use) and whatever reading
    or creating the generated auth secret raises.
    """
    settings = settings or WebSettings()
    secret = await resolve_secret(ctx.config)
    app = create_app(ctx, secret, settings)
    http = ctx.config.http
    app.quart.config["BODY_TIMEOUT"] = http.body_timeout_s  # Quart answers 408 past it
    state = app.state
    hconfig = hypercorn_config(http.host, http.port, settings.grace_s, http)
    max_connections = fit_fd_limit(http.max_connections)
    # Streams live long: they may hold at most STREAM_SHARE of the connections, so a full
    # house of streams never locks people out of the API (a sign-in, a create, /healthz).
    app.streams.total = min(app.streams.total, int(max_connections * STREAM_SHARE))
    shutdown = trio.Event()

    async with trio.open_nursery() as nursery:
        # The server runs shielded so that, once we are cancelled, it can drain for a grace
        # period; the deadline set below bounds that drain.
        serve_scope = trio.CancelScope(shield=True)

        async def serve_shielded(*, task_status: trio.TaskStatus[list[str]]) -> None:
            # The batchers outlive the server's drain: requests still in flight during the grace
            # period may create or list alerts; they stop once the server has.
            with serve_scope:
                async with trio.open_nursery() as batching:
                    await batching.start(state.creates.run)
                    await batching.start(state.lists.run)
                    await batching.start(
                        run_prices,
                        app.streams,
                        ctx.prices,
                        settings.stream_interval_s,
                        settings.stream_busy_interval_s,
                    )
                    await serve(
                        app.asgi,
                        hconfig,
                        max_connections=max_connections,
                        head_timeout_s=http.head_timeout_s,
                        send_timeout_s=http.send_timeout_s,
                        shutdown_trigger=shutdown.wait,
                        task_status=task_status,
                    )
                    batching.cancel_scope.cancel()

        binds: list[str] = await nursery.start(serve_shielded)
        port = bound_port(binds)
        log.info("web: serving on %s", binds[0])
        task_status.started(port)
        try:
            await trio.sleep_forever()
        finally:
            state.creates.stop_taking()  # first: new creates get 503, queued ones still commit
            app.streams.close_all()  # streams end with 1001 now, not cut at the drain's end
            shutdown.set()
            serve_scope.deadline = trio.current_time() + settings.grace_s + 1.0
