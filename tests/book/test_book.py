"""Unit tests of TriggerBook: one test per rule of the book."""

from __future__ import annotations

from decimal import Decimal

import pytest

from engine.book.book import MAX_TARGET, MIN_TARGET, PRECISION, TriggerBook
from engine.errors import BookError, DuplicateTrigger, PriceOutOfRange
from engine.model import Direction, Tick, Trigger

A, B = Direction.ABOVE, Direction.BELOW


def trig(tid: int, target: str, direction: Direction = A, symbol: str = "BTCUSDT") -> Trigger:
    return Trigger(tid, "binance", symbol, direction, Decimal(target))


def tick(price: str, symbol: str = "BTCUSDT", exchange: str = "binance") -> Tick:
    return Tick(exchange, symbol, Decimal(price))


def ids(triggers: list[Trigger]) -> list[int]:
    return [t.id for t in triggers]


def book_of(*triggers: Trigger) -> TriggerBook:
    book = TriggerBook()
    for t in triggers:
        book.add(t)
    book._check()
    return book


def test_equal_price_fires_both_sides() -> None:
    book = book_of(trig(1, "100.50"), trig(2, "100.5", B))
    assert ids(book.apply(tick("100.500000"))) == [1, 2]
    assert len(book) == 0
    book._check()


def test_no_fire_between_boundaries() -> None:
    book = book_of(trig(1, "101"), trig(2, "99", B))
    assert book.apply(tick("100")) == []
    assert book.apply(tick("100.999999999999999999")) == []
    assert book.apply(tick("99.000000000000000001")) == []
    assert len(book) == 2


def test_jump_past_target_fires() -> None:
    book = book_of(trig(1, "101"), trig(2, "105"), trig(3, "99", B), trig(4, "90", B))
    assert ids(book.apply(tick("200"))) == [1, 2]
    assert ids(book.apply(tick("1"))) == [4, 3]
    book._check()


def test_ties_all_fire_in_id_order() -> None:
    book = book_of(trig(7, "100"), trig(3, "100"), trig(5, "100.0"), trig(9, "100.01"))
    assert ids(book.apply(tick("100"))) == [3, 5, 7]
    assert ids(book.apply(tick("100.01"))) == [9]


def test_order_above_then_below_each_by_threshold_then_id() -> None:
    book = book_of(
        trig(1, "10", A), trig(2, "9", A), trig(3, "9", A),
        trig(4, "10", B), trig(5, "11", B), trig(6, "10", B),
    )  # fmt: skip
    # Price 10: above fires targets <= 10, below fires targets >= 10.
    assert ids(book.apply(tick("10"))) == [2, 3, 1, 4, 6, 5]


def test_one_shot() -> None:
    book = book_of(trig(1, "100"))
    assert ids(book.apply(tick("100"))) == [1]
    assert book.apply(tick("100")) == []
    assert 1 not in book


def test_removed_never_fires() -> None:
    book = book_of(trig(1, "100"), trig(2, "100"))
    removed = book.remove(1)
    assert removed == trig(1, "100")
    assert book.remove(1) is None
    assert ids(book.apply(tick("101"))) == [2]
    assert book.remove(2) is None
    book._check()


def test_remove_unknown_is_none() -> None:
    assert TriggerBook().remove(42) is None


def test_precision_boundary() -> None:
    book = TriggerBook()
    finest = "0." + "0" * (PRECISION - 1) + "1"
    book.add(trig(1, finest))
    book.add(trig(2, "999999999999999999.999999999999999999", B))
    with pytest.raises(PriceOutOfRange, match="finer"):
        book.add(trig(3, finest + "1"))
    with pytest.raises(PriceOutOfRange, match="finer"):
        book.add(trig(4, "1E-19"))
    with pytest.raises(PriceOutOfRange, match="below"):
        book.add(trig(5, str(MAX_TARGET)))
    assert Decimal(finest) == MIN_TARGET
    assert len(book) == 2
    book._check()


def test_tick_finer_than_precision_is_exact() -> None:
    finest = "0." + "0" * (PRECISION - 1) + "1"
    book = book_of(trig(1, finest), trig(2, finest, B))
    just_below = "0." + "0" * PRECISION + "9"  # 0.9E-18
    assert ids(book.apply(tick(just_below))) == [2]
    assert ids(book.apply(tick("0." + "0" * (PRECISION - 1) + "10001"))) == [1]


