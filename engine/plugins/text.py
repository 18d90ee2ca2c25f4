"""The words of a notification, shared by every sink that writes for people (console, email,
chat, a plugin's): one subject line and a few lines of detail, exact to the last decimal. Part of
the plugin contract, so a sink plugin words a fire as the built-in sinks do.

A price is shown as the exchange sent it, grouped by thousands (``70,000.00``): never through a
float, so the digits a user reads are the digits that fired.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation

from engine.model import Notification

_MOVED = {"above": "rose to", "below": "fell to"}


def price(value: object) -> str:
    """``value`` (an exact decimal string) grouped by thousands; as given if it is not one."""
    text = str(value)
    try:
        number = Decimal(text)
    except InvalidOperation:
        return text
    return f"{number:,}" if number.is_finite() else text


def subject(note: Notification) -> str:
    """One line that says it all: ``BTCUSDT rose to 70,000.00 (above 70,000)``; ``[test]`` in
    front of a test, the code for a confirmation."""
    data = note.data
    if note.event == "confirm":
        return f"Your triggerbook confirmation code: {data.get('code', '')}"
    moved = _MOVED.get(str(data.get("direction")), "reached")
    line = (
        f"{data.get('symbol')} {moved} {price(data.get('triggered_price'))} "
        f"({data.get('direction')} {price(data.get('target_price'))})"
    )
    return f"[test] {line}" if note.event == "test" else line


def details(note: Notification) -> list[tuple[str, str]]:
    """The facts of a fire as (label, value) pairs, in reading order, for a text or HTML body."""
    data: Mapping[str, object] = note.data
    if note.event == "confirm":
        return [
            ("Code", str(data.get("code", ""))),
            ("Address", str(data.get("address", ""))),
            ("Account", str(data.get("username", ""))),
        ]
    rows = [
        ("Alert", str(data.get("name") or f"#{data.get('alert_id')}")),
        ("Exchange", str(data.get("exchange"))),
        ("Symbol", str(data.get("symbol"))),
        ("Condition", f"{data.get('direction')} {price(data.get('target_price'))}"),
        ("Price", price(data.get("triggered_price"))),
        ("Fired at", str(data.get("triggered_at"))),
        ("Account", str(data.get("username"))),
    ]
    if note.event == "test":
        rows.insert(0, ("Test", "a test notification: no alert fired"))
    return rows


def text_body(note: Notification) -> str:
    """The subject and the details as plain text lines."""
    width = max(len(label) for label, _ in details(note))
    lines = [subject(note), ""]
    lines += [f"{label + ':':<{width + 1}} {value}" for label, value in details(note)]
    return "\n".join(lines) + "\n"
