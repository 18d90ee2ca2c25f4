"""The server side of an exchange's protocol: what a local exchange makes of a client message.

:class:`Request` is what a ``read_request`` function (:data:`ReadRequest`) makes of one message;
:func:`read_binance_request` is Binance's, written by hand; :func:`infer_read_request` learns any
JSON protocol's from the plugin's own request frames (for ``triggerbook plugins serve``). Pure: no
I/O, so the checks and the servers share it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal

import msgspec

from engine.plugins.exchange import Exchange


@dataclass(frozen=True)
class Request:
    """What ``read_request`` makes of one client message.

    ``op`` is ``"subscribe"``, ``"unsubscribe"`` or anything else (recorded, no replay);
    ``symbols`` are normalised (as the exchange's ticks spell them); ``replies`` are sent back
    first (an ack, or an error reply).
    """

    op: str
    symbols: tuple[str, ...] = ()
    replies: tuple[str, ...] = ()


ReadRequest = Callable[[str], Request | None]


def read_binance_request(message: str) -> Request | None:
    """The server side of Binance's live (un)subscribe, for tests and benchmarks.

    ``{"method": "SUBSCRIBE", "params": ["btcusdt@trade"], "id": 1}`` -> subscribe ``BTCUSDT``,
    replying ``{"result": null, "id": 1}``.
    """
    msg = json.loads(message)
    ops = {"SUBSCRIBE": "subscribe", "UNSUBSCRIBE": "unsubscribe"}
    op = ops.get(msg.get("method"), str(msg.get("method")))
    symbols = tuple(p.split("@")[0].upper() for p in msg.get("params", ()))
    reply = json.dumps({"result": None, "id": msg.get("id")})
    return Request(op, symbols, (reply,))


_MARK = "QZQ7MARK9QZQ"  # a symbol no exchange spells, to find where its requests put symbols
_MARK_ID = 424242
_json_in = msgspec.json.Decoder(float_hook=Decimal)  # JSON numbers keep their digits

JsonPath = tuple[str | int, ...]


def _leaves(value: object, path: JsonPath = ()) -> Iterator[tuple[JsonPath, object]]:
    """Every scalar of a JSON document with its path; list indices are ``-1`` (any item)."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves(item, (*path, str(key)))
    elif isinstance(value, list):
        for item in value:
            yield from _leaves(item, (*path, -1))
    else:
        yield path, value


def infer_read_request(exchange: Exchange, *, pong: str | None = None) -> ReadRequest:
    """The server side of ``exchange``'s protocol, learnt from its own request frames.

    Subscribes and unsubscribes a marker symbol through ``subscribe_request`` /
    ``unsubscribe_request`` and remembers where the symbol goes (a JSON path, with any prefix,
    suffix and lower-casing, as Binance's ``bnbbtc@trade``) and which fields tell a subscribe
    from an unsubscribe. A message equal to ``heartbeat_frame()`` is answered with ``pong``
    when given. Nothing else is answered (no acks: the runner needs none). Raises
    ``ValueError`` for an exchange whose requests are not JSON objects naming the symbol.
    """
    try:
        sub = _json_in.decode(exchange.subscribe_request([_MARK], _MARK_ID)[0])
        unsub = _json_in.decode(exchange.unsubscribe_request([_MARK], _MARK_ID)[0])
    except (msgspec.DecodeError, IndexError):
        raise ValueError(f"{exchange.name}'s requests are not JSON: write a read_request") from None
    where: list[tuple[JsonPath, str, str, bool]] = []
    for path, value in _leaves(sub):
        if isinstance(value, str) and _MARK.lower() in value.lower():
            at = value.lower().index(_MARK.lower())
            lower = value[at : at + len(_MARK)] == _MARK.lower()
            where.append((path, value[:at], value[at + len(_MARK) :], lower))
    if not where:
        raise ValueError(f"{exchange.name}'s requests do not name the symbol: write a read_request")
    marked = {w[0] for w in where}

    def fields(doc: object) -> dict[JsonPath, set[object]]:
        out: dict[JsonPath, set[object]] = {}
        for path, value in _leaves(doc):
            if path not in marked and value not in (_MARK_ID, str(_MARK_ID)):
                out.setdefault(path, set()).add(value)
        return out

    sub_fields, unsub_fields = fields(sub), fields(unsub)
    telling = {
        p
        for p in sub_fields.keys() | unsub_fields.keys()
        if sub_fields.get(p) != unsub_fields.get(p)
    }
    beat = exchange.heartbeat_frame()
    beat_text = beat.decode() if isinstance(beat, bytes) else beat

    def read_request(message: str) -> Request | None:
        if beat_text is not None and message == beat_text:
            return Request("ping", (), (pong,) if pong is not None else ())
        try:
            doc = _json_in.decode(message)
        except msgspec.DecodeError:
            return Request("unknown")
        got = fields(doc)
        op = "unknown"
        for name, want in (("subscribe", sub_fields), ("unsubscribe", unsub_fields)):
            if all(got.get(p) == want.get(p) for p in telling):
                op = name
        symbols = []
        for path, value in _leaves(doc):
            for spot, prefix, suffix, lower in where:
                if path == spot and isinstance(value, str) and value.startswith(prefix):
                    name = value[len(prefix) : len(value) - len(suffix)]
                    if value.endswith(suffix) and name:
                        symbols.append(name.upper() if lower else name)
        return Request(op, tuple(dict.fromkeys(symbols)))

    return read_request
