"""The feed runner's plan: which symbols go where, what to send, and when. Pure, no I/O.

The runner (``engine.feeds.runner``, ``slot``, ``session``) does the sockets; every decision it
takes about subscriptions is made here, on plain values, so it is tested without a socket
(``tests/feeds/test_plan.py``, with a hypothesis model of the whole cycle):

- :func:`place` spreads the wanted symbols over *slots* (one connection each, at most
  ``max_streams_per_connection`` symbols), keeping every symbol where it already is;
- :func:`requests` turns the difference between what a connection has subscribed and what it
  should have into numbered :class:`Request` batches of at most ``symbols_per_message`` symbols
  (unsubscribes first, so a full connection makes room before it adds);
- :class:`SentRequests` remembers the last requests of a connection by number, bounded, so an
  error reply that carries only the number is mapped back to the symbols it refused;
- :class:`Pacer` says when the next message may go out at ``max_messages_per_second``.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence, Set
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "SENT_LIMIT",
    "Pacer",
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
