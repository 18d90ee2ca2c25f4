"""Every range a value must stay in to be accepted anywhere, stated once.

The API validation (``web/validation.py``) and its OpenAPI document (``web/spec.py``), the
database constraints (``engine/store/migrations``, tied to these numbers by a test), the feed
runner's tick check and the book all follow these numbers, so that whatever one part accepts,
every other part can hold: a target the API takes is a target the book keeps and fires, a tick a
feed passes on is a fire the database records.

Outside, a value out of range is a 422 naming the field (the API) or a counted, skipped frame
(a feed). Inside, nothing out of range ever arrives; where something still does (an old row, a
plugin's bug), it is quarantined (``engine/quarantine.py``), never a crash.

Pure functions and constants, no I/O: the book imports this module.
"""

from __future__ import annotations

import unicodedata
from decimal import Decimal

__all__ = [
    "CHANNELS_MAX",
    "CODES_PER_HOUR",
    "CODE_TRIES",
    "CODE_TTL_S",
    "DESTINATIONS_MAX",
    "MAX_LIST_OFFSET",
    "MAX_PRICE",
    "MIN_PRICE",
    "NAME_MAX",
    "PRICE_FRACTION_DIGITS",
    "PRICE_TEXT_MAX",
    "PRICE_WHOLE_DIGITS",
    "SYMBOL_MAX",
    "TARGET_MAX",
    "TICK_TIME_MAX_MS",
    "price_problem",
    "text_problem",
    "tick_problem",
]

PRICE_FRACTION_DIGITS = 18
"""Fractional digits a price may have: the book keys targets as exact multiples of 10**-18."""
PRICE_WHOLE_DIGITS = 18
"""Digits before the point: every price is below 10**18."""
MIN_PRICE = Decimal(1).scaleb(-PRICE_FRACTION_DIGITS)
"""The smallest price (``1E-18``)."""
MAX_PRICE = Decimal("9" * PRICE_WHOLE_DIGITS + "." + "9" * PRICE_FRACTION_DIGITS)
"""The largest price (``999999999999999999.999999999999999999``)."""
PRICE_BOUND = Decimal(10) ** PRICE_WHOLE_DIGITS
"""Every price is below this (``10**18``)."""
PRICE_TEXT_MAX = PRICE_WHOLE_DIGITS + 1 + PRICE_FRACTION_DIGITS
"""Characters of the longest price in plain notation (37)."""

TICK_TIME_MAX_MS = 253_402_300_799_999
"""The latest exchange time a tick may carry: 9999-12-31T23:59:59.999Z, milliseconds since the
epoch. Postgres holds far later times, Python's ``datetime`` does not; 0 means "none sent"."""

MAX_LIST_OFFSET = 10_000
"""How deep a list may be paged (rows skipped): every page stays a few milliseconds whatever the
owner holds; a longer list is narrowed with a filter."""

NAME_MAX = 200
"""Characters of an alert's (or a destination's) name."""
SYMBOL_MAX = 32
"""Characters of a symbol as any exchange spells it (``OANDA:EUR_USD``, ``BTC-USDT-SWAP``)."""

TARGET_MAX = 2048
"""Characters of a destination's target (a webhook URL, an address, a chat-service URL)."""
DESTINATIONS_MAX = 20
"""Live destinations one account may have: each one is a row every fire of the owner queues."""
CHANNELS_MAX = 32
"""Entries of an alert's ``channels`` list (duplicates are folded, so a few kinds in practice)."""
CODE_TTL_S = 3600
"""How long a mailed confirmation code stays good."""
CODE_TRIES = 5
"""Wrong tries a confirmation code survives; then a new code must be asked for."""
CODES_PER_HOUR = 5
"""Confirmation codes one address of one account may be sent per hour (each is a mail to an
address nobody has confirmed yet: the bound keeps the API from being a way to flood one)."""

# Unicode categories no stored text may hold: controls (C0 and C1; NUL among them, which Postgres
# text cannot store) and surrogates (not encodable as UTF-8: a lone one arrives through a JSON
# escape). Both are easy to state in a JSON Schema pattern, so the API document says the same.
_REFUSED_CATEGORIES = frozenset({"Cc", "Cs"})


def price_problem(value: Decimal) -> str | None:
    """Why ``value`` cannot be a price (a target, or a tick's price), or None when it can.

    A price is a finite Decimal, ``MIN_PRICE <= value <= MAX_PRICE``, and an exact multiple of
    ``10**-PRICE_FRACTION_DIGITS`` (trailing zeros do not count: ``1.50000000000000000000``
    is 1.5). Runtime complexity: O(1) for any value out of range, whatever its exponent, so a
    request cannot make it work hard (``1e999999999`` is refused by its exponent alone).
    """
    if not isinstance(value, Decimal) or not value.is_finite():
        return "is not a finite number"
    if value <= 0:
        return "must be greater than zero"
    if value.adjusted() >= PRICE_WHOLE_DIGITS:
        return f"must be below 10^{PRICE_WHOLE_DIGITS}"
    if value.adjusted() < -PRICE_FRACTION_DIGITS:
        return f"has more than {PRICE_FRACTION_DIGITS} fractional digits"
    if value.as_tuple().exponent < -PRICE_FRACTION_DIGITS:  # type: ignore[operator]  # finite
        # Only trailing zeros may go past the last allowed digit; the bounds above keep the
        # ratio's numbers small.
        _numerator, denominator = value.as_integer_ratio()
        if 10**PRICE_FRACTION_DIGITS % denominator:
            return f"has more than {PRICE_FRACTION_DIGITS} fractional digits"
    return None


def tick_problem(price: Decimal, exchange_time_ms: int) -> str | None:
    """Why a tick cannot be used (matched and recorded), or None when it can.

    A tick's price is in ``[MIN_PRICE, MAX_PRICE]`` at any precision: the book compares it
    exactly with every target however many digits it has (a Binance mid price may have one more
    than its bid and ask), and Postgres stores it as it is. Its time is in
    ``0..TICK_TIME_MAX_MS`` (0: none sent).
    """
    if not isinstance(price, Decimal) or not price.is_finite():
        return "price is not a finite number"
    if not MIN_PRICE <= price <= MAX_PRICE:
        return f"price {price} is outside {MIN_PRICE}..{MAX_PRICE}"
    if not 0 <= exchange_time_ms <= TICK_TIME_MAX_MS:
        return f"time {exchange_time_ms} ms is outside 0..{TICK_TIME_MAX_MS}"
    return None


def text_problem(value: str, max_length: int) -> str | None:
    """Why ``value`` cannot be stored as a name or other free text, or None when it can.

    At most ``max_length`` characters, none of them a control character (NUL, newline, ...) or
    a surrogate.
    """
    if len(value) > max_length:
        return f"is longer than {max_length} characters"
    if not value.isprintable():  # fast path: most text is printable, and then it is fine
        for char in value:
            if char != " " and unicodedata.category(char) in _REFUSED_CATEGORIES:
                return f"holds a character that cannot be stored (U+{ord(char):04X})"
    return None
