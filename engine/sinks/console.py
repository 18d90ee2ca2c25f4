"""The console sink: one log line per fire, on the engine's own log.

For an operator watching the engine (and a newcomer trying it on one machine): the time, the
user, the exchange, the symbol, the direction, the target and the price, on one line that a
``grep`` finds (logger ``triggerbook.console``). It reaches the account itself, so it is one of
every alert's default channels while enabled, and a line cannot fail to be written: a
notification through it is delivered on the first try.
"""

from __future__ import annotations

import logging
from typing import ClassVar

from engine.model import Notification
from engine.plugins import Sink, hookimpl
from engine.plugins.text import price

log = logging.getLogger("triggerbook.console")


class ConsoleSink(Sink):
    """Writes each notification as one INFO line of ``triggerbook.console``."""

    name = "console"
    enabled_by_default = True
    reaches_account: ClassVar[bool] = True
    max_attempts: ClassVar[int] = 3

    async def deliver(self, note: Notification) -> None:
        data = note.data
        log.info(
            "%s %s alert %s fired at %s: user=%s exchange=%s symbol=%s direction=%s target=%s "
            "price=%s name=%r",
            "TEST" if note.event == "test" else "FIRE",
            note.message_id(),
            data.get("alert_id"),
            data.get("triggered_at"),
            data.get("username"),
            data.get("exchange"),
            data.get("symbol"),
            data.get("direction"),
            price(data.get("target_price")),
            price(data.get("triggered_price")),
            data.get("name"),
        )


@hookimpl
def triggerbook_sinks() -> list[type[Sink]]:
    return [ConsoleSink]
