"""A small Prometheus registry: counters, gauges and histograms, rendered as text format 0.0.4.

Hand-written rather than ``prometheus_client`` because every update here happens on the one Trio
thread: no locks are needed, and an increment on the hot path is a dict update (~60 ns) instead
of a lock round trip. Actors receive the one ``Metrics`` object as an argument; nothing is global.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence

LabelValues = tuple[str, ...]


def _fmt(value: float) -> str:
    if value == math.inf:
        return "+Inf"
    if float(value).is_integer():
        return str(int(value))
    return repr(float(value))


def _labels(names: Sequence[str], values: LabelValues, extra: str = "") -> str:
    parts = [f'{n}="{_escape(v)}"' for n, v in zip(names, values, strict=True)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class _Metric(ABC):
    kind = ""

    def __init__(self, name: str, help: str, labelnames: Sequence[str] = ()) -> None:
        self.name = name
        self.help = help
        self.labelnames = tuple(labelnames)

    def _key(self, labels: dict[str, str]) -> LabelValues:
        return tuple(str(labels[n]) for n in self.labelnames)

    def header(self) -> list[str]:
        return [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}"]

    @abstractmethod
    def samples(self) -> Iterable[str]:
        """The metric's sample lines."""


class Counter(_Metric):
    """A monotonically increasing count, optionally per label values."""

    kind = "counter"

    def __init__(self, name: str, help: str, labelnames: Sequence[str] = ()) -> None:
        super().__init__(name, help, labelnames)
        self.values: dict[LabelValues, float] = {} if labelnames else {(): 0}

    def inc(self, amount: float = 1, **labels: str) -> None:
        key = self._key(labels) if labels else ()
        self.values[key] = self.values.get(key, 0) + amount

    def get(self, **labels: str) -> float:
        return self.values.get(self._key(labels), 0)

    def samples(self) -> Iterable[str]:
        for key, value in sorted(self.values.items()):
            yield f"{self.name}{_labels(self.labelnames, key)} {_fmt(value)}"


class Gauge(Counter):
    """A value that goes up and down; either set directly or read from a callback at render."""

    kind = "gauge"

    def __init__(
        self,
        name: str,
        help: str,
        labelnames: Sequence[str] = (),
        callback: Callable[[], dict[LabelValues, float] | float] | None = None,
    ) -> None:
        super().__init__(name, help, labelnames)
        self.callback = callback

    def set(self, value: float, **labels: str) -> None:
        self.values[self._key(labels) if labels else ()] = value

    def samples(self) -> Iterable[str]:
        if self.callback is not None:
            read = self.callback()
            self.values = read if isinstance(read, dict) else {(): read}
        return super().samples()


class Histogram(_Metric):
    """Observations counted into cumulative buckets (upper bounds), with their sum and count."""

    kind = "histogram"

    def __init__(self, name: str, help: str, buckets: Sequence[float]) -> None:
        super().__init__(name, help)
        self.bounds = sorted(buckets)
        self.counts = [0] * (len(self.bounds) + 1)  # the last one is +Inf
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value
        self.count += 1

    def samples(self) -> Iterable[str]:
        running = 0
        for bound, n in zip([*self.bounds, math.inf], self.counts, strict=True):
            running += n
            yield f'{self.name}_bucket{{le="{_fmt(bound)}"}} {running}'
        yield f"{self.name}_sum {_fmt(self.sum)}"
        yield f"{self.name}_count {self.count}"


class Metrics:
    """Every metric the engine exports. One instance per engine, passed to the actors."""

    def __init__(self) -> None:
        self.ticks = Counter("triggerbook_ticks_total", "Ticks applied to the book.", ["exchange"])
        self.fires = Counter("triggerbook_fires_total", "Triggers fired.", ["exchange"])
        self.frames_skipped = Counter(
            "triggerbook_frames_skipped_total", "Feed frames skipped as bad.", ["exchange", "kind"]
        )
        self.feed_reconnects = Counter(
            "triggerbook_feed_reconnects_total", "Feed reconnections.", ["exchange"]
        )
        self.deliveries = Counter(
            "triggerbook_notifications_delivered_total", "Notifications delivered.", ["channel"]
        )
        self.delivery_failures = Counter(
            "triggerbook_notification_failures_total", "Failed delivery attempts.", ["channel"]
        )
        self.book_size = Gauge(
            "triggerbook_book_triggers", "Live triggers in the book.", ["exchange"]
        )
        self.tick_to_fire = Histogram(
            "triggerbook_tick_to_fire_seconds",
            "From a frame's arrival to its fire leaving the book.",
            [5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 1e-2, 0.1, 1.0],
        )
        self.http_requests = Counter(
            "triggerbook_http_requests_total", "HTTP requests served.", ["method", "status"]
        )
        self.fires_recorded = Counter(
            "triggerbook_fires_recorded_total", "Fired alerts committed as triggered."
        )
        self.store_retries = Counter(
            "triggerbook_store_retries_total", "Fire batches retried: the database was away."
        )
        self.quarantined = Counter(
            "triggerbook_quarantined_total",
            "Rows, commands, ticks and fires set aside as unusable (engine/quarantine.py).",
            ["kind"],
        )

    def all(self) -> list[_Metric]:
        return [m for m in vars(self).values() if isinstance(m, _Metric)]

    def render(self) -> str:
        """The Prometheus text exposition of every metric."""
        lines: list[str] = []
        for metric in self.all():
            lines += metric.header()
            lines += metric.samples()
        return "\n".join(lines) + "\n"
