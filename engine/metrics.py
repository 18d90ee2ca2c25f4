"""The engine's metrics, exported through ``prometheus_client``'s registry and exposition format.

Each ``Metrics`` object (one per engine: tests start several in one process) owns a private
``prometheus_client.CollectorRegistry``; ``/metrics`` serves ``generate_latest(metrics.registry)``.
The values themselves are plain numbers in dicts, updated on the one Trio thread, and one
custom collector (the pattern prometheus_client documents for values kept elsewhere) turns them
into metric families when the registry is scraped. So the exposition (names, ``# HELP``/``# TYPE``,
escaping, histogram buckets) is the library's, while an increment on the hot path stays a dict
update with no lock. A scrape costs one sample per label set: nothing here grows with the number
of triggers (the book-size gauge reads per-symbol counts).

Why a collector rather than prometheus_client's own ``Counter``/``Histogram`` objects, measured
on this machine (python3.11, prometheus_client 0.26, timeit, best of 5 x 1e6):

- per increment: dict update 121 ns; ``Counter.labels(x).inc()`` 1344 ns; a cached child's
  ``inc()`` 402 ns (it takes a ``threading.Lock``); ``Histogram.observe`` 993 ns against 173 ns;
- ``triggerbook bench feed`` runs about 31 us per frame, so a per-tick child ``inc`` would cost
  ~1.3% and ``labels().inc()`` ~4%. Batching per drained burst would bring the library objects
  under the 2% bar too, but it needs a flush in the book actor and per-burst book-keeping
  there, and ``get``/``values`` (which the tests and the plugin kit read) would have to go
  through the library's private ``_value``. The collector adds nothing to the hot path (the
  book actor and the feed runner keep today's dict updates, with no flush to write), so it is
  both the cheaper and the simpler;
- measured before/after on 2026-11-25 in the same session, HEAD against HEAD plus this change,
  runs alternated on a shared 2-core machine (load 4-5): ``triggerbook bench feed`` (6 runs
  each, medians) ratio_cpu 0.796 -> 0.799 (feed path against the bare parse, in-run), tick to
  fire p50 370 -> 375 us, idle p50 63 -> 65 us: within noise, as expected with the per-tick code
  unchanged. ``triggerbook bench book`` (3 runs each) does not reach this module; its medians
  moved -13% to +29% either way between identical code, which is the machine's noise. A scrape
  of ~60 series costs 377 us against 163 us for the hand-written text, once per scrape.

Actors receive the one ``Metrics`` object as an argument; nothing is global (prometheus_client's
default ``REGISTRY`` is never used).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from bisect import bisect_left
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

__all__ = ["Counter", "Gauge", "Histogram", "LabelValues", "Metrics"]

LabelValues = tuple[str, ...]


class _Metric(ABC):
    kind = ""

    def __init__(self, name: str, help: str, labelnames: Sequence[str] = ()) -> None:
        self.name = name
        self.help = help
        self.labelnames = tuple(labelnames)

    def _key(self, labels: dict[str, str]) -> LabelValues:
        return tuple(str(labels[n]) for n in self.labelnames)

    @abstractmethod
    def family(self) -> Metric:
        """The metric's current values as a prometheus_client metric family."""


M = TypeVar("M", bound=_Metric)


class Counter(_Metric):
    """A monotonically increasing count, optionally per label values.

    ``values`` maps label values (in ``labelnames`` order) to the count; a hot loop may update
    it in place (the book actor does, per tick) rather than call ``inc``.
    """

    kind = "counter"

    def __init__(self, name: str, help: str, labelnames: Sequence[str] = ()) -> None:
        super().__init__(name, help, labelnames)
        self.values: dict[LabelValues, float] = {} if labelnames else {(): 0}

    def inc(self, amount: float = 1, **labels: str) -> None:
        key = self._key(labels) if labels else ()
        self.values[key] = self.values.get(key, 0) + amount

    def get(self, **labels: str) -> float:
        return self.values.get(self._key(labels), 0)

    def family(self) -> Metric:
        family = CounterMetricFamily(self.name, self.help, labels=self.labelnames)
        for key, value in sorted(self.values.items()):
            family.add_metric(list(key), value)
        return family


class Gauge(Counter):
    """A value that goes up and down; either set directly or read from a callback at scrape."""

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

    def family(self) -> Metric:
        if self.callback is not None:
            read = self.callback()
            self.values = read if isinstance(read, dict) else {(): read}
        family = GaugeMetricFamily(self.name, self.help, labels=self.labelnames)
        for key, value in sorted(self.values.items()):
            family.add_metric(list(key), value)
        return family


class Histogram(_Metric):
    """Observations counted into buckets (upper bounds), with their sum and count."""

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

    def family(self) -> Metric:
        buckets: list[tuple[str, float]] = []
        running = 0
        for bound, n in zip([*self.bounds, float("inf")], self.counts, strict=True):
            running += n
            buckets.append((floatToGoString(bound), running))
        return HistogramMetricFamily(self.name, self.help, buckets=buckets, sum_value=self.sum)


class _Collector(Collector):
    """Reads every metric of one ``Metrics`` at scrape time, those added later included."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        for metric in self._metrics.all():
            yield metric.family()


class Metrics:
    """Every metric the engine exports. One instance per engine, passed to the actors.

    ``registry`` is this engine's own ``CollectorRegistry``. Parts that own state of their own
    (``FeedStates``, ``SymbolDirectory``) :meth:`add` their metrics; the collector finds them.
    """

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
        self.notifications_dead = Counter(
            "triggerbook_notifications_dead_total",
            "Notifications given up: refused, or out of attempts.",
            ["channel"],
        )
        self.outbox_pending = Gauge(
            "triggerbook_outbox_pending", "Notifications waiting to be delivered.", ["channel"]
        )
        self.outbox_oldest_age = Gauge(
            "triggerbook_outbox_oldest_pending_seconds",
            "Age of the oldest notification waiting to be delivered.",
            ["channel"],
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
        # Metrics of other parts, by name (a second add of one name replaces the first).
        self._added: dict[str, _Metric] = {}
        # Not auto-described: the collector's names change as parts add gauges.
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_Collector(self))

    def add(self, metric: M) -> M:
        """Export ``metric`` too (a part's own counter or gauge); returns it, to keep."""
        self._added[metric.name] = metric
        return metric

    def all(self) -> list[_Metric]:
        own = [m for m in vars(self).values() if isinstance(m, _Metric)]
        return own + list(self._added.values())

    def render(self) -> str:
        """Every metric in the Prometheus text format, as ``/metrics`` serves it (tests, logs)."""
        return generate_latest(self.registry).decode()
