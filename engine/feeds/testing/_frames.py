"""Recorded frames and the pure parse checks: what a plugin makes of its recording.

:func:`load_frames` reads a recording (one frame per line, ``#`` comments); :func:`check_parse`
asserts the exact ticks; :func:`check_bad_frames` that bad frames raise :class:`BadFrame`;
:func:`frames_by_symbol` groups data frames for the exchange servers to replay.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import Decimal
from pathlib import Path

from engine.errors import BadFrame, FeedClosed, SubscriptionRejected
from engine.model import Tick
from engine.plugins.exchange import Exchange


def load_frames(path: str | Path) -> list[str]:
    """The frames of a recording: one raw frame per line; blank lines and ``#`` lines skipped."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return [line for line in lines if line.strip() and not line.lstrip().startswith("#")]


ExpectedTick = Tick | tuple[str, str | Decimal, int]


def _as_key(tick: ExpectedTick) -> tuple[str, Decimal, int]:
    if isinstance(tick, Tick):
        return (tick.symbol, tick.price, tick.exchange_time_ms)
    symbol, price, time_ms = tick
    return (symbol, Decimal(price), time_ms)


def check_parse(
    exchange: Exchange, frames: str | Path | Sequence[str], expected: Iterable[ExpectedTick]
) -> list[Tick]:
    """Parse ``frames`` (a path or a list) and assert the ticks are exactly ``expected``.

    ``expected`` items are ticks or ``(symbol, price, exchange_time_ms)`` tuples; prices are
    compared as Decimals with their exponent (``"0.0010"`` is not ``"0.001"``), exchange names
    must be the exchange's. Returns the ticks. Raises ``AssertionError`` naming the first
    difference.
    """
    if isinstance(frames, str | Path) and not str(frames).lstrip().startswith(("{", "[")):
        frames = load_frames(frames)
    ticks = [t for frame in frames for t in exchange.parse(frame, 0)]
    for tick in ticks:
        assert tick.exchange == exchange.name, f"tick names exchange {tick.exchange!r}: {tick}"
        assert isinstance(tick.price, Decimal), f"price is not a Decimal: {tick}"
    got = [(t.symbol, t.price, t.exchange_time_ms) for t in ticks]
    want = [_as_key(t) for t in expected]
    for i, (g, w) in enumerate(zip(got, want, strict=False)):
        assert g == w and str(g[1]) == str(w[1]), f"tick {i}: got {g}, expected {w}"
    assert len(got) == len(want), f"got {len(got)} ticks, expected {len(want)}: {got}"
    return ticks


def check_bad_frames(exchange: Exchange, frames: Sequence[str | bytes]) -> list[str]:
    """Assert each frame raises :class:`BadFrame`; returns their ``kind`` values."""
    kinds = []
    for frame in frames:
        try:
            exchange.parse(frame, 0)
        except BadFrame as exc:
            kinds.append(exc.kind)
        else:
            raise AssertionError(f"parse accepted a bad frame: {frame!r}")
    return kinds


def frames_by_symbol(exchange: Exchange, frames: Sequence[str]) -> dict[str, list[str]]:
    """Data frames grouped by the symbol of their first tick; control frames (and frames that
    raise: error replies, notices) are dropped."""
    out: dict[str, list[str]] = {}
    for frame in frames:
        try:
            ticks = exchange.parse(frame, 0)
        except (BadFrame, SubscriptionRejected, FeedClosed):
            continue  # a recorded error reply or notice: not data
        if ticks:
            out.setdefault(ticks[0].symbol, []).append(frame)
    return out
