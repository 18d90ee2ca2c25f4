"""Request parsing and field validation: pure functions, no I/O, one error per bad input.

Each function either returns the clean value or raises :class:`ValidationFailed` naming the
field (422), or :class:`MalformedRequest` (400) when the body is not one JSON object at all.
JSON numbers are parsed as ``Decimal`` so a price is exact from the first byte: no float ever
holds ``target_price``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping
from decimal import Context, Decimal
from typing import Any

from engine.errors import MalformedRequest, ValidationFailed

MAX_FRACTION_DIGITS = 18
MAX_DIGITS = 30
# A JSON number's grammar, for prices sent as strings (no "1_000", no "0x10", no spaces inside).
NUMBER_RE = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
SYMBOL_RE = re.compile(r"[A-Za-z0-9/_-]{1,32}")
USERNAME_RE = re.compile(r"[A-Za-z0-9_.@+-]{3,150}")
# A pragmatic address check (RFC 5321 lengths, one @, a dotted domain of LDH labels).
EMAIL_RE = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}@"
    r"(?=.{4,253}$)(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}"
)
PASSWORD_MIN = 8
PASSWORD_MAX_BYTES = 72  # bcrypt ignores (and bcrypt>=5 refuses) anything longer
NAME_MAX = 200
PAGE_SIZE_DEFAULT = 10
_EXACT = Context(prec=80)
PAGE_SIZE_MAX = 100


def _reject_constant(name: str) -> Any:
    raise MalformedRequest(f"{name} is not a JSON number; send prices as decimal strings")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise MalformedRequest(f"the key {key!r} appears twice")
        out[key] = value
    return out


def parse_json_object(body: bytes) -> dict[str, Any]:
    """Decode ``body`` as one JSON object, numbers as ``Decimal``.

    Raises :class:`MalformedRequest` for bytes that are not UTF-8 JSON, for ``NaN`` or
    ``Infinity`` literals, for a repeated key, and for any top-level value but an object.
    """
    try:
        value = json.loads(
            body,
            parse_float=Decimal,
            parse_int=Decimal,
            parse_constant=_reject_constant,
            object_pairs_hook=_no_duplicates,
        )
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MalformedRequest(f"the body is not valid JSON: {exc}") from None
    except RecursionError:
        raise MalformedRequest("the body nests too deeply") from None
    if not isinstance(value, dict):
        raise MalformedRequest(f"the body must be a JSON object, not {_json_type(value)}")
    return value


def _json_type(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    if isinstance(value, Decimal):
        return "a number"
    return "an object"


def check_fields(
    body: Mapping[str, Any], *, required: Collection[str], optional: Collection[str] = ()
) -> None:
    """Reject unknown fields first (the first in body order), then missing required ones."""
    allowed = set(required) | set(optional)
    for key in body:
        if key not in allowed:
            raise ValidationFailed(f"unknown field {key!r}", field=key)
    for key in required:
        if key not in body:
            raise ValidationFailed(f"{key} is required", field=key)


def string(body: Mapping[str, Any], field: str, *, max_length: int = 1000) -> str:
    """``body[field]`` as a string (no other JSON type), at most ``max_length`` characters."""
    value = body.get(field)
    if not isinstance(value, str):
        raise ValidationFailed(f"{field} must be a string, not {_json_type(value)}", field=field)
    if len(value) > max_length:
        raise ValidationFailed(f"{field} is longer than {max_length} characters", field=field)
    return value


def price(value: Any, field: str = "target_price") -> Decimal:
    """A positive, finite, exact price from a JSON number or a decimal string.

    The value is normalised (``70000.50`` -> ``70000.5``) and must keep at most 18 fractional
    digits and 30 digits in all. Booleans, NaN, infinities, zero and negatives are rejected.
    """
    if isinstance(value, bool) or not isinstance(value, str | Decimal):
        raise ValidationFailed(
            f"{field} must be a decimal number or string, not {_json_type(value)}", field=field
        )
    if isinstance(value, str):
        text = value.strip()
        if len(text) > 64 or not NUMBER_RE.fullmatch(text):
            raise ValidationFailed(f"{field} is not a decimal number: {text[:64]!r}", field=field)
        value = Decimal(text)
    if not value.is_finite():
        raise ValidationFailed(f"{field} must be finite", field=field)
    if value <= 0:
        raise ValidationFailed(f"{field} must be greater than zero", field=field)
    if len(value.as_tuple().digits) > _EXACT.prec:
        raise ValidationFailed(f"{field} has more than {MAX_DIGITS} digits", field=field)
    normal = value.normalize(_EXACT)  # the default context would round past 28 digits
    _sign, digits, exp = normal.as_tuple()
    exponent = int(exp)  # an int for every finite value
    fraction = max(0, -exponent)
    whole = max(0, len(digits) + exponent)
    if fraction > MAX_FRACTION_DIGITS:
        raise ValidationFailed(
            f"{field} has more than {MAX_FRACTION_DIGITS} fractional digits", field=field
        )
    if whole + fraction > MAX_DIGITS:
        raise ValidationFailed(f"{field} has more than {MAX_DIGITS} digits", field=field)
    return Decimal(format(normal, "f"))


def symbol(value: Any, field: str = "symbol") -> str:
    """A symbol's spelling check: 1-32 letters, digits, ``-``, ``/`` or ``_`` (not normalised)."""
    if not isinstance(value, str):
        raise ValidationFailed(f"{field} must be a string, not {_json_type(value)}", field=field)
    text = value.strip()
    if not SYMBOL_RE.fullmatch(text):
        raise ValidationFailed(
            f"{field} must be 1-32 letters, digits, '-', '/' or '_'", field=field
        )
    return text


