// The live chart of one symbol: TradingView's lightweight-charts (Apache-2.0, from npm, served
// from /static/vendor/ when `make` installed it). The price as it streams, the person's live
// alerts on the symbol as horizontal lines labelled with their names, and a marker where one of
// them fired. Without the library the page works on and says why (the last price still shows).
// A legend under the chart names the same lines and fires in text, for people who cannot see
// the canvas (and for tests, which cannot read it either).

import { decimal, el, fill } from "./dom.js";

const UP = "#089981";
const DOWN = "#f23645";
const LINE = "#2962ff";
const FILL_POINTS = 120; // below this many points the time scale fits them all
const NEAR = 0.25; // lines within 25% of the price widen the chart's range

/** Fractional digits of a decimal string ("70000.10" -> 2). */
function digits(text) {
  const dot = String(text).indexOf(".");
  return dot < 0 ? 0 : String(text).length - dot - 1;
}

export class PriceChart {
  constructor(container, legend) {
    this.container = container;
    this.legend = legend;
    this.live = new Map(); // alert id -> {alert, line}: a live alert and its price line (or null)
    this.library = window.LightweightCharts || null;
    this.key = null;
    this.times = []; // the series' times (epoch seconds), ascending
    this.fires = new Map(); // alert id -> {time, direction, name}
    this.precision = 2;
    if (!this.library) return;
    const { createChart, LineSeries, createSeriesMarkers } = this.library;
    this.chart = createChart(container, {
      autoSize: true,
      // The logo would inject an inline <style>, which the page's CSP refuses; the page shows the
      // required attribution (TradingView link and NOTICE) beside the chart instead.
      layout: { attributionLogo: false, background: { color: "transparent" }, textColor: "#d1d4dc" },
      grid: { vertLines: { color: "#2a2e39" }, horzLines: { color: "#2a2e39" } },
      timeScale: { timeVisible: true, secondsVisible: true },
      localization: { timeFormatter: (t) => new Date(t * 1000).toLocaleTimeString() },
    });
    this.series = this.chart.addSeries(LineSeries, {
      color: LINE,
      lineWidth: 2,
      autoscaleInfoProvider: (original) => this.withLines(original()),
    });
    this.markers = createSeriesMarkers(this.series, []);
  }

  get available() {
    return this.library !== null;
  }

  get empty() {
    return this.times.length === 0;
  }

  /** Start over for another symbol. */
  show(exchange, symbol) {
    this.key = `${exchange}/${symbol}`;
    this.times = [];
    this.forget();
    this.describe();
    if (!this.available) return;
    this.series.setData([]);
    this.markers.setMarkers([]);
  }

  /** No symbol at all (after a sign-out). */
  clear() {
    this.show("", "");
    this.key = null;
  }

  is(exchange, symbol) {
    return this.key === `${exchange}/${symbol}`;
  }

  format(points) {
    const widest = Math.min(8, Math.max(this.precision, ...points.map((p) => digits(p.price))));
    if (widest !== this.precision && this.available) {
      this.precision = widest;
      this.series.applyOptions({ priceFormat: { type: "price", precision: widest, minMove: 10 ** -widest } });
    }
  }

  /** The symbol's recent points ([{time, price}], oldest first), before any live price. */
  history(points) {
    if (!this.available || !points.length) return;
    this.format(points);
    const later = this.times.length ? this.times[0] : Infinity;
    const older = points.filter((p) => p.time < later).map((p) => ({ time: p.time, value: Number(p.price) }));
    const kept = this.series.data();
    this.series.setData([...older, ...kept]);
    this.times = [...older.map((p) => p.time), ...this.times];
    this.chart.timeScale().fitContent();
    this.redraw();
  }

  /** One live price (`time` in epoch seconds). Older than the last point: ignored. */
  price(time, price) {
    if (!this.available) return;
    const last = this.times.length ? this.times[this.times.length - 1] : -Infinity;
    if (time < last) return;
    this.format([{ price }]);
    this.series.update({ time, value: Number(price) });
    if (time !== last) this.times.push(time);
    // Until the chart is full, stretch the points across it (the history may have been empty).
    if (this.times.length < FILL_POINTS) this.chart.timeScale().fitContent();
  }

