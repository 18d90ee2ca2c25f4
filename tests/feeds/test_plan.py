"""engine/feeds/plan.py: placement, batches, numbered requests and pacing, without a socket.

The hypothesis test runs the whole cycle the runner runs: demand changes, ``place`` spreads the
wanted symbols over slots, each slot's connection sends ``requests`` and applies them. After
every step the subscribed symbols are exactly the wanted ones, no slot is over its cap, no
symbol is on two slots, no request is over ``symbols_per_message``, and request ids are unique
per connection.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.feeds.plan import (
    Pacer,
    Placement,
    Request,
    SentRequests,
    apply,
    batches,
    place,
    requests,
)


def test_place_keeps_symbols_where_they_are_and_fills_the_first_room() -> None:
    assert place([], {"B", "A", "C"}, 2) == [frozenset("AB"), frozenset("C")]
    slots = [frozenset("AB"), frozenset("C")]
    assert place(slots, {"A", "C", "D", "E"}, 2) == [frozenset("AD"), frozenset("CE")]
    assert place(slots, {"C"}, 2) == [frozenset(), frozenset("C")]  # the first slot retires
    assert place(slots, set(), 2) == [frozenset(), frozenset()]
    grown = place(slots, {"A", "B", "C", "X", "Y", "Z"}, 2)
    assert grown == [frozenset("AB"), frozenset("CX"), frozenset("YZ")]
    with pytest.raises(ValueError):
        place([], {"A"}, 0)


def test_batches_and_requests() -> None:
    assert batches([], 3) == []
    assert batches(["E", "A", "D", "C", "B"], 2) == [("A", "B"), ("C", "D"), ("E",)]
    with pytest.raises(ValueError):
        batches(["A"], 0)
    got = requests({"A", "B", "C"}, {"C", "D"}, 1, 7)
    assert got == [
        Request("unsubscribe", ("A",), 7),
        Request("unsubscribe", ("B",), 8),
        Request("subscribe", ("D",), 9),
    ]
    assert apply({"A", "B", "C"}, got) == {"C", "D"}
    assert requests({"A"}, {"A"}, 5, 1) == []


def test_sent_requests_are_numbered_remembered_and_bounded() -> None:
    sent = SentRequests(limit=2)
    assert sent.next_id == 1 and sent.take(1) is None and sent.take(None) is None
    first = requests(set(), {"A", "B", "C"}, 1, sent.next_id)
    sent.record(first)
    assert sent.next_id == 4 and len(sent) == 2  # the oldest (1) is forgotten
    assert sent.take(1) is None
    assert sent.take(3) == Request("subscribe", ("C",), 3)
    assert sent.take(3) is None  # taken once
    assert sent.next_id == 4


def test_the_pacer_books_one_message_per_interval() -> None:
    pacer = Pacer(4.0)
    assert [pacer.reserve(10.0) for _ in range(3)] == [10.0, 10.25, 10.5]
    assert pacer.reserve(10.6) == 10.75  # still booked ahead
    assert pacer.reserve(20.0) == 20.0  # idle since: at once
    with pytest.raises(ValueError):
        Pacer(0)


symbols = st.frozensets(st.sampled_from([f"S{n}" for n in range(40)]), max_size=40)


@settings(max_examples=300, deadline=None)
@given(
    demands=st.lists(symbols, min_size=1, max_size=8),
    cap=st.integers(1, 7),
    per_message=st.integers(1, 5),
)
def test_the_plan_reaches_the_wanted_set(
    demands: list[frozenset[str]], cap: int, per_message: int
) -> None:
    slots: list[frozenset[str]] = []  # what each slot should hold
    held: list[set[str]] = []  # what each slot's connection has subscribed
    sent: list[SentRequests] = []
    for wanted in demands:
        placed = place(slots, wanted, cap)
        assert len(placed) >= len(slots)
        for n, slot in enumerate(placed):
            assert len(slot) <= cap
            if n < len(slots):
                assert slots[n] & wanted <= slot  # nothing wanted moves
        for a in range(len(placed)):
            for b in range(a + 1, len(placed)):
                assert not placed[a] & placed[b]  # no symbol on two slots
        while len(held) < len(placed):
            held.append(set())
            sent.append(SentRequests())
        for n, slot in enumerate(placed):
            steps = requests(held[n], slot, per_message, sent[n].next_id)
            assert all(1 <= len(r.symbols) <= per_message for r in steps)
            ids = [r.request_id for r in steps]
            assert ids == list(range(sent[n].next_id, sent[n].next_id + len(steps)))
            sent[n].record(steps)
            held[n] = apply(held[n], steps)
            assert held[n] == slot
        assert set().union(*held) == wanted
        # The runner retires empty slots: they leave the list, their connections close.
        keep = [n for n, slot in enumerate(placed) if slot]
        slots = [placed[n] for n in keep]
        held = [held[n] for n in keep]
        sent = [sent[n] for n in keep]


@settings(max_examples=300, deadline=None)
@given(demands=st.lists(symbols, min_size=1, max_size=12), cap=st.integers(1, 7))
def test_placement_by_differences_is_place(demands: list[frozenset[str]], cap: int) -> None:
    """The runner's :class:`Placement` (changed by differences) holds, after every change of
    demand, exactly what :func:`place` gives from the previous slots (the plain path)."""
    placement = Placement(cap)
    slots: list[frozenset[str]] = []
    wanted: frozenset[str] = frozenset()
    for new in demands:
        expected = place(slots, new, cap)
        changed, retired = placement.change(new - wanted, wanted - new)
        placement._check()
        got = [frozenset(placement.slots[i]) for i in sorted(placement.slots)]
        assert got == [slot for slot in expected if slot]
        assert not changed & retired and changed <= set(placement.slots)
        slots, wanted = got, new
    with pytest.raises(ValueError):
        Placement(0)
