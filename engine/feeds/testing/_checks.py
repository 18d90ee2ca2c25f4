"""Pure checks of a plugin's requests, heartbeats and rejections, read by the author's server side.

:func:`check_symbols_per_message` (no frame over ``symbols_per_message``), :func:`check_heartbeat`
(the heartbeat rules of ``docs/plugins.md``), :func:`check_rejection` (an error reply maps back
to its request id or its symbols). No socket: the exchange's frames are read by a ``read_request``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from engine.errors import SubscriptionRejected
from engine.feeds.testing._protocol import ReadRequest, Request
from engine.plugins.exchange import Exchange


def _made_up_symbols(count: int) -> list[str]:
    return [f"K{i:04d}-USD" for i in range(count)]


def check_symbols_per_message(
    exchange: Exchange, read_request: ReadRequest, symbols: Sequence[str] | None = None
) -> list[Request]:
    """Feed ``subscribe_request`` and ``unsubscribe_request`` more symbols than
    ``symbols_per_message`` allows and assert, reading each frame with ``read_request`` (the
    server side of the protocol, as for :class:`ExchangeServer`), that no frame names more than
    ``symbols_per_message`` symbols, that the frames together name every symbol, and that they
    are subscribes and unsubscribes. ``symbols`` default to ``2 * symbols_per_message + 1``
    made-up ones (``K0000-USD``...); give real ones when ``read_request`` answers only those.
    Returns the requests read. Raises ``AssertionError`` naming the first frame over the limit.
    """
    limit = exchange.symbols_per_message
    assert limit >= 1, f"symbols_per_message must be >= 1, got {limit}"
    wanted = list(symbols) if symbols is not None else _made_up_symbols(2 * limit + 1)
    assert len(wanted) > limit, f"give more than {limit} symbols to check the limit"
    requests = []
    for op, frames in (
        ("subscribe", exchange.subscribe_request(wanted, 1)),
        ("unsubscribe", exchange.unsubscribe_request(wanted, 2)),
    ):
        named: list[str] = []
        for frame in frames:
            request = read_request(frame)
            assert request is not None, f"read_request made nothing of {frame[:200]!r}"
            assert request.op == op, f"{op} frame read as {request.op!r}: {frame[:200]!r}"
            assert len(request.symbols) <= limit, (
                f"a {op} frame names {len(request.symbols)} symbols, more than "
                f"symbols_per_message = {limit}: {frame[:200]!r}"
            )
            named.extend(request.symbols)
            requests.append(request)
        assert sorted(named) == sorted(wanted), f"{op} frames name {len(named)} symbols, not all"
    return requests


def check_heartbeat(
    exchange: Exchange,
    replies: Sequence[str | bytes] = (),
    *,
    exchange_sends_every_s: float | None = None,
) -> str | bytes | None:
    """Assert the heartbeat rules of ``docs/plugins.md``: with ``heartbeat_interval_s`` set,
    ``heartbeat_frame()`` is a non-empty frame, and each of ``replies`` (the exchange's answers
    to it, e.g. ``"pong"``) parses as a control frame (``[]``, no :class:`BadFrame`): every
    frame counts for staleness, so an answer is what keeps a quiet connection fresh. Then the
    answer (or what the exchange sends by itself to a quiet subscribed connection every
    ``exchange_sends_every_s``, such as Kraken's heartbeat channel) must come more often than
    ``stale_after_s``. Without an interval the runner never sends a heartbeat, so
    ``heartbeat_frame()`` must be None. Returns the frame.
    """
    frame = exchange.heartbeat_frame()
    interval = exchange.heartbeat_interval_s
    if interval is None:
        assert frame is None, "heartbeat_frame() is never sent: set heartbeat_interval_s"
        assert not replies, "replies to a heartbeat that is never sent"
        return None
    assert isinstance(frame, str | bytes) and frame, f"heartbeat_frame() gave {frame!r}"
    assert interval > 0, f"heartbeat_interval_s must be > 0, got {interval}"
    freshest = min(interval, exchange_sends_every_s or math.inf)
    assert freshest < exchange.stale_after_s, (
        f"nothing arrives more often than every {freshest} s, but stale_after_s is "
        f"{exchange.stale_after_s}: a quiet connection would look stale between heartbeats"
    )
    for reply in replies:
        assert exchange.parse(reply, 0) == [], f"the reply {reply!r} must be a control frame"
    return frame


def check_rejection(
    exchange: Exchange,
    read_request: ReadRequest,
    symbols: Sequence[str],
    *,
    request_id: int = 7,
    anonymous: bool = False,
) -> list[SubscriptionRejected]:
    """Subscribe ``symbols`` as request ``request_id``, let ``read_request`` (a server side that
    refuses some of them) answer, and assert the error replies raise
    :class:`SubscriptionRejected` that the runner can map back: with ``request_id`` (an
    exchange that echoes ids) or naming symbols of the request. A different id is always wrong.
    ``anonymous=True`` is for an exchange whose error replies name neither (Finnhub): then only
    the exception is asserted. Returns the rejections.
    """
    rejections = []
    for frame in exchange.subscribe_request(symbols, request_id):
        request = read_request(frame)
        for reply in request.replies if request is not None else ():
            try:
                exchange.parse(reply, 0)
            except SubscriptionRejected as exc:
                rejections.append(exc)
    assert rejections, "no reply raised SubscriptionRejected"
    for exc in rejections:
        assert exc.request_id in (None, request_id), f"{exc} answers request {request_id}"
        named = exc.request_id == request_id or (exc.symbols and set(exc.symbols) <= set(symbols))
        assert anonymous or named, f"{exc} names neither request {request_id} nor its symbols"
    return rejections
