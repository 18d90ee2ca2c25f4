"""The start-up load's parser: ``COPY (SELECT live alerts) TO STDOUT`` text into Triggers.

Why COPY text rather than a plain ``fetch``: asyncpg decodes NUMERIC from the binary protocol
into ``Decimal`` at about 1 us a value and builds a ``Record`` per row, which made a million
alerts cost seconds before the book saw one. The text form of a row is
``id\\texchange\\tsymbol\\tdirection\\ttarget\\n``; splitting whole chunks at once and mapping
``int``/``Decimal``/``Trigger`` over the columns keeps the per-row Python work to a few C calls,
and parsing each chunk as it arrives overlaps it with the server's scan.

COPY's text format escapes a backslash, tab, newline, carriage return, backspace, form feed and
vertical tab inside a value as two characters (``\\\\``, ``\\t``, ...), so a real tab or newline
always separates fields and rows; only a field holding a backslash needs unescaping (ids,
directions and prices never do).
"""

from __future__ import annotations

import re
from decimal import Decimal

from engine.model import Direction, Trigger

_DIRECTIONS = {d.value: d for d in Direction}
_ESCAPES = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}
_ESCAPED = re.compile(r"\\(.)", re.DOTALL)
COLUMNS = 5


def unescape(value: str) -> str:
    """A COPY text field as the value it encodes (``\\t`` -> tab, ``\\\\`` -> backslash)."""
    return _ESCAPED.sub(lambda m: _ESCAPES.get(m[1], m[1]), value)


class TriggerParser:
    """Accumulates :class:`Trigger`\\ s from COPY text output fed in arbitrary byte chunks.

    Chunks may end anywhere (mid-row, even mid-character): the bytes after the last newline are
    kept for the next chunk. Equal exchange and symbol strings are shared between triggers, so a
    million triggers hold a few distinct strings rather than two million.

    A row that is not a trigger (not five columns, an id or a price that is not a number, an
    unknown direction) never stops the load: it is left out and recorded in :attr:`refused` as
    (its alert id, or None when the id itself is unreadable; the reason), for the quarantine. A
    chunk is parsed whole with a few C calls per row; only a chunk holding such a row is parsed
    again row by row. A price that is a number the book cannot hold (NaN, 1E+30, stored before
    migration 0005) is the book's to refuse (``TriggerBook.bulk_load``). Only a stream that ends
    mid-row raises (``ValueError`` from :meth:`finish`): the COPY itself broke.
    """

    def __init__(self) -> None:
        self.triggers: list[Trigger] = []
        self.refused: list[tuple[int | None, str]] = []
        self._rest = b""
        self._names: dict[str, str] = {}

    def feed(self, data: bytes) -> None:
        """Parse every complete row in ``self``'s leftover bytes plus ``data``."""
        if self._rest:
            data = self._rest + data
        end = data.rfind(b"\n") + 1
        self._rest = data[end:]
        if end:
            self._rows(data[: end - 1].decode())

    def finish(self) -> list[Trigger]:
        """The triggers parsed; raises ``ValueError`` if the stream ended mid-row."""
        if self._rest:
            raise ValueError(f"the COPY output ended mid-row: {self._rest[:80]!r}")
        return self.triggers

    def _rows(self, text: str) -> None:
        fields = text.replace("\n", "\t").split("\t")
        if len(fields) % COLUMNS or len(fields) // COLUMNS != text.count("\n") + 1:
            self._each_row(text)
            return
        exchanges = fields[1::COLUMNS]
        symbols = fields[2::COLUMNS]
        if "\\" in text:
            exchanges = [unescape(v) if "\\" in v else v for v in exchanges]
            symbols = [unescape(v) if "\\" in v else v for v in symbols]
        intern = self._names.setdefault
        try:
            parsed = list(
                map(
                    Trigger,
                    map(int, fields[0::COLUMNS]),
                    map(intern, exchanges, exchanges),
                    map(intern, symbols, symbols),
                    map(_DIRECTIONS.__getitem__, fields[3::COLUMNS]),
                    map(Decimal, fields[4::COLUMNS]),
                )
            )
        except (KeyError, ValueError, ArithmeticError):  # an odd row: find it
            self._each_row(text)
        else:
            self.triggers += parsed

    def _each_row(self, text: str) -> None:
        """The slow path for a chunk holding a row that is not a trigger: row by row."""
        for line in text.split("\n"):
            trigger, reason = self._row(line)
            if trigger is not None:
                self.triggers.append(trigger)
            else:
                try:
                    alert_id: int | None = int(line.split("\t", 1)[0])
                except ValueError:
                    alert_id = None
                self.refused.append((alert_id, f"unreadable live row: {reason}"))

    def _row(self, line: str) -> tuple[Trigger | None, str]:
        """One row as a Trigger, or (None, why not)."""
        fields = line.split("\t")
        if len(fields) != COLUMNS:
            return None, f"{COLUMNS} columns expected, got {len(fields)}: {line[:80]!r}"
        raw_id, exchange, symbol, direction, target = fields
        try:
            trigger_id = int(raw_id)
        except ValueError:
            return None, f"the id {raw_id[:40]!r} is not an id"
        if direction not in _DIRECTIONS:
            return None, f"unknown direction {direction[:40]!r}"
        try:
            price = Decimal(target)
        except ArithmeticError:  # decimal.InvalidOperation
            return None, f"the target price {target[:40]!r} is not a number"
        exchange = unescape(exchange) if "\\" in exchange else exchange
        symbol = unescape(symbol) if "\\" in symbol else symbol
        intern = self._names.setdefault
        trigger = Trigger(
            trigger_id,
            intern(exchange, exchange),
            intern(symbol, symbol),
            _DIRECTIONS[direction],
            price,
        )
        return trigger, ""
