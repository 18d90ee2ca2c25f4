"""PriceHistory: one point per second (the last price of the second wins), the ring bound, the
symbol bound (least recently updated evicted), and a property against a naive model."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.book.history import PriceHistory
from engine.model import Tick


def tick(symbol: str, price: str | int, exchange: str = "binance") -> Tick:
    return Tick(exchange, symbol, Decimal(price))


def test_one_point_per_second_and_the_last_price_wins() -> None:
    history = PriceHistory()
    history.record(tick("BTCUSDT", "1"), 100)
    history.record(tick("BTCUSDT", "2"), 100)
    history.record(tick("BTCUSDT", "3"), 101)
    history.record(tick("BTCUSDT", "4"), 101)
    history.record(tick("BTCUSDT", "5"), 103)
    assert history.points("binance", "BTCUSDT") == [
        (100, Decimal("2")),
        (101, Decimal("4")),
        (103, Decimal("5")),
    ]
    assert history.points("coinbase", "BTCUSDT") == []
    assert history.points("binance", "ETHUSDT") == []


def test_a_clock_that_steps_back_lands_on_the_last_point() -> None:
    history = PriceHistory()
    history.record(tick("BTCUSDT", "1"), 100)
    history.record(tick("BTCUSDT", "2"), 99)
    assert history.points("binance", "BTCUSDT") == [(100, Decimal("2"))]


def test_the_ring_keeps_the_last_capacity_points() -> None:
    history = PriceHistory(capacity=3)
    for second in range(10):
        history.record(tick("BTCUSDT", second), second)
    assert history.points("binance", "BTCUSDT") == [(s, Decimal(s)) for s in (7, 8, 9)]


def test_points_with_now_keep_only_the_window() -> None:
    history = PriceHistory(capacity=5)
    for second in (1, 2, 6, 7):
        history.record(tick("BTCUSDT", second), second)
    assert [s for s, _ in history.points("binance", "BTCUSDT", now=7)] == [6, 7]
    assert [s for s, _ in history.points("binance", "BTCUSDT", now=6)] == [2, 6, 7]
    assert history.points("binance", "BTCUSDT", now=100) == []


def test_the_least_recently_updated_symbol_is_evicted() -> None:
    history = PriceHistory(max_symbols=2)
    history.record(tick("A", 1), 1)
    history.record(tick("B", 1), 2)
    history.record(tick("A", 2), 3)  # A is now the more recent
    history.record(tick("C", 1, exchange="coinbase"), 4)  # evicts B
    assert len(history) == 2
    assert history.points("binance", "B") == []
    assert history.points("binance", "A") == [(1, Decimal(1)), (3, Decimal(2))]
    history.record(tick("D", 1), 5)  # evicts A
    assert history.points("binance", "A") == []
    assert history.points("coinbase", "C") == [(4, Decimal(1))]
    assert len(history) == 2


def test_bounds_must_be_positive() -> None:
    with pytest.raises(ValueError):
        PriceHistory(capacity=0)
    with pytest.raises(ValueError):
        PriceHistory(max_symbols=0)


class Naive:
    """The model: every point kept in a dict per symbol, recency as a list, trimmed on read."""

    def __init__(self, capacity: int, max_symbols: int) -> None:
        self.capacity, self.max_symbols = capacity, max_symbols
        self.points: dict[tuple[str, str], dict[int, Decimal]] = {}
        self.order: list[tuple[str, str]] = []

    def record(self, t: Tick, second: int) -> None:
        key = (t.exchange, t.symbol)
        points = self.points.get(key)
        if points is not None and second <= max(points):
            points[max(points)] = t.price
            return
        if points is None:
            if len(self.order) == self.max_symbols:
                del self.points[self.order.pop(0)]
            points = self.points[key] = {}
        else:
            self.order.remove(key)
        self.order.append(key)
        points[second] = t.price

    def read(self, exchange: str, symbol: str) -> list[tuple[int, Decimal]]:
        points = self.points.get((exchange, symbol), {})
        return sorted(points.items())[-self.capacity :]


@given(
    capacity=st.integers(1, 6),
    max_symbols=st.integers(1, 4),
    steps=st.lists(
        st.tuples(
            st.sampled_from(["binance", "coinbase"]),
            st.sampled_from(["A", "B", "C", "D", "E"]),
            st.integers(-2, 3),  # the step of the clock: mostly forward, sometimes back
            st.integers(0, 1000),
        ),
        max_size=80,
    ),
)
def test_matches_a_naive_model(
    capacity: int, max_symbols: int, steps: list[tuple[str, str, int, int]]
) -> None:
    history, naive = PriceHistory(capacity, max_symbols), Naive(capacity, max_symbols)
    second = 1_000
    for exchange, symbol, step, price in steps:
        second += step
        t = tick(symbol, price, exchange)
        history.record(t, second)
        naive.record(t, second)
    assert len(history) == len(naive.points) <= max_symbols
    for exchange in ("binance", "coinbase"):
        for symbol in "ABCDE":
            assert history.points(exchange, symbol) == naive.read(exchange, symbol)
