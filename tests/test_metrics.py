"""engine/metrics.py: the Prometheus text that /metrics serves."""

from __future__ import annotations

from engine.metrics import Counter, Gauge, Histogram, Metrics


def test_counter_with_labels_renders_sorted_samples() -> None:
    counter = Counter("x_total", "Things.", ["exchange"])
    counter.inc(exchange="kraken")
    counter.inc(2, exchange="binance")
    counter.inc(exchange="binance")
    assert counter.get(exchange="binance") == 3
    assert list(counter.samples()) == [
        'x_total{exchange="binance"} 3',
        'x_total{exchange="kraken"} 1',
    ]


def test_unlabelled_counter_starts_at_zero() -> None:
    assert list(Counter("n_total", "N.").samples()) == ["n_total 0"]


def test_label_values_are_escaped() -> None:
    counter = Counter("e_total", "E.", ["kind"])
    counter.inc(kind='a"b\\c\nd')
    assert list(counter.samples()) == ['e_total{kind="a\\"b\\\\c\\nd"} 1']


def test_gauge_callback_is_read_at_render() -> None:
    sizes = {("binance",): 3.0}
    gauge = Gauge("size", "Size.", ["exchange"], callback=lambda: sizes)
    assert list(gauge.samples()) == ['size{exchange="binance"} 3']
    sizes[("kraken",)] = 1.5
    assert list(gauge.samples())[-1] == 'size{exchange="kraken"} 1.5'


def test_histogram_buckets_are_cumulative() -> None:
    hist = Histogram("lat_seconds", "Latency.", [0.001, 0.01])
    for value in (0.0005, 0.001, 0.005, 0.5):
        hist.observe(value)
    assert list(hist.samples()) == [
        'lat_seconds_bucket{le="0.001"} 2',
        'lat_seconds_bucket{le="0.01"} 3',
        'lat_seconds_bucket{le="+Inf"} 4',
        "lat_seconds_sum 0.5065",
        "lat_seconds_count 4",
    ]


def test_registry_renders_help_and_type_for_every_metric() -> None:
    metrics = Metrics()
    metrics.ticks.inc(exchange="binance")
    text = metrics.render()
    assert text.endswith("\n")
    for metric in metrics.all():
        assert f"# HELP {metric.name} " in text
        assert f"# TYPE {metric.name} {metric.kind}" in text
    assert 'triggerbook_ticks_total{exchange="binance"} 1' in text
