"""Request validation stated once: each field is a rule that both checks a value and describes it.

A :class:`Rule` cleans one JSON value (or raises :class:`ValidationFailed` naming the field, a 422)
and gives the JSON Schema of exactly what it accepts; a :class:`Body` is a closed object of rules.
The OpenAPI document (``web/openapi.py``) is built from the same rules the handlers call, so the
document cannot be looser or stricter than the server: outside judges (schemathesis) hold each
against the other. The numbers behind every rule (price digits, name length, ...) come from
``engine/limits.py``, which the database constraints, the feeds and the book follow too.

Bodies are decoded by :func:`parse_json_object`: numbers as ``Decimal`` (exact from the first
byte, no float ever holds a price), a repeated key or anything but one object is a 400.
Everything here is pure: no I/O.
"""

from __future__ import annotations

import json
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from engine import limits
from engine.errors import MalformedRequest, ValidationFailed

Schema = dict[str, Any]

PAGE_SIZE_DEFAULT = 10
PAGE_SIZE_MAX = 100
QUERY_INT_MAX = 999_999_999  # page numbers and sizes: nine digits
PASSWORD_MIN = 8
PASSWORD_MAX = 256  # characters; hashed after SHA-256 (web/auth.py), so any length bcrypt-safe
USERNAME_PATTERN = r"^[A-Za-z0-9_.@+-]{3,150}$"
# A pragmatic address: dot-atoms of RFC 5322's atext, one @, a dotted domain of LDH labels.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
EMAIL_PATTERN = rf"^{_ATEXT}+(?:\.{_ATEXT}+)*@(?:{_LABEL}\.)+[A-Za-z]{{2,63}}$"
EMAIL_MAX = 254
# Free text (names): no control characters; stated as a class the document can carry.
TEXT_PATTERN = r"^[^\u0000-\u001F\u007F-\u009F]*$"


def _price_pattern() -> str:
    """Plain decimal notation of a price > 0: at most 18 digits before the point (no leading
    zero) and 18 after it, with a non-zero digit somewhere. No lookahead (ECMA-262 and
    Hypothesis both read it): the fractional-only form is spelled out per count of leading zeros.
    """
    whole, frac = limits.PRICE_WHOLE_DIGITS, limits.PRICE_FRACTION_DIGITS
    small = "|".join(
        f"0{{{zeros}}}[1-9][0-9]{{0,{frac - zeros - 1}}}"
        if zeros
        else f"[1-9][0-9]{{0,{frac - 1}}}"
        for zeros in range(frac)
    )
    return rf"^(?:[1-9][0-9]{{0,{whole - 1}}}(?:\.[0-9]{{1,{frac}}})?|0\.(?:{small}))$"


PRICE_PATTERN = _price_pattern()
_PRICE_RE = re.compile(PRICE_PATTERN)


EXTREME = Decimal("Infinity")
"""What a JSON number too extreme for ``Decimal`` itself decodes to (``1e-999999999999999999999``
has an exponent past Decimal's own range): a value no rule accepts, named as such."""


def _number(text: str) -> Decimal:
    try:
        return Decimal(text)
    except ArithmeticError:  # decimal.InvalidOperation: an exponent beyond Decimal's range
        return EXTREME


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
            parse_float=_number,
            parse_int=_number,
            parse_constant=_reject_constant,
            object_pairs_hook=_no_duplicates,
        )
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MalformedRequest(f"the body is not valid JSON: {exc}") from None
    except RecursionError:
        raise MalformedRequest("the body nests too deeply") from None
    if not isinstance(value, dict):
        raise MalformedRequest(f"the body must be a JSON object, not {json_type(value)}")
    return value


def json_type(value: Any) -> str:
    """How a decoded JSON value is named in an error message."""
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


# --- rules -----------------------------------------------------------------------------------


