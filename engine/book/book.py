"""The trigger book: every live trigger, sorted per symbol, matched against each tick.

Per (exchange, symbol) the book keeps two sorted sides: ``above`` (a trigger fires on the first
tick with ``price >= target``) and ``below`` (``price <= target``). A tick pops every crossed
trigger from the near end of each side, so ``apply`` is O(log n + k) for k fires, and a tick that
fires nothing costs two dict lookups and two Decimal comparisons against cached boundaries.

The book stands on two modules below it, which never import it back:

- ``engine.book.codec`` holds targets exactly as scaled integer keys (``target * 10**18``) and
  turns a tick price of any precision into the floor and ceiling keys it is compared by; a target
  it cannot hold raises :class:`~engine.errors.PriceOutOfRange`. No float is ever involved.
- ``engine.book.entries`` packs key, side number and id into one int and keeps a side's entries
  sorted (``Entries``, which pops a whole end in O(log n + k)).
- this module owns the symbols, the sides, the id index and the order of fires.

Memory. Per trigger the book keeps one Python int (about 48 bytes), referenced from the sorted
side and from the id index, and nothing else: about 130 bytes per trigger with the index,
against about 290 for holding the ``Trigger`` records (56 bytes) and their ``Decimal`` targets
(104 bytes). The records are rebuilt when a trigger leaves the book or is read; a rebuilt target
equals the original but is written in its shortest plain form (``Decimal("70000.10")`` comes back
as ``Decimal("70000.1")``).

The hot paths (``apply``, ``_fire``, ``_Side.fire``, ``_stage_chunk``) inline the entry layout
and bind the codec's contexts as locals: a call per tick or per entry would cost more than the
operation it names.

The book does no I/O and never awaits: the book actor (``engine.book.actor``) owns it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from decimal import Decimal, DecimalException, InvalidOperation
from decimal import localcontext as _localcontext
from itertools import islice
from operator import attrgetter
from typing import NoReturn

from engine.book.codec import (
    E18,
    EXACT,
    MAX_KEY,
    MAX_TARGET,
    MIN_TARGET,
    PRECISION,
    TEN18,
    WIDE,
    decimal_of,
    key_of,
    price_keys,
)
from engine.book.entries import (
    ID_BITS,
    ID_MASK,
    ID_OFFSET,
    KEY_SHIFT,
    MAX_SIDES,
    SIDE_MASK,
    Entries,
    check_id,
    unpack,
)
from engine.errors import BookError, DuplicateTrigger, PriceOutOfRange
from engine.model import Direction, Tick, Trigger

__all__ = ["MAX_TARGET", "MIN_TARGET", "PRECISION", "TriggerBook"]

_ID = attrgetter("id")
_CHUNK = 16384  # triggers per bulk_load step: bounds its scratch lists
_POS_INF = Decimal("Infinity")
_NEG_INF = Decimal("-Infinity")


class _Side:
    """One sorted side of one symbol; ``number`` is what its entries carry in their low bits."""

    __slots__ = ("direction", "entries", "exchange", "number", "symbol")

    def __init__(self, exchange: str, symbol: str, direction: Direction, number: int) -> None:
        self.exchange = exchange
        self.symbol = symbol
        self.direction = direction
        self.number = number
        self.entries = Entries()

    def trigger(self, entry: int) -> Trigger:
        """The record an entry of this side stands for."""
        return Trigger(
            (entry & ID_MASK) - ID_OFFSET,
            self.exchange,
            self.symbol,
            self.direction,
            decimal_of(entry >> KEY_SHIFT),
        )

    def fire(self, popped: list[int], ids: dict[int, int]) -> list[Trigger]:
        """The records of ``popped`` (entries just taken out of this side, ascending), whose
        ids it also drops from ``ids``.

        This is the burst path, so it is one loop with no call per entry but the record's:
        ties in target are adjacent and share one rebuilt Decimal (immutable, so sharing is
        safe), which makes a run of equal round-number targets nearly free.
        """
        exchange, symbol, direction = self.exchange, self.symbol, self.direction
        divide, ten18, shift, mask, offset = WIDE.divide, TEN18, KEY_SHIFT, ID_MASK, ID_OFFSET
        fired: list[Trigger] = []
        append = fired.append
        last_key = 0  # no entry has key 0
        target = TEN18
        for entry in popped:
            key = entry >> shift
            if key != last_key:
                target = divide(key, ten18)
                last_key = key
            tid = (entry & mask) - offset
            del ids[tid]
            append(Trigger(tid, exchange, symbol, direction, target))
        return fired


class _Symbol:
    """Both sides of one (exchange, symbol) and the boundaries a non-firing tick is checked by.

    ``lowest_above`` is the smallest above target (``+Infinity`` when that side is empty) and
    ``highest_below`` the largest below target (``-Infinity`` when empty): a price strictly
    between them fires nothing.
    """

    __slots__ = ("above", "below", "highest_below", "lowest_above")

    def __init__(self, above: _Side, below: _Side) -> None:
        self.above = above
        self.below = below
        self.lowest_above = _POS_INF
        self.highest_below = _NEG_INF

    def refresh_above(self) -> None:
        entries = self.above.entries
        self.lowest_above = decimal_of(entries[0] >> KEY_SHIFT) if entries else _POS_INF

    def refresh_below(self) -> None:
        entries = self.below.entries
        self.highest_below = decimal_of(entries[-1] >> KEY_SHIFT) if entries else _NEG_INF

    def __len__(self) -> int:
        return len(self.above.entries) + len(self.below.entries)


class _Staged:
    """Entries of one symbol waiting for ``bulk_load`` to validate the whole input.

    ``above_middle``/``below_middle`` are the bits an entry of each side carries below its key
    (side number and id offset), so staging a trigger is one add and one or.
    """

    __slots__ = (
        "above",
        "above_middle",
        "below",
        "below_middle",
        "exchange",
        "number",
        "symbol",
    )

    def __init__(self, exchange: str, symbol: str, number: int) -> None:
        self.exchange = exchange
        self.symbol = symbol
        self.number = number
        self.above: list[int] = []
        self.below: list[int] = []
        self.above_middle = (number << ID_BITS) + ID_OFFSET
        self.below_middle = ((number + 1) << ID_BITS) + ID_OFFSET


class TriggerBook:
    """Every live trigger, per (exchange, symbol), matched exactly against ticks.

    A trigger is one-shot: ``apply`` returns it once and removes it. Fires come out above-side
    first, then below-side, each by (target, id) ascending. Every method leaves the book
    unchanged when it raises.
    """

    def __init__(self) -> None:
        # exchange -> symbol -> _Symbol; symbols with no trigger are removed, so a tick for a
        # symbol nobody watches stops at a dict miss.
        self._books: dict[str, dict[str, _Symbol]] = {}
        self._ids: dict[int, int] = {}  # trigger id -> its entry (the same int object)
        self._sides: list[_Side | None] = []  # indexed by side number
        self._free: list[int] = []  # numbers of removed symbols' above sides, for reuse
        self._sizes: dict[str, int] = {}  # exchange -> live triggers: /metrics reads it per scrape

    # --- reading -------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, trigger_id: object) -> bool:
        return trigger_id in self._ids

    def get(self, trigger_id: int) -> Trigger | None:
        """The live trigger with this id, or None.

        Runtime complexity: `O(1)`
        """
        entry = self._ids.get(trigger_id)
        if entry is None:
            return None
        return self._side_of(entry).trigger(entry)

    def counts(self) -> dict[tuple[str, str], tuple[int, int]]:
        """``(above, below)`` trigger counts per (exchange, symbol) with at least one trigger.

        Runtime complexity: `O(s)` for s symbols.
        """
        return {
            (exchange, symbol): (len(state.above.entries), len(state.below.entries))
            for exchange, symbols in self._books.items()
            for symbol, state in symbols.items()
        }

    def sizes(self) -> dict[str, int]:
        """The number of live triggers per exchange with at least one.

        Runtime complexity: `O(e)` for e exchanges (kept as triggers come and go).
        """
        return {exchange: n for exchange, n in self._sizes.items() if n}

    def symbols(self, exchange: str) -> set[str]:
        """The symbols of ``exchange`` with at least one live trigger.

        Runtime complexity: `O(s)` for s symbols of the exchange.
        """
        return set(self._books.get(exchange, ()))

    def has_symbol(self, exchange: str, symbol: str) -> bool:
        """Whether ``symbol`` on ``exchange`` has at least one live trigger.

        Runtime complexity: `O(1)`
        """
        return symbol in self._books.get(exchange, ())

    def snapshot(self) -> list[Trigger]:
        """Every live trigger, sorted by id.

        Runtime complexity: `O(n log(n))`
        """
        ids = self._ids
        return [self._side_of(ids[i]).trigger(ids[i]) for i in sorted(ids)]

    # --- changing ------------------------------------------------------------------------------

    def add(self, trigger: Trigger) -> None:
        """Put ``trigger`` into the book.

        Raises DuplicateTrigger when its id is already in the book, PriceOutOfRange when its
        target cannot be held exactly (see the module docstring), and BookError for an id
        outside the signed 64-bit range or a direction that is not a Direction.

        Runtime complexity: `O(log(n))`
        """
        if trigger.id in self._ids:
            raise DuplicateTrigger(f"trigger {trigger.id} is already in the book")
        key = key_of(trigger.target)
        check_id(trigger.id)
        above = _is_above(trigger.direction)
        state = self._symbol(trigger.exchange, trigger.symbol)
        side = state.above if above else state.below
        entry = (key << KEY_SHIFT) | (side.number << ID_BITS) | (trigger.id + ID_OFFSET)
        side.entries.add(entry)
        self._ids[trigger.id] = entry
        self._sizes[trigger.exchange] = self._sizes.get(trigger.exchange, 0) + 1
        if above:
            if trigger.target < state.lowest_above:
                state.refresh_above()
        elif trigger.target > state.highest_below:
            state.refresh_below()

    def remove(self, trigger_id: int) -> Trigger | None:
        """Take the trigger with this id out of the book; None when it is not (or no longer) in.

        Runtime complexity: `O(log(n))`
        """
        entry = self._ids.pop(trigger_id, None)
        if entry is None:
            return None
        side = self._side_of(entry)
        entries = side.entries
        first, last = entries[0], entries[-1]
        entries.remove(entry)
        state = self._books[side.exchange][side.symbol]
        self._sizes[side.exchange] -= 1
        if side is state.above:
            if entry == first:
                state.refresh_above()
        elif entry == last:
            state.refresh_below()
        if not len(state):
            self._drop(state)
        return side.trigger(entry)

    def apply(self, tick: Tick) -> list[Trigger]:
        """Fire every trigger of the tick's symbol that its price reaches, and remove them.

        A price equal to a target fires it; so does a price beyond it (a jump between ticks).
        The result lists above-side fires, then below-side fires, each by (target, id).

        Raises PriceOutOfRange when the tick's price is not finite (the book is unchanged).

        Runtime complexity: `O(1)` when nothing fires, `O(log(n) + k)` for k fires.
        """
        symbols = self._books.get(tick.exchange)
        if symbols is None:
            return []
        state = symbols.get(tick.symbol)
        if state is None:
            return []
        price = tick.price
        try:
            if state.lowest_above > price > state.highest_below:
                return []
        except InvalidOperation:  # a NaN price with the default (trapping) context
            raise PriceOutOfRange(f"tick price {price} is not finite") from None
        return self._fire(state, price)

    def bulk_load(self, triggers: Iterable[Trigger]) -> list[tuple[Trigger, str]]:
        """Add many triggers at once: the restart path, sorting each side once.

        Every trigger the book can hold is loaded; one it cannot hold (a target that is not
        finite, not > 0, not below ``MAX_TARGET`` or finer than ``PRECISION``; a direction that
        is neither above nor below) is left out and returned with the reason, in input order,
        so that one old row never stops a start. Only an internal error keeps it all or
        nothing: DuplicateTrigger (an id already in the book or twice in the input: a caller's
        bug, ids are primary keys) and BookError (an id outside 64 bits, no side number left)
        leave the book as it was. ``triggers`` may be any iterable (a list, or a generator
        streaming rows).

        Runtime complexity: `O(n log(n))` for n triggers.
        """
        staged: dict[str, dict[str, _Staged]] = {}  # exchange -> symbol -> staging area
        new_ids: dict[int, int] = {}
        refused: list[tuple[Trigger, str]] = []
        numbers = self._numbers()
        source = iter(triggers)
        # The exact context is entered per chunk so that the caller's generator (which may do
        # its own Decimal arithmetic) never runs under it.
        while chunk := list(islice(source, _CHUNK)):
            count = len(new_ids)
            before = len(refused)
            with _localcontext(EXACT):
                self._stage_chunk(chunk, staged, new_ids, numbers, refused)
            if len(new_ids) != count + len(chunk) - (len(refused) - before) or (
                self._ids and not self._ids.keys().isdisjoint(map(_ID, chunk))
            ):
                _raise_duplicate(chunk, islice(new_ids, count), self._ids)
        if new_ids:
            check_id(min(new_ids))
            check_id(max(new_ids))
        for exchange, symbols in staged.items():
            for group in symbols.values():
                self._sizes[exchange] = (
                    self._sizes.get(exchange, 0) + len(group.above) + len(group.below)
                )
                state = self._symbol(group.exchange, group.symbol, group.number)
                assert state.above.number == group.number
                if group.above:
                    state.above.entries = Entries.merged(state.above.entries, group.above)
                    state.refresh_above()
                if group.below:
                    state.below.entries = Entries.merged(state.below.entries, group.below)
                    state.refresh_below()
        if self._ids:
            self._ids.update(new_ids)
        else:
            self._ids = new_ids
        return refused

    def _stage_chunk(
        self,
        chunk: list[Trigger],
        staged: dict[str, dict[str, _Staged]],
        new_ids: dict[int, int],
        numbers: Iterator[int],
        refused: list[tuple[Trigger, str]],
    ) -> None:
        """Validate and stage one chunk of ``bulk_load`` (under the exact context); a trigger
        the book cannot hold goes to ``refused`` with the reason instead.

        This loop is the load time, so it does the least per trigger (measured): an exact
        ``target * 10**18`` whose traps reject too many digits and a target of 10**18 or more,
        ``to_integral_exact`` whose trap rejects a fraction (a target finer than 10**-18),
        ``int`` (which rejects NaN and Infinity), one compare for a target <= 0, two dict
        lookups for the symbol and three int operations for the entry. Anything unusual goes
        through :func:`key_of`, which finds the precise reason (or the key of an exact target
        of more than 36 digits).
        """
        e18, integral, shift = E18, EXACT.to_integral_exact, KEY_SHIFT
        above, below = Direction.ABOVE, Direction.BELOW
        for trigger in chunk:
            target = trigger.target
            try:
                key = int(integral(target * e18))
            except (DecimalException, OverflowError, TypeError, ValueError):
                key = 0
            if key <= 0:  # (the context's Emax traps a key of 10**36 or more)
                try:
                    key = key_of(target)
                except PriceOutOfRange as exc:
                    refused.append((trigger, str(exc)))
                    continue
            direction = trigger.direction
            if direction is not above and direction is not below:  # e.g. the string "above"
                try:
                    direction = above if _is_above(direction) else below
                except BookError as exc:
                    refused.append((trigger, str(exc)))
                    continue
            try:
                group = staged[trigger.exchange][trigger.symbol]
            except KeyError:
                group = self._stage(trigger.exchange, trigger.symbol, numbers)
                staged.setdefault(group.exchange, {})[group.symbol] = group
            tid = trigger.id
            if direction is above:
                entry = (key << shift) | (group.above_middle + tid)
                group.above.append(entry)
            else:
                entry = (key << shift) | (group.below_middle + tid)
                group.below.append(entry)
            new_ids[tid] = entry

    # --- invariants ----------------------------------------------------------------------------

    def _check(self) -> None:
        """Verify every invariant; raises AssertionError on the first broken one.

        Runtime complexity: `O(n)`
        """
        seen = 0
        live_numbers: set[int] = set()
        for exchange, symbols in self._books.items():
            assert symbols, f"empty exchange map {exchange}"
            for symbol, state in symbols.items():
                assert len(state), f"empty symbol {exchange}/{symbol}"
                for side, direction in ((state.above, "above"), (state.below, "below")):
                    assert side.exchange == exchange and side.symbol == symbol
                    assert side.direction == direction
                    assert self._sides[side.number] is side
                    live_numbers.add(side.number)
                    side.entries._check()
                    for entry in side.entries:
                        key, number, tid = unpack(entry)
                        assert number == side.number
                        assert 0 < key < MAX_KEY
                        assert self._ids.get(tid) is entry, f"id {tid} not indexed to its entry"
                    seen += len(side.entries)
                assert state.above.number + 1 == state.below.number
                above, below = state.above.entries, state.below.entries
                expected = decimal_of(above[0] >> KEY_SHIFT) if above else _POS_INF
                assert state.lowest_above == expected, "stale lowest_above"
                expected = decimal_of(below[-1] >> KEY_SHIFT) if below else _NEG_INF
                assert state.highest_below == expected, "stale highest_below"
        assert seen == len(self._ids), "an indexed id is in no side"
        sizes = {e: sum(len(s) for s in symbols.values()) for e, symbols in self._books.items()}
        assert self.sizes() == sizes, "stale per-exchange sizes"
        dead = {n for n, side in enumerate(self._sides) if side is None}
        assert live_numbers | dead == set(range(len(self._sides)))
        assert not live_numbers & dead
        assert {n for n in self._free} | {n + 1 for n in self._free} <= dead

    # --- internals -----------------------------------------------------------------------------

    def _side_of(self, entry: int) -> _Side:
        side = self._sides[(entry >> ID_BITS) & SIDE_MASK]
        assert side is not None
        return side

    def _numbers(self) -> Iterator[int]:
        """The side numbers new symbols get, in order: recycled ones first, then fresh ones."""
        yield from reversed(self._free)
        number = len(self._sides)
        while number + 2 <= MAX_SIDES:
            yield number
            number += 2

    def _stage(self, exchange: str, symbol: str, numbers: Iterator[int]) -> _Staged:
        """A staging area for bulk-loaded entries of (exchange, symbol), numbered as it will be."""
        state = self._books.get(exchange, {}).get(symbol)
        number = state.above.number if state is not None else next(numbers, None)
        if number is None:
            raise BookError(f"the book holds at most {MAX_SIDES // 2} symbols")
        return _Staged(exchange, symbol, number)

    def _symbol(self, exchange: str, symbol: str, number: int | None = None) -> _Symbol:
        """The state of (exchange, symbol); created with side numbers ``number``, ``number + 1``
        (the next free ones by default) if new.

        Raises BookError when no side number is left.
        """
        symbols = self._books.get(exchange)
        state = symbols.get(symbol) if symbols is not None else None
        if state is not None:
            return state
        if number is None:
            number = next(self._numbers(), None)
            if number is None:
                raise BookError(f"the book holds at most {MAX_SIDES // 2} symbols")
        if symbols is None:
            symbols = self._books[exchange] = {}
        free = self._free
        if free and free[-1] == number:  # the usual case (``_numbers`` offers the last first): O(1)
            free.pop()
        elif number in free:
            free.remove(number)
        if len(self._sides) < number + 2:
            self._sides += [None] * (number + 2 - len(self._sides))
        above = _Side(exchange, symbol, Direction.ABOVE, number)
        below = _Side(exchange, symbol, Direction.BELOW, number + 1)
        self._sides[number], self._sides[number + 1] = above, below
        state = symbols[symbol] = _Symbol(above, below)
        return state

    def _drop(self, state: _Symbol) -> None:
        """Forget a symbol that has no trigger left and recycle its side numbers."""
        exchange, symbol = state.above.exchange, state.above.symbol
        symbols = self._books[exchange]
        del symbols[symbol]
        if not symbols:
            del self._books[exchange]
        self._sides[state.above.number] = self._sides[state.below.number] = None
        self._free.append(state.above.number)

    def _fire(self, state: _Symbol, price: Decimal) -> list[Trigger]:
        floor_key, ceil_key = price_keys(price)
        ids = self._ids
        if price >= state.lowest_above:
            fired = state.above.fire(
                state.above.entries.pop_below((floor_key + 1) << KEY_SHIFT), ids
            )
            state.refresh_above()
        else:
            fired = []
        if price <= state.highest_below:
            fired += state.below.fire(state.below.entries.pop_from(ceil_key << KEY_SHIFT), ids)
            state.refresh_below()
        if fired:
            self._sizes[state.above.exchange] -= len(fired)
        if not len(state):
            self._drop(state)
        return fired


def _is_above(direction: Direction) -> bool:
    if direction == Direction.ABOVE:
        return True
    if direction == Direction.BELOW:
        return False
    raise BookError(f"direction {direction!r} is neither above nor below")


def _raise_duplicate(
    chunk: list[Trigger], before: Iterable[int], known: dict[int, int]
) -> NoReturn:
    """Raise DuplicateTrigger naming the first id of ``chunk`` that is in the book or repeated
    in the input (``before`` holds the ids staged by earlier chunks)."""
    seen = set(before)
    for trigger in chunk:
        if trigger.id in known or trigger.id in seen:
            break
        seen.add(trigger.id)
    raise DuplicateTrigger(f"trigger {trigger.id} is already in the book or twice in the input")
