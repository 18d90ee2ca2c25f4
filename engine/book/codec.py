"""The book's exact decimal codec: targets as scaled integer keys, tick prices as key bounds.

Why it exists. The book compares every tick with every target exactly and never with a float,
and it keeps a target in a few bytes rather than as a ``Decimal`` (104 bytes). Both come from one
encoding: ``key = target * 10**18``, a Python int in ``[1, MAX_KEY)``. A target must be finite,
> 0, below ``MAX_TARGET`` (``10**18``) and a multiple of ``MIN_TARGET`` (``10**-18``, at most
``PRECISION`` fractional digits); anything else raises
:class:`~engine.errors.PriceOutOfRange`. A tick may have any precision: :func:`price_keys`
gives ``floor(price * 10**18)`` and ``ceil(price * 10**18)``, so that ``key <= floor`` is
exactly ``target <= price`` and ``key >= ceil`` is exactly ``target >= price``.

Runtime complexity. Every function is O(1) for the bounded digits a price can have (at most
36 significant digits for a key; a tick's digits are whatever its feed sent).

The contexts are shared with the book's bulk path, which inlines the encoding per trigger:
``int(EXACT.to_integral_exact(target * E18))`` under ``localcontext(EXACT)`` is the key of a
valid target and traps (or gives a key <= 0) for anything else, which :func:`key_of` then
explains. Pure functions and constants; no I/O.
"""

from __future__ import annotations

from decimal import Context, Decimal, Inexact, InvalidOperation, Overflow, Rounded

from engine import limits
from engine.errors import PriceOutOfRange

__all__ = [
    "E18",
    "EXACT",
    "MAX_KEY",
    "MAX_TARGET",
    "MIN_TARGET",
    "PRECISION",
    "SCALE",
    "TEN18",
    "WIDE",
    "decimal_of",
    "key_of",
    "price_keys",
]

PRECISION = limits.PRICE_FRACTION_DIGITS
"""Fractional digits the book holds exactly; a target finer than this is rejected."""

SCALE = 10**PRECISION
"""A key is its target times this."""
MIN_TARGET = Decimal(1).scaleb(-PRECISION)
"""The smallest target the book holds (``1E-18``), whose key is 1."""
MAX_TARGET = limits.PRICE_BOUND
"""Targets must be below this (``10**18``)."""
MAX_KEY = SCALE * SCALE
"""Keys are in ``[1, MAX_KEY)``; ``price_keys`` clamps a price at or above ``MAX_TARGET`` here."""

TEN18 = Decimal(SCALE)
"""The divisor that turns a key back into its target."""
E18 = Decimal(1).scaleb(PRECISION)
"""``1E+18``: coefficient 1, so multiplying by it only moves the exponent."""
EXACT = Context(
    prec=2 * PRECISION,
    Emax=2 * PRECISION - 1,
    traps=[InvalidOperation, Inexact, Rounded, Overflow],
)
"""Multiplying a valid target by ``E18`` needs at most 36 digits; under this context anything
inexact traps, and so does a product of ``10**36`` or more (Emax): a target of ``10**18`` or
more."""
WIDE = Context(prec=4 * PRECISION, traps=[InvalidOperation, Inexact])
"""Dividing a key by ``TEN18`` with this much precision yields the shortest exact plain form."""


def key_of(target: Decimal | int) -> int:
    """The exact scaled key of ``target``.

    Raises PriceOutOfRange when the target is not a Decimal (or int), not finite, not > 0, not
    below ``MAX_TARGET`` or finer than ``PRECISION`` fractional digits.

    Runtime complexity: `O(1)`
    """
    if isinstance(target, int):
        target = Decimal(target)
    if not isinstance(target, Decimal) or not target.is_finite():
        raise PriceOutOfRange(f"target {target!r} is not a finite decimal")
    if target <= 0:
        raise PriceOutOfRange(f"target {target} is not > 0")
    if target >= MAX_TARGET:
        raise PriceOutOfRange(f"target {target} is not below {MAX_TARGET}")
    if target.adjusted() < -PRECISION:
        raise PriceOutOfRange(f"target {target} is finer than {PRECISION} fractional digits")
    numerator, denominator = target.as_integer_ratio()
    factor, remainder = divmod(SCALE, denominator)
    if remainder:
        raise PriceOutOfRange(f"target {target} is finer than {PRECISION} fractional digits")
    return numerator * factor


def decimal_of(key: int) -> Decimal:
    """The target a key stands for, in its shortest plain form (``70000.1``, ``100``).

    Runtime complexity: `O(1)`
    """
    # Exact division keeps the ideal exponent 0 when it can and only uses the fractional digits
    # the value needs, so no trailing zeros and no exponent notation for whole numbers.
    return WIDE.divide(key, TEN18)


def price_keys(price: Decimal) -> tuple[int, int]:
    """``(floor(price * 10**18), ceil(price * 10**18))``, clamped to ``[0, MAX_KEY]``.

    A price at or below 0 gives ``(0, 0)`` (below every key), a price at or above
    ``MAX_TARGET`` gives ``(MAX_KEY, MAX_KEY)`` (above every key). Raises PriceOutOfRange for a
    price that is not finite.

    Runtime complexity: `O(1)` for a bounded number of digits.
    """
    if not price.is_finite():
        raise PriceOutOfRange(f"tick price {price} is not finite")
    if price <= 0:
        return 0, 0  # below every key: no above fires, every below fires
    if price >= MAX_TARGET:
        return MAX_KEY, MAX_KEY  # above every key: every above fires, no below fires
    if price.adjusted() < -PRECISION - 1:
        return 0, 1  # between 0 and the smallest key
    numerator, denominator = price.as_integer_ratio()
    scaled = numerator * SCALE
    return scaled // denominator, -(-scaled // denominator)
