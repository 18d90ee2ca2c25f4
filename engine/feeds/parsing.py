"""The frame-reading pieces every JSON exchange plugin needs, written once.

An exchange's ``parse`` is mostly the same few steps: decode the frame as JSON with prices kept as
``Decimal`` (a JSON number is read from its own digits, never through a float), refuse anything
that is not an object, pick a handler by the message's type through a dict, read each price
exactly and each time as Unix milliseconds. What stays in a plugin is only its own: where the type
key lives, which handler a type gets, which field holds the price, how an error reply names its
symbols. With these helpers a plugin's ``parse`` reads::

    def parse(self, frame, received_ns):
        msg = decode_object(frame)
        return handler_for(_HANDLERS, msg.get("type"), frame)(self, msg, frame, received_ns)

Every function here is pure (no I/O, no state). Each one that reads a frame takes the raw
``frame`` only to quote it in the :class:`~engine.errors.BadFrame` it raises; the kinds raised are
``not-json``, ``unknown-event``, ``bad-shape`` and ``bad-price``, as the feed runner counts them.

The last section, :func:`edit_frame`, is for plugin tests: a recorded frame with some fields
changed, to make the bad frames that ``parse`` must refuse.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

import msgspec

from engine.errors import BadFrame, ConfigError
from engine.model import Tick

__all__ = [
    "SEPARATORS",
    "Handler",
    "Message",
    "choose_option",
    "data_items",
    "decode_json",
    "decode_object",
    "edit_frame",
    "encode_json",
    "epoch_ms",
    "exact_price",
    "handler_for",
    "iso_ms",
    "no_ticks",
    "split_symbol",
]

E = TypeVar("E")
H = TypeVar("H")

Message = dict[str, Any]
# A bound method of an exchange, stored unbound in a dict: ``(exchange, msg, frame, received_ns)``.
Handler = Callable[[E, Message, "str | bytes", int], list[Tick]]

# What may stand between the base and the quote of a user-given symbol: ``btc/usd``, ``btc-usd``,
# ``btc_usd``, ``btc usd``, ``btc:usd``, ``btc.usd``.
SEPARATORS = re.compile(r"[\s/_:.-]+")

_decode = msgspec.json.Decoder(float_hook=Decimal).decode
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)

# -------------------------------------------------------------------------------------------------
# decoding and dispatch
# -------------------------------------------------------------------------------------------------


def decode_json(frame: str | bytes) -> Any:
    """The JSON value of ``frame``, every non-integer number as an exact ``Decimal``.

    Raises :class:`BadFrame` ``not-json`` for text that is not JSON (or bytes that are not UTF-8).
    """
    try:
        return _decode(frame)
    except msgspec.DecodeError:
        raise BadFrame("not-json", frame) from None


def decode_object(frame: str | bytes) -> Message:
    """The JSON object of ``frame``, as :func:`decode_json` reads it.

    Raises :class:`BadFrame` ``not-json`` as :func:`decode_json` does, and ``unknown-event`` for
    valid JSON that is not an object (an array, a number, a string, ``null``): no exchange here
    sends one, so it is a message of a kind the plugin does not know.
    """
    msg = decode_json(frame)
    if not isinstance(msg, dict):
        raise BadFrame("unknown-event", frame)
    return msg


def handler_for(handlers: Mapping[str, H], key: object, frame: str | bytes) -> H:
    """The handler of the message type ``key``.

    Raises :class:`BadFrame` ``unknown-event`` when ``key`` is not a string (absent, a list, an
    object) or names no handler. Runtime complexity: one dict lookup.
    """
    handler = handlers.get(key) if isinstance(key, str) else None
    if handler is None:
        raise BadFrame("unknown-event", frame)
    return handler


def no_ticks(exchange: object, msg: Message, frame: str | bytes, received_ns: int) -> list[Tick]:
    """The handler of a control frame (ack, heartbeat, pong, notice): understood, no tick."""
    return []


def data_items(msg: Message, symbol_key: str, frame: str | bytes) -> list[Message]:
    """The entries of ``msg["data"]``, each checked to be an object with a string ``symbol_key``.

    Raises :class:`BadFrame` ``bad-shape`` when ``data`` is absent or not a list, or an entry is
    not an object or lacks a string symbol.
    """
    data = msg.get("data")
    if not isinstance(data, list):
        raise BadFrame("bad-shape", frame)
    for item in data:
        if not isinstance(item, dict) or not isinstance(item.get(symbol_key), str):
            raise BadFrame("bad-shape", frame)
    return data


def encode_json(value: Any) -> str:
    """``value`` as compact JSON text, for subscribe and unsubscribe frames."""
    return msgspec.json.encode(value).decode()


# -------------------------------------------------------------------------------------------------
# prices and times
# -------------------------------------------------------------------------------------------------


def exact_price(value: object, frame: str | bytes) -> Decimal:
    """The exact price of a decimal string or a JSON number (already a ``Decimal`` or an ``int``
    from :func:`decode_json`).

    Raises :class:`BadFrame` ``bad-price`` for anything else (``None``, a boolean, a list), for
    text that is not a decimal, and for a price that is not finite and > 0 (``NaN``,
    ``Infinity``, ``0``, ``-1``).
    """
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise BadFrame("bad-price", frame)
    try:
        price = Decimal(value)
    except InvalidOperation:
        raise BadFrame("bad-price", frame) from None
    if not price.is_finite() or price <= 0:
        raise BadFrame("bad-price", frame)
    return price


def iso_ms(value: object, frame: str | bytes) -> int:
    """Milliseconds since the epoch of an RFC 3339 time (``2014-11-07T08:19:27.028459Z``);
    a time without a zone is UTC. Sub-millisecond digits are dropped (floor).

    Raises :class:`BadFrame` ``bad-shape`` for a value that is not a string or not such a time.
    """
    if not isinstance(value, str):
        raise BadFrame("bad-shape", frame)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise BadFrame("bad-shape", frame) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // _MS


def epoch_ms(value: object, frame: str | bytes, *, text: bool = False) -> int:
    """Unix milliseconds given as a JSON integer >= 0, or with ``text=True`` also as a string of
    ASCII digits (OKX's ``"ts": "1630048897897"``).

    Raises :class:`BadFrame` ``bad-shape`` for anything else: a boolean, a fraction, a negative
    number, a string when ``text`` is false, a string with a sign or other characters.
    """
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if text and isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    raise BadFrame("bad-shape", frame)


# -------------------------------------------------------------------------------------------------
# symbols and options
# -------------------------------------------------------------------------------------------------


def split_symbol(
    symbol: str, quotes: Sequence[str], separators: re.Pattern[str] = SEPARATORS
) -> list[str]:
    """The upper-cased parts of a user-given symbol, for a plugin to join in its own spelling.

    A symbol with separators splits at them (``btc/usd`` -> ``["BTC", "USD"]``,
    ``btc-usdt-swap`` -> three parts); an unseparated one splits before the first of ``quotes``
    (list longer quotes first) that ends it and leaves a base (``BTCUSDT`` -> ``["BTC", "USDT"]``);
    one that ends in no known quote stays whole (``XYZ`` -> ``["XYZ"]``). Blank gives ``[]``.
    """
    parts = [p for p in separators.split(symbol.strip().upper()) if p]
    if len(parts) != 1:
        return parts
    whole = parts[0]
    for quote in quotes:
        if whole.endswith(quote) and len(whole) > len(quote):
            return [whole[: -len(quote)], quote]
    return parts


def choose_option(exchange: str, key: str, value: object, allowed: Collection[str]) -> str:
    """``value`` of the ``[feeds.<exchange>]`` key ``key`` when it is one of ``allowed``.

    Raises :class:`ConfigError` naming the table, the key, the allowed values and the value given,
    at start, before any connection is made.
    """
    if not isinstance(value, str) or value not in allowed:
        raise ConfigError(
            f"[feeds.{exchange}] {key} must be one of {', '.join(allowed)}, got {value!r}"
        )
    return value


# -------------------------------------------------------------------------------------------------
# for plugin tests
# -------------------------------------------------------------------------------------------------


def edit_frame(frame: str, path: Sequence[str | int] = (), /, **fields: object) -> str:
    """A JSON frame with ``fields`` set in the object at ``path`` (``("data", 0)``: the first
    entry of ``data``; ``()``: the top level); a field set to ``None`` is removed.

    For plugin tests that make the bad frames ``parse`` must refuse from a recorded good one. The
    frame goes through the standard ``json`` module, so its numbers stay numbers (a ``Decimal``
    would not encode) and ``fields`` may hold any JSON value, wrong types included.
    Raises ``ValueError`` when ``frame`` is not JSON, and ``KeyError``, ``IndexError`` or
    ``TypeError`` when ``path`` does not lead to an object.
    """
    msg = json.loads(frame)
    target = msg
    for step in path:
        target = target[step]
    if not isinstance(target, dict):
        raise TypeError(f"{list(path)} leads to {type(target).__name__}, not an object")
    target.update(fields)
    for name in [k for k, v in target.items() if v is None]:
        del target[name]
    return json.dumps(msg)
