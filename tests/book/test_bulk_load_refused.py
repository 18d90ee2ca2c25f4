"""The start-up load never dies of one row: ``bulk_load`` holds every trigger it can and returns
the ones it cannot, with the reason, in input order. Only an internal error (an id twice, an id
outside 64 bits) keeps it all or nothing."""

from __future__ import annotations

from decimal import Decimal

import pytest

from engine.book.book import TriggerBook
from engine.errors import DuplicateTrigger
from engine.model import Direction, Tick, Trigger

A, B = Direction.ABOVE, Direction.BELOW


def trig(tid: int, target: str | Decimal, direction: Direction = A) -> Trigger:
    value = target if isinstance(target, Decimal) else Decimal(target)
    return Trigger(tid, "binance", "BTCUSDT", direction, value)


BAD = {
    "396212846246294800000": "below 10",  # case 1 of issue 12: accepted once, then every start died
    "NaN": "finite",
    "sNaN": "finite",
    "-Infinity": "finite",
    "0": "> 0",
    "1E+200000": "below 10",
    "1E-19": "finer",
    "1.0000000000000000001": "finer",
}


def test_good_triggers_load_and_bad_ones_come_back_with_reasons() -> None:
    triggers, expected = [], []
    for n, (target, reason) in enumerate(BAD.items()):
        triggers.append(trig(2 * n + 1, str(n + 1)))
        triggers.append(trig(2 * n + 2, target, B))
        expected.append((2 * n + 2, reason))
    triggers.append(Trigger(99, "binance", "BTCUSDT", "sideways", Decimal(1)))  # type: ignore[arg-type]
    expected.append((99, "direction"))
    book = TriggerBook()
    refused = book.bulk_load(iter(triggers))
    assert [t.id for t, _ in refused] == [tid for tid, _ in expected]
    for (trigger, reason), (_tid, word) in zip(refused, expected, strict=True):
        assert word in reason, (trigger, reason)
    assert [t.id for t in book.snapshot()] == list(range(1, 2 * len(BAD), 2))
    book._check()
    assert [t.id for t in book.apply(Tick("binance", "BTCUSDT", Decimal(3)))] == [1, 3, 5]


def test_refusals_across_chunks_keep_the_book_whole() -> None:
    """More triggers than one staging chunk, a bad one in each chunk."""
    triggers = [
        trig(i, "NaN" if i % 10_000 == 0 else str(i % 500 + 1), A if i % 2 else B)
        for i in range(1, 50_001)
    ]
    book = TriggerBook()
    refused = book.bulk_load(triggers)
    assert [t.id for t, _ in refused] == list(range(10_000, 50_001, 10_000))
    assert len(book) == 50_000 - 5
    book._check()
    # loading into a book that already holds triggers
    more = book.bulk_load([trig(60_001, "7"), trig(60_002, "1E+30")])
    assert [t.id for t, _ in more] == [60_002] and 60_001 in book
    book._check()


def test_an_id_twice_is_still_all_or_nothing() -> None:
    book = TriggerBook()
    book.bulk_load([trig(1, "5")])
    with pytest.raises(DuplicateTrigger):
        book.bulk_load([trig(2, "NaN"), trig(3, "7"), trig(3, "8")])
    with pytest.raises(DuplicateTrigger):
        book.bulk_load([trig(4, "7"), trig(1, "8")])
    assert [t.id for t in book.snapshot()] == [1]
    book._check()


def test_nothing_refused_is_an_empty_list() -> None:
    assert TriggerBook().bulk_load([trig(1, "5")]) == []
    assert TriggerBook().bulk_load([]) == []
