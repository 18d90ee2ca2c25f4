"""engine/metrics.py: the values the engine keeps and what prometheus_client exposes of them.

Each exposition is read back with prometheus_client's own parser, so the tests check values,
not the library's formatting of them.
"""

from __future__ import annotations

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from engine.metrics import Counter, Gauge, Histogram, Metrics


def _samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(metrics.render())
        for sample in family.samples
    }


def test_counter_with_labels_is_exposed_per_label_set() -> None:
    metrics = Metrics()
    metrics.ticks.inc(exchange="kraken")
    metrics.ticks.inc(2, exchange="binance")
    metrics.ticks.inc(exchange="binance")
    assert metrics.ticks.get(exchange="binance") == 3
    samples = _samples(metrics)
    assert samples["triggerbook_ticks_total", (("exchange", "binance"),)] == 3
    assert samples["triggerbook_ticks_total", (("exchange", "kraken"),)] == 1
    assert 'triggerbook_ticks_total{exchange="binance"} 3' in metrics.render()


def test_values_updated_in_place_are_exposed() -> None:
    """The book actor bumps ``values`` directly per tick; the scrape reads them as they are."""
    metrics = Metrics()
    metrics.ticks.values["binance",] = 7
    assert _samples(metrics)["triggerbook_ticks_total", (("exchange", "binance"),)] == 7


def test_unlabelled_counter_starts_at_zero() -> None:
    assert _samples(Metrics())["triggerbook_store_retries_total", ()] == 0
    assert Counter("n_total", "N.").get() == 0


def test_label_values_are_escaped() -> None:
    metrics = Metrics()
    odd = 'a"b\\c\nd'
    metrics.quarantined.inc(kind=odd)
    assert _samples(metrics)["triggerbook_quarantined_total", (("kind", odd),)] == 1


def test_gauge_callback_is_read_at_scrape() -> None:
    metrics = Metrics()
    sizes = {("binance",): 3.0}
    metrics.book_size.callback = lambda: sizes
    assert _samples(metrics)["triggerbook_book_triggers", (("exchange", "binance"),)] == 3
    sizes[("kraken",)] = 1.5
    assert _samples(metrics)["triggerbook_book_triggers", (("exchange", "kraken"),)] == 1.5


def test_a_set_gauge_and_an_unlabelled_callback() -> None:
    gauge = Gauge("g", "G.", ["exchange"])
    gauge.set(4, exchange="okx")
    assert gauge.get(exchange="okx") == 4
    metrics = Metrics()
    metrics.extra = Gauge("triggerbook_extra", "One number.", callback=lambda: 2.5)  # type: ignore[attr-defined]
    assert _samples(metrics)["triggerbook_extra", ()] == 2.5


def test_histogram_buckets_are_cumulative() -> None:
    metrics = Metrics()
    metrics.tick_to_fire = Histogram("lat_seconds", "Latency.", [0.001, 0.01])
    for value in (0.0005, 0.001, 0.005, 0.5):
        metrics.tick_to_fire.observe(value)
    assert metrics.tick_to_fire.count == 4
    samples = _samples(metrics)
    assert samples["lat_seconds_bucket", (("le", "0.001"),)] == 2
    assert samples["lat_seconds_bucket", (("le", "0.01"),)] == 3
    assert samples["lat_seconds_bucket", (("le", "+Inf"),)] == 4
    assert samples["lat_seconds_count", ()] == 4
    assert abs(samples["lat_seconds_sum", ()] - 0.5065) < 1e-12


def test_registry_has_help_and_type_for_every_metric() -> None:
    metrics = Metrics()
    metrics.ticks.inc(exchange="binance")
    text = metrics.render()
    assert text.endswith("\n")
    for metric in metrics.all():
        assert f"# HELP {metric.name} {metric.help}" in text
        assert f"# TYPE {metric.name} {metric.kind}" in text


def test_gauges_added_later_are_collected() -> None:
    """``FeedStates`` and ``SymbolDirectory`` attach gauges after the registry was made."""
    metrics = Metrics()
    metrics.late = Gauge("triggerbook_late", "Added by a part.", ["exchange"])  # type: ignore[attr-defined]
    metrics.late.set(1, exchange="binance")  # type: ignore[attr-defined]
    assert _samples(metrics)["triggerbook_late", (("exchange", "binance"),)] == 1


def test_each_engine_has_its_own_registry() -> None:
    """Tests start several engines in one process; none sees another's counts, nor the
    library's global default registry."""
    one, two = Metrics(), Metrics()
    one.fires.inc(exchange="binance")
    assert _samples(one)["triggerbook_fires_total", (("exchange", "binance"),)] == 1
    assert ("triggerbook_fires_total", (("exchange", "binance"),)) not in _samples(two)
    assert one.registry is not two.registry
    assert generate_latest(one.registry).decode() == one.render()
    assert b"triggerbook_" not in generate_latest()  # the default REGISTRY


def test_a_part_adds_its_own_metrics_once_by_name() -> None:
    metrics = Metrics()
    first = metrics.add(Counter("triggerbook_part_total", "A part's own count.", ["kind"]))
    first.inc(kind="a")
    second = metrics.add(Counter("triggerbook_part_total", "A part's own count.", ["kind"]))
    second.inc(2, kind="b")
    text = metrics.render()
    assert 'triggerbook_part_total{kind="b"} 2.0' in text
    assert 'kind="a"' not in text  # the second add replaced the first
    assert sum(m.name == "triggerbook_part_total" for m in metrics.all()) == 1
