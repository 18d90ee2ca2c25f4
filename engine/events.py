"""Fire events: what the fire recorder announces once a batch of fires is committed.

A seam between the recorder (engine/store/recorder.py), which knows what it committed and for
whom, and whoever shows fires live (the web's ``/api/stream``, web/stream.py), so neither
imports the other. An event is published only after its commit: a fire the database never
recorded is never announced. Publishing never waits: each subscriber is a plain callback that
must only queue (the stream offers to bounded client buffers and drops a slow client).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from decimal import Decimal

import msgspec

log = logging.getLogger(__name__)


class FireEvent(msgspec.Struct, frozen=True):
    """One committed fire of one alert: whose it is, what fired it, when (epoch ms)."""

    alert_id: int
    owner_id: int
    exchange: str
    symbol: str
    direction: str
    target_price: Decimal
    price: Decimal
    fired_at_ms: int


Subscriber = Callable[[list[FireEvent]], None]


class FirePublisher:
    """Hands each committed batch of fire events to every subscriber, in order, at once."""

    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call ``callback`` with every committed batch from now on; returns its unsubscribe."""
        self._subscribers.append(callback)
        return lambda: self._subscribers.remove(callback)

    @property
    def wanted(self) -> bool:
        """Whether anyone listens (the recorder asks the store for owners only then)."""
        return bool(self._subscribers)

    def publish(self, events: list[FireEvent]) -> None:
        """Give ``events`` to each subscriber; a subscriber's error is logged, never raised
        (the recorder's commit is done: a display problem must not stop recording)."""
        if not events:
            return
        for callback in list(self._subscribers):
            try:
                callback(events)
            except Exception:  # a subscriber's bug must not stop the recorder
                log.exception("a fire subscriber failed; the fires are recorded")
