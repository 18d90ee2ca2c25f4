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

    Raises ``ValueError`` (from :meth:`feed` or :meth:`finish`) for text that is not rows of the
    five expected columns: a truncated stream, a bad id, price or direction.
    """

    def __init__(self) -> None:
        self.triggers: list[Trigger] = []
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
        if len(fields) % COLUMNS:
            raise ValueError(f"COPY rows of {COLUMNS} columns expected, got {text[:80]!r}")
        exchanges = fields[1::COLUMNS]
        symbols = fields[2::COLUMNS]
        if "\\" in text:
            exchanges = [unescape(v) if "\\" in v else v for v in exchanges]
            symbols = [unescape(v) if "\\" in v else v for v in symbols]
        intern = self._names.setdefault
        try:
            self.triggers.extend(
                map(
                    Trigger,
                    map(int, fields[0::COLUMNS]),
                    map(intern, exchanges, exchanges),
                    map(intern, symbols, symbols),
                    map(_DIRECTIONS.__getitem__, fields[3::COLUMNS]),
                    map(Decimal, fields[4::COLUMNS]),
                )
            )
        except KeyError as exc:
            raise ValueError(f"unknown direction {exc.args[0]!r} in the COPY output") from None
        except ArithmeticError:  # decimal.InvalidOperation: a price that is not a number
            raise ValueError(f"a target price that is not a number in {text[:80]!r}") from None
