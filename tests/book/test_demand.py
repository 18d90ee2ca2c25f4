"""The demand sets against a naive model (issue 15, symbol churn).

Random adds, removes and whole-set replacements across exchanges, with readers that poll at
random moments and apply the changes they read: every reader ends equal to the model's set, and
one that fell further behind than the log keeps is handed a snapshot.
"""

from __future__ import annotations

import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.book import demand as demand_module
from engine.book.demand import Changes, Demand

EXCHANGES = ("binance", "kraken")
SYMBOLS = [f"S{n}" for n in range(12)]

ops = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.sampled_from(EXCHANGES), st.sampled_from(SYMBOLS)),
        st.tuples(st.just("discard"), st.sampled_from(EXCHANGES), st.sampled_from(SYMBOLS)),
        st.tuples(
            st.just("set"), st.sampled_from(EXCHANGES), st.frozensets(st.sampled_from(SYMBOLS))
        ),
        st.tuples(st.just("read"), st.sampled_from(EXCHANGES), st.integers(0, 2)),
    ),
    max_size=120,
)


class Reader:
    """A feed's view of one exchange: a set and the version it stands for."""

    def __init__(self) -> None:
        self.held: set[str] = set()
        self.version = 0
        self.snapshots = 0

    def poll(self, demand: Demand, exchange: str) -> Changes:
        changes = demand.changes_since(exchange, self.version)
        assert changes.version == demand.version(exchange)
        assert not changes.added & changes.removed
        if not changes.snapshot:
            assert not changes.added & self.held, "an add of a symbol the reader holds"
            assert changes.removed <= self.held, "a removal of a symbol the reader lacks"
        changes.apply_to(self.held)
        self.version = changes.version
        self.snapshots += changes.snapshot
        return changes


@settings(max_examples=300, deadline=None)
@given(ops, st.integers(2, 8))
def test_readers_applying_changes_match_the_model(
    script: list[tuple[str, str, object]], limit: int
) -> None:
    saved = demand_module.LOG_LIMIT
    demand_module.LOG_LIMIT = limit  # a small log, so readers fall behind it often
    try:
        demand = Demand()
        model: dict[str, set[str]] = {e: set() for e in EXCHANGES}
        readers = {(e, n): Reader() for e in EXCHANGES for n in range(3)}
        changes_made = {e: 0 for e in EXCHANGES}
        for op, exchange, arg in script:
            before = set(model[exchange])
            if op == "add":
                demand.add(exchange, str(arg))
                model[exchange].add(str(arg))
            elif op == "discard":
                demand.discard(exchange, str(arg))
                model[exchange].discard(str(arg))
            elif op == "set":
                assert isinstance(arg, frozenset)
                demand.set(exchange, arg)
                model[exchange] = set(arg)
            else:
                assert isinstance(arg, int)
                reader = readers[(exchange, arg)]
                behind = demand.version(exchange) - reader.version
                changes = reader.poll(demand, exchange)
                assert reader.held == model[exchange]
                # a snapshot only for a reader past what the log keeps (at most 2 * limit)
                if changes.snapshot:
                    assert behind > limit
                elif behind <= limit:
                    assert not changes.snapshot
                continue
            changes_made[exchange] += len(before ^ model[exchange])
            assert demand.version(exchange) == changes_made[exchange]
            assert demand.symbols(exchange) == model[exchange]
            assert demand.count(exchange) == len(model[exchange])
            assert all(((exchange, s) in demand) == (s in model[exchange]) for s in SYMBOLS)
        for (exchange, _), reader in readers.items():
            reader.poll(demand, exchange)
            assert reader.held == model[exchange]
            assert demand.changes_since(exchange, reader.version) == Changes(reader.version)
    finally:
        demand_module.LOG_LIMIT = saved


def test_a_reader_far_behind_gets_a_snapshot() -> None:
    demand = Demand()
    for n in range(3 * demand_module.LOG_LIMIT):
        demand.add("binance", f"S{n}")
    changes = demand.changes_since("binance", 0)
    assert changes.snapshot and len(changes.added) == 3 * demand_module.LOG_LIMIT
    recent = demand.changes_since("binance", demand.version("binance") - 2)
    last = 3 * demand_module.LOG_LIMIT
    assert not recent.snapshot and recent.added == {f"S{n}" for n in range(last - 2, last)}


async def test_wait_changed_wakes_on_one_change() -> None:
    demand = Demand()
    with trio.fail_after(1):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(demand.wait_changed, "binance", 0)
            await trio.testing.wait_all_tasks_blocked()
            demand.add("binance", "BTCUSDT")
    assert demand.changes_since("binance", 0) == Changes(1, frozenset({"BTCUSDT"}))
