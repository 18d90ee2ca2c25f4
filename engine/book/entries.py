"""The book's packed entries: one int per trigger, and a sorted list that pops a whole end.

Why it exists. Per trigger the book keeps a single Python int (about 48 bytes), referenced from
its sorted side and from the id index, instead of a record and a ``Decimal``. This module owns
how that int is laid out and the one class that reaches into sortedcontainers' private lists
(``_lists``, ``_maxes``, ``_index``, ``_len``, ``_load``), so that a sortedcontainers upgrade
touches this file alone; its tests hold it against ``SortedList._check()``.

Layout of an entry, most significant first::

    key (codec.key_of) | side number (SIDE_BITS = 24) | trigger id + 2**63 (ID_BITS = 64)

Within one side the side bits are constant, so entries sort by (key, id): the fire order. The
id sits in the low bits so that reading it back is one mask and one subtraction. The book inlines
these operations on its hot paths (a call per entry costs more than the operation);
:func:`pack` and :func:`unpack` state them once, for checks and tests.

Runtime complexity: ``Entries.pop_below``/``pop_from`` are O(log n + k) for k entries popped,
``Entries.merged`` O((n + k) log(n + k)); the rest is SortedList's.
"""

from __future__ import annotations

from bisect import bisect_left

from sortedcontainers import SortedList

from engine.errors import BookError

__all__ = [
    "ID_BITS",
    "ID_MASK",
    "ID_OFFSET",
    "KEY_SHIFT",
    "MAX_SIDES",
    "SIDE_BITS",
    "SIDE_MASK",
    "Entries",
    "check_id",
    "pack",
    "unpack",
]

SIDE_BITS = 24
SIDE_MASK = (1 << SIDE_BITS) - 1
MAX_SIDES = 1 << SIDE_BITS
"""Side numbers are in ``[0, MAX_SIDES)``; a symbol takes two (above, below)."""
ID_BITS = 64
ID_OFFSET = 1 << 63
"""Added to a (signed 64-bit) trigger id so that the low bits are never negative."""
ID_MASK = (1 << ID_BITS) - 1
KEY_SHIFT = ID_BITS + SIDE_BITS
"""``entry >> KEY_SHIFT`` is the key; ``key << KEY_SHIFT`` is the lowest entry of that key."""


def pack(key: int, side_number: int, trigger_id: int) -> int:
    """The entry of trigger ``trigger_id`` with ``key`` on side ``side_number``.

    Assumes ``key > 0``, ``0 <= side_number < MAX_SIDES`` and an id that passes
    :func:`check_id`; it does not check them.
    """
    return (key << KEY_SHIFT) | (side_number << ID_BITS) | (trigger_id + ID_OFFSET)


def unpack(entry: int) -> tuple[int, int, int]:
    """``(key, side number, trigger id)`` of an entry: the inverse of :func:`pack`."""
    return entry >> KEY_SHIFT, (entry >> ID_BITS) & SIDE_MASK, (entry & ID_MASK) - ID_OFFSET


def check_id(trigger_id: int) -> None:
    """Raise BookError when ``trigger_id`` is outside the signed 64-bit range an entry holds."""
    if not -ID_OFFSET <= trigger_id < ID_OFFSET:
        raise BookError(f"trigger id {trigger_id} is outside the signed 64-bit range")


class Entries(SortedList):
    """A SortedList of packed entries that can pop a whole end in one step.

    ``SortedList`` deletes a slice one item at a time (a few microseconds each); firing k
    triggers must cost O(log n + k), so these two methods cut the sublists directly and keep
    every invariant of ``SortedList._check`` (sublists sorted, ``_maxes`` their last items,
    all but the last at least half the load). They drop the positional index, which
    SortedList rebuilds on its next positional call; the book makes none.
    """

    @classmethod
    def merged(cls, entries: Entries, new: list[int]) -> Entries:
        """``entries`` and ``new`` (which it sorts in place) in one list, sliced directly into
        sublists of the load factor (as ``SortedList.update`` would, without copying ``new``).

        Runtime complexity: `O((n + k) log(n + k))`
        """
        new.extend(entries)  # not +=: SortedList.__radd__ would win
        new.sort()
        merged = cls()
        load = merged._load
        merged._lists = [new[pos : pos + load] for pos in range(0, len(new), load)]
        merged._maxes = [sublist[-1] for sublist in merged._lists]
        merged._len = len(new)
        return merged

    def pop_below(self, bound: int) -> list[int]:
        """Remove and return every entry ``< bound``, ascending.

        Runtime complexity: `O(log(n) + k)` for k entries popped.
        """
        lists, maxes = self._lists, self._maxes
        if not lists or lists[0][0] >= bound:
            return []
        del self._index[:]
        whole = bisect_left(maxes, bound)  # sublists [0, whole) are popped entirely
        out: list[int] = []
        for sublist in lists[:whole]:
            out += sublist
        del lists[:whole]
        del maxes[:whole]
        if lists:
            first = lists[0]
            cut = bisect_left(first, bound)
            if cut:
                out += first[:cut]
                del first[:cut]
            if len(lists) > 1 and len(first) < self._load >> 1:
                lists[1][:0] = first
                del lists[0]
                del maxes[0]
                self._expand(0)
        self._len -= len(out)
        return out

    def pop_from(self, bound: int) -> list[int]:
        """Remove and return every entry ``>= bound``, ascending.

        Runtime complexity: `O(log(n) + k)` for k entries popped.
        """
        lists, maxes = self._lists, self._maxes
        if not lists or maxes[-1] < bound:
            return []
        del self._index[:]
        pos = bisect_left(maxes, bound)  # the first sublist holding an entry >= bound
        sublist = lists[pos]
        cut = bisect_left(sublist, bound)
        out = sublist[cut:]
        for later in lists[pos + 1 :]:
            out += later
        if cut:
            del sublist[cut:]
            maxes[pos] = sublist[-1]
            pos += 1
        del lists[pos:]
        del maxes[pos:]
        self._len -= len(out)
        return out