  /** Lines for the live alerts of this symbol, markers for the fired ones. */
  alerts(list) {
    this.forget();
    for (const alert of list) {
      if (alert.status === "created") this.line(alert);
      else if (alert.status === "triggered" && alert.triggered_at) {
        this.fires.set(alert.id, {
          time: Math.floor(Date.parse(alert.triggered_at) / 1000),
          direction: alert.direction,
          name: alert.name,
          price: alert.triggered_price,
        });
      }
    }
    this.redraw();
  }

  /** Every line and fire goes (another symbol, or a fresh list of alerts). */
  forget() {
    for (const { line } of this.live.values()) if (line) this.series.removePriceLine(line);
    this.live.clear();
    this.fires.clear();
  }

  line(alert) {
    const line = !this.available
      ? null
      : this.series.createPriceLine({
          price: Number(alert.target_price),
          color: alert.direction === "above" ? UP : DOWN,
          lineWidth: 1,
          lineStyle: this.library.LineStyle.Dashed,
          axisLabelVisible: true,
          title: alert.name || `#${alert.id}`,
        });
    this.live.set(alert.id, { alert, line });
  }

  /** One of the person's alerts fired on this symbol: its line goes, a marker stays. */
  fired(event, name) {
    const drawn = this.live.get(event.alert_id);
    if (drawn?.line) this.series.removePriceLine(drawn.line);
    this.live.delete(event.alert_id);
    const time = Math.floor(event.triggered_at / 1000);
    this.price(time, event.price);
    this.fires.set(event.alert_id, { time, direction: event.direction, name, price: event.price });
    this.redraw();
  }

  /** The markers, each at the nearest point at or before its fire (markers sit on points). */
  redraw() {
    this.describe();
    if (!this.available) return;
    const marks = [];
    for (const fire of this.fires.values()) {
      const time = this.nearest(fire.time);
      if (time === null) continue;
      const up = fire.direction === "above";
      marks.push({
        time,
        position: up ? "aboveBar" : "belowBar",
        shape: up ? "arrowDown" : "arrowUp",
        color: up ? UP : DOWN,
        text: fire.name || "fired",
      });
    }
    marks.sort((a, b) => a.time - b.time);
    this.markers.setMarkers(marks);
  }

  /** The price range to show: the data's, widened to the live alerts' lines near it (within
   * NEAR of the last price), so a line is on the chart, not above it; a far one (a target of 1
   * under a price of 97,000) would flatten the line, and the legend names it anyway. */
  withLines(range) {
    if (!range || !range.priceRange || !this.live.size) return range;
    let { minValue, maxValue } = range.priceRange;
    const middle = (minValue + maxValue) / 2;
    for (const { alert } of this.live.values()) {
      const target = Number(alert.target_price);
      if (Math.abs(target - middle) > NEAR * middle) continue;
      minValue = Math.min(minValue, target);
      maxValue = Math.max(maxValue, target);
    }
    return { ...range, priceRange: { minValue, maxValue } };
  }

  /** The legend: each line and each fire in words. */
  describe() {
    const items = [];
    for (const { alert } of this.live.values()) {
      items.push(
        el(
          "li",
          { class: `line ${alert.direction}`, dataset: { id: alert.id } },
          el("span", { class: "name" }, alert.name || `#${alert.id}`),
          ` ${alert.direction} ${decimal(alert.target_price)}`
        )
      );
    }
    for (const [id, fire] of this.fires) {
      items.push(
        el(
          "li",
          { class: "fired", dataset: { id } },
          el("span", { class: "name" }, fire.name || `#${id}`),
          ` fired at ${decimal(fire.price)}`
        )
      );
    }
    fill(this.legend, ...items);
  }

  nearest(time) {
    let low = 0;
    let high = this.times.length - 1;
    if (high < 0 || time < this.times[0]) return null;
    while (low < high) {
      const middle = (low + high + 1) >> 1;
      if (this.times[middle] <= time) low = middle;
      else high = middle - 1;
    }
    return this.times[low];
  }
}
