"""The book against a naive list model, driven by hypothesis.

The model keeps live triggers in a plain list and fires by scanning it; after every step the
book's invariants hold and its fires (set and order) equal the model's.
"""

from __future__ import annotations

from decimal import Decimal

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from engine.book.book import PRECISION, TriggerBook
from engine.errors import DuplicateTrigger
from engine.model import Direction, Tick, Trigger

SYMBOLS = [("binance", "BTCUSDT"), ("binance", "ETHUSDT"), ("kraken", "BTCUSDT")]

# Prices within the book's precision: tiny, ordinary and huge, drawn from a small pool of
# coefficients so that equal thresholds and ticks equal to targets are common.
coefficients = st.sampled_from([1, 2, 5, 7, 10, 99, 100, 101, 123456789, 10**17, 10**35])
exponents = st.integers(min_value=-PRECISION, max_value=0)
targets = st.builds(lambda c, e: Decimal(c).scaleb(e), coefficients, exponents).filter(
    lambda d: Decimal(0) < d < Decimal(10**18)
)
# Ticks may be finer than the precision (a feed may send any number of digits).
ticks = st.one_of(
    targets,
    st.builds(lambda c, e: Decimal(c).scaleb(e), coefficients, st.integers(-PRECISION - 3, 2)),
)
directions = st.sampled_from([Direction.ABOVE, Direction.BELOW])
places = st.sampled_from(SYMBOLS)


def model_fires(live: list[Trigger], tick: Tick) -> list[Trigger]:
    mine = [t for t in live if (t.exchange, t.symbol) == (tick.exchange, tick.symbol)]
    above = [t for t in mine if t.direction is Direction.ABOVE and tick.price >= t.target]
    below = [t for t in mine if t.direction is Direction.BELOW and tick.price <= t.target]
    return sorted(above, key=lambda t: (t.target, t.id)) + sorted(
        below, key=lambda t: (t.target, t.id)
    )


class BookMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.book = TriggerBook()
        self.live: list[Trigger] = []
        self.next_id = 1

    def new_trigger(self, place: tuple[str, str], direction: Direction, target: Decimal) -> Trigger:
        self.next_id += 1
        return Trigger(self.next_id, place[0], place[1], direction, target)

    @initialize(
        rows=st.lists(st.tuples(places, directions, targets), max_size=30),
    )
    def bulk_load(self, rows: list[tuple[tuple[str, str], Direction, Decimal]]) -> None:
        loaded = [self.new_trigger(*row) for row in rows]
        self.book.bulk_load(loaded)
        self.live += loaded

    @rule(place=places, direction=directions, threshold=targets)
    def add(self, place: tuple[str, str], direction: Direction, threshold: Decimal) -> None:
        trigger = self.new_trigger(place, direction, threshold)
        self.book.add(trigger)
        self.live.append(trigger)

    @precondition(lambda self: self.live)
    @rule(data=st.data())
    def add_duplicate(self, data: st.DataObject) -> None:
        known = data.draw(st.sampled_from(self.live))
        twin = Trigger(known.id, "binance", "XRPUSDT", Direction.BELOW, Decimal(3))
        try:
            self.book.add(twin)
        except DuplicateTrigger:
            pass
        else:
            raise AssertionError("a duplicate id was accepted")

    @precondition(lambda self: self.live)
    @rule(data=st.data())
    def remove_known(self, data: st.DataObject) -> None:
        known = data.draw(st.sampled_from(self.live))
        assert self.book.remove(known.id) == known
        self.live.remove(known)

    @rule(tid=st.integers(min_value=-5, max_value=0))
    def remove_unknown(self, tid: int) -> None:
        assert self.book.remove(tid) is None

    @rule(place=places, price=ticks)
    def tick(self, place: tuple[str, str], price: Decimal) -> None:
        tick = Tick(place[0], place[1], price)
        expected = model_fires(self.live, tick)
        fired = self.book.apply(tick)
        assert fired == expected
        assert [t.id for t in fired] == [t.id for t in expected]
        for trigger in fired:
            self.live.remove(trigger)

    @invariant()
    def consistent(self) -> None:
        self.book._check()
        assert len(self.book) == len(self.live)
        assert self.book.snapshot() == sorted(self.live, key=lambda t: t.id)
        counts: dict[tuple[str, str], tuple[int, int]] = {}
        for t in self.live:
            above, below = counts.get((t.exchange, t.symbol), (0, 0))
            counts[t.exchange, t.symbol] = (
                (above + 1, below) if t.direction is Direction.ABOVE else (above, below + 1)
            )
        assert self.book.counts() == counts


BookMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
TestBookModel = BookMachine.TestCase