def username(value: Any) -> str:
    """3-150 characters of letters, digits and ``_.@+-`` (the Django rule the seeds used)."""
    if not isinstance(value, str) or not USERNAME_RE.fullmatch(value):
        raise ValidationFailed(
            "username must be 3-150 letters, digits or _ . @ + -", field="username"
        )
    return value


def password(value: Any) -> str:
    """At least 8 characters and at most 72 bytes of UTF-8 (bcrypt's limit)."""
    if not isinstance(value, str):
        raise ValidationFailed("password must be a string", field="password")
    if len(value) < PASSWORD_MIN:
        raise ValidationFailed(
            f"password must be at least {PASSWORD_MIN} characters", field="password"
        )
    if len(value.encode("utf-8")) > PASSWORD_MAX_BYTES:
        raise ValidationFailed(
            f"password must be at most {PASSWORD_MAX_BYTES} bytes of UTF-8", field="password"
        )
    return value


def email(value: Any) -> str:
    """A syntactically valid address; the domain is lower-cased, the local part kept."""
    if not isinstance(value, str) or len(value) > 254 or not EMAIL_RE.fullmatch(value):
        raise ValidationFailed("email is not a valid address", field="email")
    local, _, domain = value.rpartition("@")
    if local.startswith(".") or local.endswith(".") or ".." in local:
        raise ValidationFailed("email is not a valid address", field="email")
    return f"{local}@{domain.lower()}"


def positive_int(text: str | None, field: str, default: int) -> int:
    """A query parameter that must be a positive integer (``default`` when absent)."""
    if text is None:
        return default
    if not text.isdigit() or len(text) > 9 or int(text) < 1:
        raise ValidationFailed(f"{field} must be a positive integer", field=field)
    return int(text)


def page_params(query: Mapping[str, str]) -> tuple[int, int]:
    """``(page, page_size)`` from a query; ``page_size`` is capped at 100, never an error above."""
    page = positive_int(query.get("page"), "page", 1)
    size = positive_int(query.get("page_size"), "page_size", PAGE_SIZE_DEFAULT)
    return page, min(size, PAGE_SIZE_MAX)


def check_query(query: Mapping[str, str], allowed: Collection[str]) -> None:
    """Reject a query parameter the route does not know, so a misspelt filter never silently
    returns everything."""
    for key in query:
        if key not in allowed:
            raise ValidationFailed(f"unknown query parameter {key!r}", field=key)
