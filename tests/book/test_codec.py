"""The exact decimal codec on its own: keys at the boundaries, and tick prices of any precision.

The book is exact only if ``key_of`` refuses every target it cannot hold and ``price_keys``
gives the true floor and ceiling of ``price * 10**18``; both are checked here against
``fractions.Fraction`` arithmetic, which cannot round.
"""

from __future__ import annotations

import math
from decimal import Decimal, DecimalException, localcontext
from fractions import Fraction

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from engine.book.codec import (
    E18,
    EXACT,
    MAX_KEY,
    MAX_TARGET,
    MIN_TARGET,
    PRECISION,
    SCALE,
    decimal_of,
    key_of,
    price_keys,
)
from engine.errors import PriceOutOfRange

TOP = Decimal("999999999999999999.999999999999999999")  # the largest target (36 digits)


@pytest.mark.parametrize(
    ("target", "key"),
    [
        (MIN_TARGET, 1),
        (Decimal("0.000000000000000001"), 1),
        (Decimal("0.000000000000000002000"), 2),  # zeros past the precision are still exact
        (TOP, MAX_KEY - 1),
        (Decimal("1"), SCALE),
        (Decimal("1.000000000000000000000000"), SCALE),
        (Decimal("70000.10"), 70000 * SCALE + SCALE // 10),
        (Decimal("1E+17"), 10**17 * SCALE),
        (5, 5 * SCALE),
    ],
)
def test_key_of_holds_the_boundaries_exactly(target: Decimal | int, key: int) -> None:
    assert key_of(target) == key
    assert decimal_of(key) == target


@pytest.mark.parametrize(
    "target",
    [
        MAX_TARGET,
        Decimal("1E+18"),
        Decimal("1000000000000000000.000000000000000001"),
        Decimal(0),
        Decimal("-0"),
        Decimal("-1"),
        MIN_TARGET / 10,  # 1E-19
        Decimal("1.0000000000000000001"),  # 19 fractional digits
        Decimal("0.0000000000000000015"),
        Decimal("NaN"),
        Decimal("sNaN"),
        Decimal("Infinity"),
        Decimal("-Infinity"),
        0,
        1.5,
        "1",
    ],
)
def test_key_of_refuses_what_it_cannot_hold(target: object) -> None:
    with pytest.raises(PriceOutOfRange):
        key_of(target)  # type: ignore[arg-type]


valid_keys = st.integers(min_value=1, max_value=MAX_KEY - 1)


@given(valid_keys)
@example(1)
@example(MAX_KEY - 1)
@example(SCALE)
def test_decimal_of_is_the_inverse_in_its_shortest_plain_form(key: int) -> None:
    target = decimal_of(key)
    assert key_of(target) == key
    assert Fraction(target) == Fraction(key, SCALE)
    _, digits, exponent = target.as_tuple()
    assert isinstance(exponent, int) and exponent <= 0, "a whole number has exponent 0"
    assert exponent == 0 or digits[-1] != 0, "no trailing zero after the point"


# Targets written in any form: a coefficient and an exponent, possibly with trailing zeros.
any_targets = st.builds(
    lambda coefficient, exponent: Decimal(coefficient).scaleb(exponent),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.integers(min_value=-PRECISION - 6, max_value=PRECISION + 2),
)


def bulk_key(target: Decimal) -> int | None:
    """The book's inlined bulk path (``TriggerBook._stage_chunk``); None where it gives up."""
    try:
        with localcontext(EXACT):
            key = int(EXACT.to_integral_exact(target * E18))
    except (DecimalException, OverflowError, TypeError, ValueError):
        return None
    return key if key > 0 else None


@given(any_targets)
@example(TOP)
@example(MIN_TARGET)
@example(MAX_TARGET)
@example(Decimal("100000000000000000.00000000000000000000000"))  # exact, more than 36 digits
def test_key_of_agrees_with_fractions_and_with_the_bulk_path(target: Decimal) -> None:
    value = Fraction(target)
    holdable = 0 < value < MAX_TARGET and (value * SCALE).denominator == 1
    if holdable:
        assert key_of(target) == value * SCALE
    else:
        with pytest.raises(PriceOutOfRange):
            key_of(target)
    fast = bulk_key(target)
    if fast is not None:
        assert holdable and fast == key_of(target)
    elif holdable:  # it gives up (and key_of decides) only on digits a trap counts as rounded
        digits, exponent = len(target.as_tuple().digits), target.as_tuple().exponent
        assert digits > 2 * PRECISION or exponent < -PRECISION, "the bulk path gave up too soon"


# Tick prices of any precision, from far below the smallest key to far above the largest.
prices = st.one_of(
    any_targets,
    st.builds(
        lambda coefficient, exponent: Decimal(coefficient).scaleb(exponent),
        st.integers(min_value=-(10**50), max_value=10**50),
        st.integers(min_value=-80, max_value=40),
    ),
    st.decimals(min_value=Decimal("-1E+20"), max_value=Decimal("1E+20")),
)


@given(prices)
@example(Decimal(0))
@example(Decimal("-0"))
@example(MIN_TARGET)
@example(MIN_TARGET / 10)
@example(Decimal("1.5E-19"))
@example(Decimal("9.99E-20"))
@example(Decimal("1E-500"))
@example(TOP)
@example(Decimal("999999999999999999.9999999999999999995"))
@example(MAX_TARGET)
@example(Decimal("1E+500"))
@example(Decimal("70000.1234567890123456789"))
def test_price_keys_are_the_exact_floor_and_ceiling(price: Decimal) -> None:
    floor_key, ceil_key = price_keys(price)
    scaled = Fraction(price) * SCALE
    if price <= 0:
        assert (floor_key, ceil_key) == (0, 0)
    elif price >= MAX_TARGET:
        assert (floor_key, ceil_key) == (MAX_KEY, MAX_KEY)
    else:
        assert (floor_key, ceil_key) == (math.floor(scaled), math.ceil(scaled))
    # What the book relies on: for every key near the price, the comparisons are exact.
    for key in {floor_key - 1, floor_key, floor_key + 1, ceil_key - 1, ceil_key, ceil_key + 1}:
        if 1 <= key < MAX_KEY:
            target = Fraction(key, SCALE)
            assert (key <= floor_key) == (target <= Fraction(price))
            assert (key >= ceil_key) == (target >= Fraction(price))


@pytest.mark.parametrize("price", ["NaN", "-NaN", "sNaN", "Infinity", "-Infinity"])
def test_price_keys_refuse_a_price_that_is_not_finite(price: str) -> None:
    with pytest.raises(PriceOutOfRange):
        price_keys(Decimal(price))
