"""A plugin's exchange server for operators (``triggerbook plugins serve NAME``).

:func:`serve_plugin` serves an exchange's protocol with no ``read_request`` to write
(:func:`infer_read_request`), replaying its recording (:func:`find_frames`) and sending new
trades (:class:`TradeMaker`), to try the plugin against the real engine.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Sequence
from pathlib import Path

import trio
import trio_websocket

from engine.feeds.testing._frames import frames_by_symbol
from engine.feeds.testing._protocol import infer_read_request
from engine.feeds.testing._server import ExchangeServer
from engine.feeds.testing._trades import TradeMaker
from engine.plugins.exchange import Exchange


def find_frames(exchange: Exchange) -> Path | None:
    """The recording a plugin keeps beside its package, ``tests/data/<name>.jsonl`` (found from
    an in-tree or editable install), or None."""
    module = sys.modules.get(type(exchange).__module__)
    start = Path(getattr(module, "__file__", "") or ".").resolve().parent
    for folder in (start, *start.parents[:3]):
        candidate = folder / "tests" / "data" / f"{exchange.name}.jsonl"
        if candidate.is_file():
            return candidate
    return None


async def serve_plugin(
    exchange: Exchange,
    frames: Sequence[str],
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    interval_s: float = 1.0,
    pong: str | None = None,
    task_status: trio.TaskStatus[ExchangeServer] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``exchange``'s protocol on ``host:port`` until cancelled, for trying a plugin
    against the real engine: requests are read by :func:`infer_read_request`; a subscribe
    replays the recorded ``frames`` of its symbols, then every ``interval_s`` (0: never) each
    subscribed symbol gets a new trade from :class:`TradeMaker`. ``task_status.started`` gets
    the :class:`ExchangeServer` (its ``url`` is what ``[feeds.<name>] url`` takes).
    """
    read = infer_read_request(exchange, pong=pong)
    maker = TradeMaker(exchange, frames)
    server = ExchangeServer(read, frames_by_symbol(exchange, frames), host=host, port=port)
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        if interval_s > 0:
            nursery.start_soon(_generate, server, maker, interval_s)
        task_status.started(server)


async def _generate(server: ExchangeServer, maker: TradeMaker, interval_s: float) -> None:
    while True:
        await trio.sleep(interval_s)
        for conn in server.live:
            for symbol in sorted(conn.subscribed):
                frame = maker.trade(symbol)
                if frame is None:
                    continue
                with contextlib.suppress(trio_websocket.ConnectionClosed):
                    await conn.ws.send_message(frame)