@pytest.mark.parametrize("target", ["0", "-1", "-0", "NaN", "sNaN", "Infinity", "-Infinity"])
def test_bad_targets_rejected_and_book_unchanged(target: str) -> None:
    book = book_of(trig(1, "5"))
    with pytest.raises(PriceOutOfRange):
        book.add(trig(2, target))
    # the bulk load keeps the good ones and returns the refused ones with their reasons
    refused = book.bulk_load([trig(3, "6"), trig(2, target)])
    assert [(t.id, str(t.target)) for t, _reason in refused] == [(2, target)]
    assert book.snapshot() == [trig(1, "5"), trig(3, "6")]
    book._check()


def test_float_target_rejected() -> None:
    bad = Trigger(1, "binance", "X", A, 1.5)  # type: ignore[arg-type]
    with pytest.raises(PriceOutOfRange):
        TriggerBook().add(bad)
    book = TriggerBook()
    assert [t for t, _reason in book.bulk_load([bad])] == [bad]
    assert len(book) == 0


def test_int_target_is_exact() -> None:
    book = book_of(Trigger(1, "binance", "X", A, 5))  # type: ignore[arg-type]
    assert book.get(1) == trig(1, "5", symbol="X")


def test_duplicate_id() -> None:
    book = book_of(trig(1, "5"))
    with pytest.raises(DuplicateTrigger):
        book.add(trig(1, "6", B, symbol="ETHUSDT"))
    with pytest.raises(DuplicateTrigger):
        book.bulk_load([trig(2, "7"), trig(1, "8")])
    with pytest.raises(DuplicateTrigger):
        book.bulk_load([trig(2, "7"), trig(3, "8"), trig(2, "9")])
    assert book.snapshot() == [trig(1, "5")]
    book._check()


def test_bad_direction_and_id_rejected() -> None:
    book = TriggerBook()
    with pytest.raises(BookError, match="direction"):
        book.add(Trigger(1, "binance", "X", "sideways", Decimal(1)))  # type: ignore[arg-type]
    sideways = Trigger(1, "binance", "X", "sideways", Decimal(1))  # type: ignore[arg-type]
    ((refused, reason),) = book.bulk_load([sideways])
    assert refused is sideways and "direction" in reason
    with pytest.raises(BookError, match="64-bit"):
        book.add(trig(2**63, "1"))
    with pytest.raises(BookError, match="64-bit"):
        book.bulk_load([trig(1, "1"), trig(-(2**63) - 1, "1")])
    assert len(book) == 0
    book._check()


def test_negative_and_huge_ids() -> None:
    book = book_of(trig(-(2**63), "5"), trig(2**63 - 1, "5"), trig(0, "5"))
    assert ids(book.apply(tick("5"))) == [-(2**63), 0, 2**63 - 1]


def test_non_finite_tick_rejected_and_book_unchanged() -> None:
    book = book_of(trig(1, "5"), trig(2, "4", B))
    for price in ["NaN", "Infinity", "-Infinity"]:
        with pytest.raises(PriceOutOfRange):
            book.apply(tick(price))
    assert len(book) == 2
    book._check()


def test_extreme_tick_prices() -> None:
    book = book_of(trig(1, "5"), trig(2, "4", B), trig(3, "0.000000000000000001", B))
    assert ids(book.apply(tick("1E+30"))) == [1]
    assert ids(book.apply(tick("1E-30"))) == [3, 2]
    book = book_of(trig(2, "4", B))
    assert ids(book.apply(tick("-3"))) == [2]
    book = book_of(trig(2, "4", B))
    assert ids(book.apply(tick("0"))) == [2]


def test_other_symbols_and_exchanges_untouched() -> None:
    book = book_of(trig(1, "5"), trig(2, "5", symbol="ETHUSDT"))
    assert book.apply(tick("6", symbol="SOLUSDT")) == []
    assert book.apply(tick("6", exchange="kraken")) == []
    assert ids(book.apply(tick("6", symbol="ETHUSDT"))) == [2]
    assert book.symbols("binance") == {"BTCUSDT"}


def test_bulk_load_equals_one_by_one() -> None:
    triggers = [
        trig(i, f"{100 + (i * 37) % 50}.{i % 7}", A if i % 3 else B, symbol=f"S{i % 4}")
        for i in range(3000)
    ]
    loaded = TriggerBook()
    loaded.bulk_load(iter(triggers))
    loaded._check()
    added = book_of(*triggers)
    assert loaded.snapshot() == added.snapshot() == sorted(triggers, key=lambda t: t.id)
    assert loaded.counts() == added.counts()
    for price in ["120", "130.3", "101", "149.9", "100"]:
        for symbol in ["S0", "S1", "S2", "S3"]:
            assert loaded.apply(tick(price, symbol)) == added.apply(tick(price, symbol))
    loaded._check()


