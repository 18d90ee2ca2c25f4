"""The feed runner's plan: which symbols go where, what to send, and when. Pure, no I/O.

The runner (``engine.feeds.runner``, ``slot``, ``session``) does the sockets; every decision it
takes about subscriptions is made here, on plain values, so it is tested without a socket
(``tests/feeds/test_plan.py``, with a hypothesis model of the whole cycle):

- :func:`place` spreads the wanted symbols over *slots* (one connection each, at most
  ``max_streams_per_connection`` symbols), keeping every symbol where it already is;
  :class:`Placement` does the same by differences (what the runner uses: O(change) per change
  of demand, not O(symbols)), and a test ties every step of it to :func:`place`;
- :func:`requests` turns the difference between what a connection has subscribed and what it
  should have into numbered :class:`Request` batches of at most ``symbols_per_message`` symbols
  (unsubscribes first, so a full connection makes room before it adds);
- :class:`SentRequests` remembers the last requests of a connection by number, bounded, so an
  error reply that carries only the number is mapped back to the symbols it refused;
- :class:`Pacer` says when the next message may go out at ``max_messages_per_second``.
"""

from __future__ import annotations

import heapq
from collections import OrderedDict
from collections.abc import Iterable, Sequence, Set
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "SENT_LIMIT",
    "Pacer",
    "Placement",
    "Request",
    "SentRequests",
    "apply",
    "batches",
    "place",
    "requests",
]

SENT_LIMIT = 1024  # requests of one connection remembered for mapping error replies


@dataclass(frozen=True, slots=True)
class Request:
    """One (un)subscribe request: its number on the connection and its symbols (sorted)."""

    op: Literal["subscribe", "unsubscribe"]
    symbols: tuple[str, ...]
    request_id: int


def place(slots: Sequence[Set[str]], wanted: Set[str], cap: int) -> list[frozenset[str]]:
    """What each slot should hold so that together they hold exactly ``wanted``.

    The result starts with one entry per slot of ``slots`` (same order; an empty one is a slot
    to retire) followed by the new slots needed. A symbol that stays wanted stays in its slot; a
    new one goes to the first slot with room (in sorted order), then to new slots of at most
    ``cap``. No symbol is in two slots. Runtime: O(n log n) in the symbols.
    """
    if cap < 1:
        raise ValueError(f"a slot holds at least one symbol, not {cap}")
    placed = [set(slot) & wanted for slot in slots]
    held = set().union(*placed)
    room = iter(placed)
    current = next(room, None)
    for symbol in sorted(wanted - held):
        while current is not None and len(current) >= cap:
            current = next(room, None)
        if current is None:
            current = set()
            placed.append(current)
        current.add(symbol)
    return [frozenset(slot) for slot in placed]


class Placement:
    """Which slot holds each wanted symbol, kept by differences: :func:`place`'s rule, one
    change at a time.

    Slots have ids that grow as they are opened, so id order is :func:`place`'s slot order. A
    change (:meth:`change`) takes the removed symbols out of their slots, puts each added one
    (in sorted order) in the first slot with room, opening slots past the last when none has
    room, then retires the slots left empty. Runtime complexity: O(k log(k + s)) for k symbols
    changed and s slots (the slots with room are a heap), whatever the number of symbols held.
    """

    def __init__(self, cap: int) -> None:
        if cap < 1:
            raise ValueError(f"a slot holds at least one symbol, not {cap}")
        self.cap = cap
        self.slots: dict[int, set[str]] = {}  # slot id -> its symbols (never empty between changes)
        self.where: dict[str, int] = {}  # symbol -> its slot id
        self._room: list[int] = []  # heap of slot ids that may have room (checked when popped)
        self._in_room: set[int] = set()  # the ids in the heap, each at most once
        self._next_id = 0

    def change(self, added: Iterable[str], removed: Iterable[str]) -> tuple[set[int], set[int]]:
        """Apply a change of the wanted set; returns (ids of the slots whose symbols changed,
        new ones included; ids of the slots retired, now gone from :attr:`slots`). A symbol added
        twice or removed when not held is ignored."""
        touched: set[int] = set()
        for symbol in removed:
            slot = self.where.pop(symbol, None)
            if slot is not None:
                self.slots[slot].discard(symbol)
                self._has_room(slot)
                touched.add(slot)
        for symbol in sorted(s for s in added if s not in self.where):
            slot = self._first_room()
            self.slots[slot].add(symbol)
            self.where[symbol] = slot
            touched.add(slot)
        retired = {slot for slot in touched if not self.slots[slot]}
        for slot in retired:
            del self.slots[slot]
        if retired & self._in_room:  # O(s), once per retired slot
            self._in_room -= retired
            self._room = [slot for slot in self._room if slot not in retired]
            heapq.heapify(self._room)
        return touched - retired, retired

    def _has_room(self, slot: int) -> None:
        if slot not in self._in_room:
            self._in_room.add(slot)
            heapq.heappush(self._room, slot)

    def _first_room(self) -> int:
        room = self._room
        while room:
            slot = room[0]
            if len(self.slots[slot]) < self.cap:
                return slot
            heapq.heappop(room)  # full: it re-enters when a removal makes room
            self._in_room.discard(slot)
        slot = self._next_id
        self._next_id += 1
        self.slots[slot] = set()
        self._has_room(slot)
        return slot

    def _check(self) -> None:
        """Verify the invariants; raises AssertionError on the first broken one."""
        assert all(0 < len(symbols) <= self.cap for symbols in self.slots.values())
        assert sum(len(symbols) for symbols in self.slots.values()) == len(self.where)
        for symbol, slot in self.where.items():
            assert symbol in self.slots[slot]
        with_room = {slot for slot, symbols in self.slots.items() if len(symbols) < self.cap}
        assert with_room <= set(self._room), "a slot with room is missing from the heap"
        assert set(self._room) == self._in_room and len(self._room) == len(self._in_room)
        assert self._in_room <= set(self.slots), "a retired slot in the heap"


