"""What the engine set aside instead of crashing: counted, logged once per kind, visible.

A row the start-up load cannot put in the book, a command the book refuses, a tick out of range,
a fire the database refuses: each is something the engine cannot use, and none of them may stop
it or its next start. Each goes here instead. The operator sees the counts on ``/metrics``
(``triggerbook_quarantined_total{kind}``) and the latest entries on ``/readyz``; an alert's owner
sees the reason on the alert (``problem``), looked up here by the alert's id.

Nothing here is persisted: every cause is found again from the database at the next start (an
old row out of range is refused by the next bulk load too, a refused fire fires again), so the
quarantine always describes the running engine. It is bounded: it keeps the reasons of the
latest ``keep`` alerts and the latest ``keep`` entries, whatever an outsider sends.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict, deque
from typing import Any

from engine.metrics import Metrics

log = logging.getLogger(__name__)

KEEP = 1000


class Quarantine:
    """The engine's set-aside things; one per engine, shared by the actors that find them."""

    def __init__(self, metrics: Metrics, keep: int = KEEP) -> None:
        self._metrics = metrics
        self._keep = keep
        self._by_alert: OrderedDict[int, str] = OrderedDict()
        self._latest: deque[dict[str, Any]] = deque(maxlen=keep)
        self._logged: set[str] = set()
        self.counts: dict[str, int] = {}

    def add(self, kind: str, reason: str, *, alert_id: int | None = None, sample: str = "") -> None:
        """Set one thing aside: count it under ``kind``, log it (the first of each kind at
        warning level, the rest at debug), remember ``reason`` for ``alert_id``.

        ``kind`` is a short slug (``"load"``, ``"command"``, ``"tick"``, ``"fire"``); ``sample``
        a short excerpt of what was refused, for the operator.
        """
        self.counts[kind] = self.counts.get(kind, 0) + 1
        self._metrics.quarantined.inc(kind=kind)
        if alert_id is not None:
            self._by_alert[alert_id] = reason
            self._by_alert.move_to_end(alert_id)
            while len(self._by_alert) > self._keep:
                self._by_alert.popitem(last=False)
        entry = {"kind": kind, "reason": reason, "alert_id": alert_id, "at": time.time()}
        if sample:
            entry["sample"] = sample[:200]
        self._latest.append(entry)
        level = logging.DEBUG if kind in self._logged else logging.WARNING
        self._logged.add(kind)
        log.log(
            level, "quarantined (%s): %s%s", kind, reason, f" [alert {alert_id}]" * bool(alert_id)
        )

    def reason_for(self, alert_id: int) -> str | None:
        """Why the alert ``alert_id`` was set aside, or None."""
        return self._by_alert.get(alert_id)

    def forget(self, alert_id: int) -> None:
        """The alert is settled another way (deleted, recorded after all): drop its reason."""
        self._by_alert.pop(alert_id, None)

    def summary(self, latest: int = 10) -> dict[str, Any]:
        """Counts per kind and the ``latest`` entries, newest last: for ``/readyz``."""
        return {"counts": dict(self.counts), "latest": list(self._latest)[-latest:]}