def test_bulk_load_merges_into_a_live_book() -> None:
    book = book_of(trig(1, "5"), trig(2, "3", B))
    book.bulk_load([trig(3, "4"), trig(4, "3.5", B), trig(5, "7", symbol="ETHUSDT")])
    book._check()
    assert ids(book.apply(tick("4"))) == [3]
    assert ids(book.apply(tick("3.5"))) == [4]
    assert book.counts() == {("binance", "BTCUSDT"): (1, 1), ("binance", "ETHUSDT"): (1, 0)}


def test_counts_symbols_snapshot_get() -> None:
    book = book_of(
        trig(3, "5"), trig(1, "4", B), trig(2, "9", symbol="ETHUSDT"),
        Trigger(4, "kraken", "XBT/USD", A, Decimal("70000.10")),
    )  # fmt: skip
    assert book.counts() == {
        ("binance", "BTCUSDT"): (1, 1),
        ("binance", "ETHUSDT"): (1, 0),
        ("kraken", "XBT/USD"): (1, 0),
    }
    assert book.symbols("binance") == {"BTCUSDT", "ETHUSDT"}
    assert book.symbols("nowhere") == set()
    assert book.has_symbol("kraken", "XBT/USD")
    assert ids(book.snapshot()) == [1, 2, 3, 4]
    assert book.get(4) == Trigger(4, "kraken", "XBT/USD", A, Decimal("70000.1"))
    assert str(book.get(4).target) == "70000.1"  # type: ignore[union-attr]
    assert book.get(99) is None
    assert 3 in book and 99 not in book


def test_symbol_forgotten_when_empty_and_numbers_reused() -> None:
    book = book_of(trig(1, "5"), trig(2, "5", symbol="ETHUSDT"))
    book.apply(tick("5"))
    assert book.symbols("binance") == {"ETHUSDT"}
    assert not book.has_symbol("binance", "BTCUSDT")
    book.add(trig(3, "1", B, symbol="SOLUSDT"))
    book.remove(2)
    book._check()
    assert book.counts() == {("binance", "SOLUSDT"): (0, 1)}


def test_large_burst_pops_across_sublists() -> None:
    book = TriggerBook()
    book.bulk_load(trig(i, str(i), A) for i in range(1, 5001))
    book.bulk_load(trig(i, str(i - 5000), B) for i in range(5001, 10001))
    fired = ids(book.apply(tick("2500.5")))
    assert fired == list(range(1, 2501)) + list(range(7501, 10001))
    book._check()
    assert ids(book.apply(tick("2500"))) == [7500]
    book._check()
    for tid in range(2501, 2600):
        book.remove(tid)
    book._check()
    assert ids(book.apply(tick("2700"))) == list(range(2600, 2701))
    book._check()
    assert ids(book.apply(tick("100000"))) == list(range(2701, 5001))
    book._check()


def test_bulk_load_edge_targets_like_add() -> None:
    exact_long = "5." + "0" * 40  # 42 digits, exactly 5: beyond the fast path's 36 digits
    book = TriggerBook()
    book.bulk_load([trig(1, exact_long), trig(2, "999999999999999999.999999999999999999", B)])
    assert book.get(1) == trig(1, "5")
    book._check()
    for n, (target, message) in enumerate(
        [("1E+18", "below"), ("1E+40", "below"), ("1E-19", "finer")]
    ):
        ((refused, reason),) = book.bulk_load([trig(3 + 2 * n, "6"), trig(4 + 2 * n, target)])
        assert refused.id == 4 + 2 * n and message in reason
    assert ids(book.snapshot()) == [1, 2, 3, 5, 7]
    book._check()


def test_burst_of_ties_fires_each_once_in_id_order() -> None:
    book = TriggerBook()
    book.bulk_load(trig(i, "100.50" if i % 2 else "100.25") for i in range(1, 2001))
    fired = book.apply(tick("101"))
    assert ids(fired) == list(range(2, 2001, 2)) + list(range(1, 2001, 2))
    assert [str(t.target) for t in fired[999:1001]] == ["100.25", "100.5"]
    assert len(book) == 0
    book._check()