def batches(symbols: Iterable[str], size: int) -> list[tuple[str, ...]]:
    """``symbols`` sorted and cut into tuples of at most ``size`` (``[]`` for none)."""
    if size < 1:
        raise ValueError(f"a batch holds at least one symbol, not {size}")
    ordered = sorted(symbols)
    return [tuple(ordered[i : i + size]) for i in range(0, len(ordered), size)]


def requests(
    subscribed: Set[str], want: Set[str], per_message: int, first_id: int
) -> list[Request]:
    """The requests that bring ``subscribed`` to ``want``: unsubscribes, then subscribes, each
    at most ``per_message`` symbols, numbered from ``first_id`` on."""
    ops: list[tuple[Literal["subscribe", "unsubscribe"], tuple[str, ...]]] = [
        *(("unsubscribe", batch) for batch in batches(subscribed - want, per_message)),
        *(("subscribe", batch) for batch in batches(want - subscribed, per_message)),
    ]
    return [Request(op, symbols, first_id + n) for n, (op, symbols) in enumerate(ops)]


def apply(subscribed: Set[str], done: Iterable[Request]) -> set[str]:
    """``subscribed`` after ``done`` (what a connection holds once its requests went out)."""
    result = set(subscribed)
    for request in done:
        if request.op == "subscribe":
            result.update(request.symbols)
        else:
            result.difference_update(request.symbols)
    return result


class SentRequests:
    """A connection's request numbers: the next one, and the last ``limit`` sent, by number.

    Numbers start at 1 and are never reused on the connection. An answered request cannot be
    told apart from a pending one (acks go to the exchange's ``parse``, which gives ``[]``), so
    the memory is bounded instead: an error reply for a request older than the last ``limit``
    is not attributed (the runner then records it as an unattributed rejection).
    """

    def __init__(self, limit: int = SENT_LIMIT) -> None:
        self.next_id = 1
        self._limit = limit
        self._sent: OrderedDict[int, Request] = OrderedDict()

    def record(self, sent: Iterable[Request]) -> None:
        """Remember ``sent`` (numbered from :attr:`next_id` on by :func:`requests`)."""
        for request in sent:
            self._sent[request.request_id] = request
            self.next_id = max(self.next_id, request.request_id + 1)
            if len(self._sent) > self._limit:
                self._sent.popitem(last=False)

    def take(self, request_id: int | None) -> Request | None:
        """The request numbered ``request_id``, forgotten from now on; None if unknown."""
        return None if request_id is None else self._sent.pop(request_id, None)

    def __len__(self) -> int:
        return len(self._sent)


class Pacer:
    """When messages may go out on one connection: at most ``rate`` per second, as times.

    :meth:`reserve` hands out the next free time at or after ``now`` and books it, so two tasks
    sending on one connection (subscriptions and heartbeats) share the rate.
    """

    def __init__(self, rate: float) -> None:
        if not rate > 0:
            raise ValueError(f"a message rate must be > 0, not {rate}")
        self.interval = 1.0 / rate
        self._next = -float("inf")

    def reserve(self, now: float) -> float:
        """The time at which the next message may be sent (``>= now``), booked for it."""
        at = max(now, self._next)
        self._next = at + self.interval
        return at