class Rule(ABC):
    """One field: :meth:`clean` checks a decoded JSON value, :meth:`schema` describes what it
    accepts. ``clean`` raises :class:`ValidationFailed` naming ``field``."""

    description: str = ""

    @abstractmethod
    def clean(self, value: Any, field: str) -> Any:
        """The clean value; :class:`ValidationFailed` naming ``field`` when it is not one."""

    @abstractmethod
    def schema(self) -> Schema:
        """The JSON Schema of exactly the values :meth:`clean` accepts."""

    def _described(self, schema: Schema) -> Schema:
        return {**schema, "description": self.description} if self.description else schema


def _string(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise ValidationFailed(f"{field} must be a string, not {json_type(value)}", field=field)
    return value


@dataclass(frozen=True)
class Text(Rule):
    """A string of ``min_length`` to ``max_length`` characters matching ``pattern`` (a full
    match), and free of characters no stored text may hold (``limits.text_problem``)."""

    max_length: int
    min_length: int = 0
    pattern: str = TEXT_PATTERN
    description: str = ""
    hint: str = ""  # said when the pattern does not match

    def clean(self, value: Any, field: str) -> str:
        text = _string(value, field)
        if len(text) < self.min_length:
            raise ValidationFailed(
                f"{field} must be at least {self.min_length} characters", field=field
            )
        problem = limits.text_problem(text, self.max_length)
        if problem is not None:
            raise ValidationFailed(f"{field} {problem}", field=field)
        if self.pattern is not TEXT_PATTERN and not re.fullmatch(self.pattern, text):
            raise ValidationFailed(f"{field} {self.hint or 'is not well formed'}", field=field)
        return text

    def schema(self) -> Schema:
        schema: Schema = {"type": "string", "maxLength": self.max_length, "pattern": self.pattern}
        if self.min_length:
            schema["minLength"] = self.min_length
        return self._described(schema)


@dataclass(frozen=True)
class Choice(Rule):
    """One string of a fixed set, exactly as written (``values`` may be computed late)."""

    values: Callable[[], Collection[str]]
    what: str
    description: str = ""

    def clean(self, value: Any, field: str) -> str:
        text = _string(value, field)
        allowed = self.values()
        if text not in allowed:
            raise ValidationFailed(
                f"{field} must be one of {', '.join(sorted(allowed)) or '(none)'}: {self.what}",
                field=field,
            )
        return text

    def schema(self) -> Schema:
        return self._described({"type": "string", "enum": sorted(self.values())})


@dataclass(frozen=True)
class Kinds(Rule):
    """A list of at most ``max_items`` strings of a set computed late (an alert's
    ``channels``: the enabled sinks), as a tuple in the order given, duplicates folded."""

    values: Callable[[], Collection[str]]
    what: str
    max_items: int = limits.CHANNELS_MAX
    description: str = ""

    def clean(self, value: Any, field: str) -> tuple[str, ...]:
        if not isinstance(value, list):
            raise ValidationFailed(f"{field} must be an array, not {json_type(value)}", field=field)
        if len(value) > self.max_items:
            raise ValidationFailed(f"{field} has more than {self.max_items} entries", field=field)
        allowed = self.values()
        for item in value:
            if not isinstance(item, str) or item not in allowed:
                shown = repr(item) if isinstance(item, str) else json_type(item)
                raise ValidationFailed(
                    f"{field}: {shown[:48]} is not {self.what}; "
                    f"one of {', '.join(sorted(allowed)) or '(none enabled)'}",
                    field=field,
                )
        return tuple(dict.fromkeys(value))

    def schema(self) -> Schema:
        return self._described(
            {
                "type": "array",
                "items": {"type": "string", "enum": sorted(self.values())},
                "maxItems": self.max_items,
            }
        )


@dataclass(frozen=True)
class Price(Rule):
    """An exact price: a JSON number, or a string in plain decimal notation (``"70000.5"``).

    Either way the value must meet ``limits.price_problem``: > 0, below 10**18, at most 18
    fractional digits. A string may not carry an exponent, a sign or spaces (the pattern says
    exactly what it may be); a number is read from its own digits, never through a float.
    """

    description: str = (
        "a decimal > 0 and < 10^18 with at most 18 fractional digits, exact: "
        "a string in plain notation or a JSON number"
    )

    def clean(self, value: Any, field: str) -> Decimal:
        if isinstance(value, str):
            if len(value) > limits.PRICE_TEXT_MAX + 1 or not _PRICE_RE.fullmatch(value):
                raise ValidationFailed(
                    f"{field} must be a decimal > 0 in plain notation, with at most "
                    f"{limits.PRICE_WHOLE_DIGITS} digits before the point and "
                    f"{limits.PRICE_FRACTION_DIGITS} after it: {value[:48]!r}",
                    field=field,
                )
            value = Decimal(value)
        elif isinstance(value, bool) or not isinstance(value, Decimal):
            raise ValidationFailed(
                f"{field} must be a decimal number or string, not {json_type(value)}", field=field
            )
        elif value is EXTREME:
            raise ValidationFailed(f"{field} is a number beyond any price", field=field)
        problem = limits.price_problem(value)
        if problem is not None:
            raise ValidationFailed(f"{field} {problem}", field=field)
        return _plain(value)

    def schema(self) -> Schema:
        return self._described(
            {
                "anyOf": [
                    {"type": "string", "pattern": PRICE_PATTERN},
                    {
                        "type": "number",
                        "exclusiveMinimum": 0,
                        "exclusiveMaximum": int(limits.PRICE_BOUND),
                        "multipleOf": float(limits.MIN_PRICE),
                    },
                ]
            }
        )


def _plain(value: Decimal) -> Decimal:
    """``value`` without trailing zeros, written without an exponent where it has none to need:
    ``70000.50`` -> ``70000.5``, ``1E+3`` -> ``1000``. Exact: ``value`` is within the limits."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return Decimal(text)


@dataclass(frozen=True)
class Secret(Rule):
    """A string of at most ``max_length`` characters of any kind, never stored as given (a
    password to check, a token to verify)."""

    max_length: int
    description: str = ""

    def clean(self, value: Any, field: str) -> str:
        text = _string(value, field)
        if len(text) > self.max_length:
            raise ValidationFailed(
                f"{field} is longer than {self.max_length} characters", field=field
            )
        return text

    def schema(self) -> Schema:
        return self._described({"type": "string", "maxLength": self.max_length})


@dataclass(frozen=True)
class Password(Rule):
    """``PASSWORD_MIN`` to ``PASSWORD_MAX`` characters of any kind (hashed after SHA-256, so
    bcrypt's 72-byte limit does not apply)."""

    description: str = f"{PASSWORD_MIN} to {PASSWORD_MAX} characters"

    def clean(self, value: Any, field: str) -> str:
        text = _string(value, field)
        if not PASSWORD_MIN <= len(text) <= PASSWORD_MAX:
            raise ValidationFailed(
                f"{field} must be {PASSWORD_MIN} to {PASSWORD_MAX} characters", field=field
            )
        return text

    def schema(self) -> Schema:
        return self._described(
            {"type": "string", "minLength": PASSWORD_MIN, "maxLength": PASSWORD_MAX}
        )


@dataclass(frozen=True)
class Email(Rule):
    """A syntactically valid address; the domain is lower-cased, the local part kept."""

    description: str = "an email address"

    def clean(self, value: Any, field: str) -> str:
        text = _string(value, field)
        if len(text) > EMAIL_MAX or not _EMAIL_RE.fullmatch(text):
            raise ValidationFailed(f"{field} is not a valid address", field=field)
        local, _, domain = text.rpartition("@")
        return f"{local}@{domain.lower()}"

    def schema(self) -> Schema:
        return self._described({"type": "string", "maxLength": EMAIL_MAX, "pattern": EMAIL_PATTERN})


_EMAIL_RE = re.compile(EMAIL_PATTERN)

NAME = Text(limits.NAME_MAX, description=f"free text, at most {limits.NAME_MAX} characters")
USERNAME = Text(
    150,
    3,
    USERNAME_PATTERN,
    "3-150 letters, digits or _ . @ + -",
    "must be 3-150 letters, digits or _ . @ + -",
)
PASSWORD = Password()
EMAIL = Email()
PRICE = Price()


@dataclass(frozen=True)
class Body:
    """A closed JSON object named ``name`` in the document: ``required`` and ``optional``
    fields, each with its rule.

    :meth:`clean` rejects an unknown field first (the first in body order), then a missing
    required one, then checks each field present; it returns the cleaned values by name.
    """

    name: str
    required: Mapping[str, Rule]
    optional: Mapping[str, Rule] = field(default_factory=dict)
    description: str = ""
    # Rules that tie one field to another (``if``/``then`` schemas, e.g. a symbol's spelling by
    # its exchange); checked by the handler, stated here for the document.
    conditions: tuple[Schema, ...] = ()

    def clean(self, body: Mapping[str, Any]) -> dict[str, Any]:
        check_fields(body, required=self.required, optional=self.optional)
        rules = {**self.required, **self.optional}
        return {name: rules[name].clean(value, name) for name, value in body.items()}

    def schema(self) -> Schema:
        schema: Schema = {
            "type": "object",
            "properties": {
                name: rule.schema() for name, rule in {**self.required, **self.optional}.items()
            },
            "required": list(self.required),
            "additionalProperties": False,
        }
        if self.description:
            schema["description"] = self.description
        if self.conditions:
            schema["allOf"] = list(self.conditions)
        return schema


def check_fields(
    body: Mapping[str, Any], *, required: Collection[str], optional: Collection[str] = ()
) -> None:
    """Reject unknown fields first (the first in body order), then missing required ones."""
    for key in body:
        if key not in required and key not in optional:
            raise ValidationFailed(f"unknown field {key!r}", field=key)
    for key in required:
        if key not in body:
            raise ValidationFailed(f"{key} is required", field=key)


def string(body: Mapping[str, Any], field: str, *, max_length: int = 1000) -> str:
    """``body[field]`` as a string (no other JSON type) of at most ``max_length`` characters
    that any store can hold (no NUL, no lone surrogate)."""
    return Text(max_length).clean(body.get(field), field)


# --- query parameters ------------------------------------------------------------------------


def positive_int(text: str | None, field: str, default: int) -> int:
    """A query parameter that must be a positive integer of at most nine digits (``default``
    when absent)."""
    if text is None:
        return default
    if not text.isascii() or not text.isdigit() or len(text) > 9 or int(text) < 1:
        raise ValidationFailed(f"{field} must be an integer from 1 to {QUERY_INT_MAX}", field=field)
    return int(text)


def page_params(query: Mapping[str, str], max_page: int = QUERY_INT_MAX) -> tuple[int, int]:
    """``(page, page_size)`` from a query; ``page_size`` is capped at 100, never an error above;
    ``page`` past ``max_page`` is a 422 naming it."""
    page = positive_int(query.get("page"), "page", 1)
    size = positive_int(query.get("page_size"), "page_size", PAGE_SIZE_DEFAULT)
    if page > max_page:
        raise ValidationFailed(
            f"page must be at most {max_page}; narrow the list with a filter", field="page"
        )
    return page, min(size, PAGE_SIZE_MAX)


def page_schema(max_page: int = QUERY_INT_MAX) -> Schema:
    """The schema of the ``page`` query parameter."""
    return {"type": "integer", "minimum": 1, "maximum": max_page}


PAGE_SIZE_SCHEMA: Schema = {"type": "integer", "minimum": 1, "maximum": QUERY_INT_MAX}


def check_query(query: Mapping[str, str], allowed: Collection[str]) -> None:
    """Reject a query parameter the route does not know, so a misspelt filter never silently
    returns everything."""
    for key in query:
        if key not in allowed:
            raise ValidationFailed(f"unknown query parameter {key!r}", field=key)
