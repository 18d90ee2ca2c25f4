"""The packed entries on their own: ``Entries`` against a sorted list and ``SortedList._check()``.

``Entries`` cuts sortedcontainers' private sublists directly, so after every operation, the
whole-end pops and ``merged`` included, its contents must equal a plain sorted model and
``SortedList``'s own invariant check must pass. A load factor of 4 (the smallest ``_check``
accepts) makes a few dozen values span many sublists, so that hypothesis reaches every branch:
whole sublists popped, a first sublist left short and folded into the next, the positional index
built by a lookup and then dropped by a pop.
"""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from engine.book.entries import (
    ID_OFFSET,
    KEY_SHIFT,
    MAX_SIDES,
    Entries,
    check_id,
    pack,
    unpack,
)
from engine.errors import BookError


class SmallEntries(Entries):
    """Entries with the smallest load factor ``SortedList._check`` allows."""

    DEFAULT_LOAD_FACTOR = 4


def assert_sound(entries: Entries, model: list[int]) -> None:
    entries._check()
    assert all(entries._lists), "an empty sublist"  # _check does not look for these
    assert list(entries) == model
    assert len(entries) == len(model)


values = st.integers(min_value=0, max_value=120)  # narrow, so that duplicates are common
bounds = st.integers(min_value=-1, max_value=122)


class EntriesMachine(RuleBasedStateMachine):
    """Random adds, removes, positional reads, whole-end pops and merges against a list."""

    def __init__(self) -> None:
        super().__init__()
        self.entries: Entries = SmallEntries()
        self.model: list[int] = []

    @rule(value=values)
    def add(self, value: int) -> None:
        self.entries.add(value)
        self.model.append(value)
        self.model.sort()

    @rule(new=st.lists(values, max_size=40))
    def update(self, new: list[int]) -> None:
        self.entries.update(new)
        self.model = sorted(self.model + new)

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def remove(self, data: st.DataObject) -> None:
        value = data.draw(st.sampled_from(self.model))
        self.entries.remove(value)
        self.model.remove(value)

    @precondition(lambda self: self.model)
    @rule(index=st.integers(min_value=0))
    def read_position(self, index: int) -> None:
        """A middle lookup builds SortedList's positional index, which a pop must drop."""
        index %= len(self.model)
        assert self.entries[index] == self.model[index]
        assert self.entries.index(self.model[index]) == self.model.index(self.model[index])

    @rule(bound=bounds)
    def pop_below(self, bound: int) -> None:
        expected = [v for v in self.model if v < bound]
        assert self.entries.pop_below(bound) == expected
        self.model = self.model[len(expected) :]

    @rule(bound=bounds)
    def pop_from(self, bound: int) -> None:
        expected = [v for v in self.model if v >= bound]
        assert self.entries.pop_from(bound) == expected
        self.model = self.model[: len(self.model) - len(expected)]

    @rule(new=st.lists(values, max_size=60))
    def merged(self, new: list[int]) -> None:
        self.entries = SmallEntries.merged(self.entries, list(new))
        assert type(self.entries) is SmallEntries
        self.model = sorted(self.model + new)

    @invariant()
    def sound(self) -> None:
        assert_sound(self.entries, self.model)


EntriesMachine.TestCase.settings = settings(max_examples=300, stateful_step_count=40)
test_entries_machine = EntriesMachine.TestCase


@given(
    st.lists(st.integers(min_value=0, max_value=5000), max_size=3000),
    st.integers(min_value=-1, max_value=5001),
    st.booleans(),
)
@settings(max_examples=60)
def test_pops_at_the_default_load(values_: list[int], bound: int, below: bool) -> None:
    """At the real load factor (1000), with sublists of any fill left by earlier removals."""
    entries = Entries(values_)
    rng = random.Random(bound)
    for value in rng.sample(values_, len(values_) // 3):
        entries.remove(value)
    model = list(entries)
    if below:
        out, rest = [v for v in model if v < bound], [v for v in model if v >= bound]
        assert entries.pop_below(bound) == out
    else:
        out, rest = [v for v in model if v >= bound], [v for v in model if v < bound]
        assert entries.pop_from(bound) == out
    assert_sound(entries, rest)


def test_merged_slices_at_the_load_and_sorts_its_input_in_place() -> None:
    entries = Entries(range(0, 5000, 2))
    new = list(range(4999, 0, -2))
    merged = Entries.merged(entries, new)
    assert_sound(merged, list(range(5000)))
    assert [len(sublist) for sublist in merged._lists] == [1000] * 5
    assert new == list(range(5000)), "merged consumes its list (no copy)"
    assert_sound(Entries.merged(Entries(), []), [])


def test_pops_on_an_empty_list_return_nothing() -> None:
    entries = Entries()
    assert entries.pop_below(10) == [] and entries.pop_from(-10) == []
    assert_sound(entries, [])


# --- the layout ----------------------------------------------------------------------------------

ids = st.integers(min_value=-ID_OFFSET, max_value=ID_OFFSET - 1)
keys = st.integers(min_value=1, max_value=10**36 - 1)
sides = st.integers(min_value=0, max_value=MAX_SIDES - 1)


@given(keys, sides, ids)
def test_unpack_inverts_pack(key: int, side: int, trigger_id: int) -> None:
    entry = pack(key, side, trigger_id)
    assert unpack(entry) == (key, side, trigger_id)
    assert key << KEY_SHIFT <= entry < (key + 1) << KEY_SHIFT


@given(sides, st.lists(st.tuples(keys | st.integers(1, 3), ids), min_size=2, max_size=30))
def test_entries_of_one_side_sort_by_key_then_id(side: int, pairs: list[tuple[int, int]]) -> None:
    """The fire order is (target, id), so packing must keep it."""
    assert sorted(pairs) == [unpack(e)[::2] for e in sorted(pack(k, side, i) for k, i in pairs)]


def test_check_id_accepts_exactly_the_signed_64_bit_range() -> None:
    check_id(-(2**63))
    check_id(2**63 - 1)
    check_id(0)
    for outside in (-(2**63) - 1, 2**63):
        try:
            check_id(outside)
        except BookError:
            continue
        raise AssertionError(f"{outside} accepted")
