"""The start-up load's COPY text parser: any chunking, escapes, and every malformed input."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.model import Direction, Trigger
from engine.store.live import TriggerParser, unescape

ROWS = [
    Trigger(1, "binance", "BTCUSDT", Direction.ABOVE, Decimal("70000.10")),
    Trigger(2, "binance", "ETHUSDT", Direction.BELOW, Decimal("0.000001")),
    Trigger(9_000_000_000, "kraken", "XBT/EUR", Direction.ABOVE, Decimal("1E+3")),
    Trigger(4, "okx", "BTC-USDT", Direction.BELOW, Decimal("12")),
]


def _escape(value: str) -> str:
    """What Postgres's COPY TO writes for a text value (CopyAttributeOutText)."""
    out = value.replace("\\", "\\\\")
    for char, code in (("\b", "b"), ("\f", "f"), ("\n", "n"), ("\r", "r"), ("\t", "t")):
        out = out.replace(char, "\\" + code)
    return out.replace("\v", "\\v")


def _copy_text(triggers: list[Trigger]) -> bytes:
    lines = (
        f"{t.id}\t{_escape(t.exchange)}\t{_escape(t.symbol)}\t{t.direction.value}\t{t.target}\n"
        for t in triggers
    )
    return "".join(lines).encode()


def _parse(chunks: list[bytes]) -> list[Trigger]:
    parser = TriggerParser()
    for chunk in chunks:
        parser.feed(chunk)
    return parser.finish()


def test_rows_become_triggers_with_shared_strings() -> None:
    triggers = _parse([_copy_text(ROWS)])
    assert triggers == ROWS
    assert triggers[0].exchange is triggers[1].exchange
    assert isinstance(triggers[0].direction, Direction) and triggers[2].target == 1000


def test_no_rows_and_empty_chunks() -> None:
    assert _parse([]) == []
    assert _parse([b"", b""]) == []


@given(st.lists(st.integers(min_value=0, max_value=400), max_size=12))
def test_any_chunking_gives_the_same_triggers(cuts: list[int]) -> None:
    data = _copy_text([*ROWS, Trigger(5, "bybit", "Ünï€ode", Direction.ABOVE, Decimal("3.5"))])
    bounds = sorted({min(c, len(data)) for c in cuts})
    chunks = [data[a:b] for a, b in zip([0, *bounds], [*bounds, len(data)], strict=True)]
    assert _parse(chunks) == _parse([data])


@given(st.text(alphabet=st.sampled_from("ab\\\t\n\r\b\f\vé"), max_size=12))
def test_escaped_values_come_back_unchanged(symbol: str) -> None:
    row = Trigger(7, "ex\\change", symbol, Direction.BELOW, Decimal("1.5"))
    assert _parse([_copy_text([row, *ROWS])]) == [row, *ROWS]
    assert unescape(_escape(symbol)) == symbol


def test_a_stream_that_ends_mid_row_is_refused() -> None:
    parser = TriggerParser()
    parser.feed(_copy_text(ROWS)[:-3])
    with pytest.raises(ValueError, match="ended mid-row"):
        parser.finish()


@pytest.mark.parametrize(
    ("text", "refused_id", "message"),
    [
        (b"1\tbinance\tBTCUSDT\tabove\n", 1, "5 columns"),
        (b"1\tbinance\tBTCUSDT\tabove\t10\textra\n", 1, "5 columns"),
        (b"1\tbinance\tBTCUSDT\tsideways\t10\n", 1, "unknown direction 'sideways'"),
        (b"1\tbinance\tBTCUSDT\tabove\tten\n", 1, "not a number"),
        (b"one\tbinance\tBTCUSDT\tabove\t10\n", None, "not an id"),
    ],
)
def test_a_malformed_row_is_refused_and_its_neighbours_kept(
    text: bytes, refused_id: int | None, message: str
) -> None:
    """One odd row never stops the load: it goes to ``refused`` with its id (when it has one)
    and the reason; every other row of its chunk is parsed."""
    parser = TriggerParser()
    parser.feed(_copy_text(ROWS[:2]) + text + _copy_text(ROWS[2:]))
    assert parser.finish() == ROWS
    ((alert_id, reason),) = parser.refused
    assert alert_id == refused_id and message in reason


def test_a_nan_target_is_parsed_for_the_book_to_refuse() -> None:
    """NaN and infinities are numbers to Postgres (a row stored before migration 0005): the
    parser passes them on, and the book's bulk load refuses them with the reason."""
    parser = TriggerParser()
    parser.feed(b"1\tbinance\tBTCUSDT\tabove\tNaN\n2\tbinance\tBTCUSDT\tabove\tInfinity\n")
    assert [t.target.is_finite() for t in parser.finish()] == [False, False]
    assert parser.refused == []
