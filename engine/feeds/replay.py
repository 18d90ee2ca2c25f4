"""Replay (built in): plays a recorded tick file, for offline demos and benchmarks.

The file is JSON lines ``{"exchange": "binance", "symbol": "BTCUSDT", "price": "70000.10",
"time": 1700000000000}`` or CSV with the header ``exchange,symbol,price,time`` (chosen by the
``.csv`` suffix). ``time`` is the exchange time in milliseconds; prices are decimal strings (or
JSON numbers, kept exact). Options:

- ``file``: the recording (required when enabled);
- ``speed``: 1.0 plays at the recorded pace, 10.0 ten times faster, 0 as fast as the book takes
  them;
- ``loop``: start again at the end (the times keep their recorded values).

The file is read in 1 MiB chunks through trio's async file API (a worker thread), so the event
loop never blocks on the disk. A bad line (not JSON, a missing field, a price that is not a
positive number) is counted in ``frames_skipped{exchange="replay"}``, logged once per kind, and
skipped; so is a tick out of ``engine.limits`` (kind ``out-of-range``: a price of ``1e30``, a time
of ``10000000000000000`` ms), checked as each line is read (``checks_ticks``). At the end (without
``loop``) the source stays idle, so the engine keeps serving.
"""

from __future__ import annotations

import csv
import logging
import math
import time
from collections.abc import AsyncIterator
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, ClassVar

import msgspec
import trio

from engine.errors import BadFrame, ConfigError
from engine.feeds.bounds import OUT_OF_RANGE, tick_refusal
from engine.feeds.status import FeedState
from engine.metrics import Metrics
from engine.model import Tick
from engine.plugins import FeedSource, hookimpl

log = logging.getLogger(__name__)

CHUNK = 1 << 20
CSV_HEADER = ["exchange", "symbol", "price", "time"]


class _Line(msgspec.Struct):
    exchange: str
    symbol: str
    price: Decimal
    time: int = 0


_decode_line = msgspec.json.Decoder(_Line).decode


def parse_json_line(line: bytes) -> Tick:
    """One JSON line as a tick (``received_ns`` 0). Raises :class:`BadFrame`."""
    try:
        rec = _decode_line(line)
    except msgspec.ValidationError as exc:
        kind = "bad-price" if "decimal" in str(exc) else "bad-field"
        raise BadFrame(kind, line) from exc
    except msgspec.DecodeError:
        raise BadFrame("not-json", line) from None
    return _tick(rec.exchange, rec.symbol, rec.price, rec.time, line)


def parse_csv_row(row: list[str]) -> Tick:
    """One CSV row (exchange, symbol, price, time) as a tick. Raises :class:`BadFrame`."""
    sample = ",".join(row)
    if len(row) != 4:
        raise BadFrame("bad-field", sample)
    exchange, symbol, price_text, time_text = row
    try:
        price = Decimal(price_text.strip())
    except InvalidOperation:
        raise BadFrame("bad-price", sample) from None
    try:
        time_ms = int(time_text) if time_text.strip() else 0
    except ValueError:
        raise BadFrame("bad-field", sample) from None
    return _tick(exchange, symbol, price, time_ms, sample)


def _tick(exchange: str, symbol: str, price: Decimal, time_ms: int, sample: Any) -> Tick:
    if not (price.is_finite() and price > 0):
        raise BadFrame("bad-price", sample)
    if not exchange.strip() or not symbol.strip():
        raise BadFrame("bad-field", sample)
    tick = Tick(exchange.strip(), symbol.strip().upper(), price, time_ms)
    reason = tick_refusal(tick)
    if reason is not None:
        line = sample.decode("utf-8", "replace") if isinstance(sample, bytes) else str(sample)
        raise BadFrame(OUT_OF_RANGE, f"{reason}: {line}")
    return tick


class Replay(FeedSource):
    """Plays ``file`` into the book at ``speed``; see the module docstring."""

    name = "replay"
    options: ClassVar[dict[str, Any]] = {"file": "", "speed": 1.0, "loop": False}
    checks_ticks = True  # each line is checked as it is read (``_tick``)

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        super().__init__(config)
        self.path = Path(str(self.config["file"]))
        self.speed = float(self.config["speed"])
        self.loop = bool(self.config["loop"])
        if self.speed < 0:
            raise ConfigError(f"[feeds.replay] speed must be >= 0, got {self.speed}")

    async def run(
        self,
        ticks: trio.MemorySendChannel[Tick],
        demand: Any,
        state: FeedState,
        metrics: Metrics,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Play the file (once, or forever with ``loop``), then idle until cancelled.

        Raises :class:`ConfigError` before ``started`` when no file is configured or it cannot
        be opened.
        """
        if not str(self.config["file"]):
            raise ConfigError("[feeds.replay] file must name a recording when replay is enabled")
        if not await trio.Path(self.path).is_file():
            raise ConfigError(f"[feeds.replay] file {str(self.path)!r} does not exist")
        state.mark_connected()
        task_status.started()
        logged: set[str] = set()
        seen: set[str] = set()
        while True:
            first_ms: int | None = None
            played = 0
            start = trio.current_time()
            async for item in self._records():
                if isinstance(item, BadFrame):
                    metrics.frames_skipped.inc(exchange=self.name, kind=item.kind)
                    if item.kind not in logged:
                        logged.add(item.kind)
                        log.warning("replay: skipping a bad line (%s): %s", item.kind, item.sample)
                    continue
                if self.speed > 0 and item.exchange_time_ms:
                    if first_ms is None:
                        first_ms = item.exchange_time_ms
                    due = start + (item.exchange_time_ms - first_ms) / 1000 / self.speed
                    if due > trio.current_time():
                        await trio.sleep_until(due)
                now = time.monotonic_ns()
                played += 1
                state.last_frame_ns = now
                if item.symbol not in seen:
                    seen.add(item.symbol)
                    state.symbols = frozenset(seen)
                await ticks.send(
                    Tick(item.exchange, item.symbol, item.price, item.exchange_time_ms, now)
                )
            if not self.loop or not played:
                break  # played once, or nothing playable: looping would only spin
        log.info("replay: %s finished; idle", self.path)
        await trio.sleep(math.inf)

    async def _records(self) -> AsyncIterator[Tick | BadFrame]:
        """Each line of the file as a tick or the :class:`BadFrame` it raised."""
        is_csv = self.path.suffix.lower() == ".csv"
        header_seen = False
        async for line in _lines(self.path):
            if not line.strip() or line.lstrip().startswith(b"#"):
                continue
            try:
                if not is_csv:
                    yield parse_json_line(line)
                    continue
                row = next(csv.reader([line.decode("utf-8", "replace")]))
                if not header_seen:
                    header_seen = True
                    if [c.strip().lower() for c in row] == CSV_HEADER:
                        continue
                yield parse_csv_row(row)
            except BadFrame as exc:
                yield exc


async def _lines(path: Path) -> AsyncIterator[bytes]:
    """The lines of ``path`` (without newlines), read in chunks off the event loop."""
    async with await trio.open_file(path, "rb") as fh:
        rest = b""
        while chunk := await fh.read(CHUNK):
            lines = (rest + chunk).split(b"\n")
            rest = lines.pop()
            for line in lines:
                yield line
        if rest:
            yield rest


@hookimpl
def triggerbook_feed_sources() -> list[type[FeedSource]]:
    """Replay is built in, registered through the same hook a plugin uses."""
    return [Replay]
