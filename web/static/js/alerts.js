// The alerts panel: a filtered, paged list of the person's alerts, each row with its state,
// its notifications on demand, a button to watch its symbol and one to delete it; and the
// create form with the direction the engine would infer shown as a hint from the last price.

import { busy, byId, compareDecimal, decimal, el, fill, values, when } from "./dom.js";

const PAGE_SIZE = 20;
const HINT_PAUSE_MS = 250;
const STATUS_TEXT = { created: "live", triggered: "fired", deleted: "deleted" };

export class AlertsPanel extends EventTarget {
  constructor(session) {
    super();
    this.session = session;
    this.page = 1;
    this.filters = { status: "", symbol: "" };
    this.body = byId("alerts").querySelector("tbody");
    this.open = new Set(); // alert ids whose notifications are shown
    byId("filter-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.filters = values(event.target);
      this.page = 1;
      this.load();
    });
    byId("prev-page").addEventListener("click", () => this.turn(-1));
    byId("next-page").addEventListener("click", () => this.turn(1));
  }

  /** Back to the first page with no filter and nothing shown (after a sign-out). */
  forget() {
    this.page = 1;
    this.filters = { status: "", symbol: "" };
    this.open.clear();
    byId("filter-form").reset();
    fill(this.body);
    byId("page-info").textContent = "";
  }

  turn(step) {
    this.page = Math.max(1, this.page + step);
    this.load();
  }

  async load() {
    let answer;
    try {
      answer = await this.session.get("/api/alerts", { ...this.filters, page: this.page, page_size: PAGE_SIZE });
    } catch (error) {
      this.dispatchEvent(new CustomEvent("error", { detail: error }));
      return;
    }
    const pages = Math.max(1, Math.ceil(answer.count / PAGE_SIZE));
    if (this.page > pages && answer.count > 0) {
      this.page = pages;
      return this.load();
    }
    fill(this.body, ...answer.results.flatMap((alert) => this.rows(alert)));
    byId("alerts-empty").hidden = answer.results.length > 0;
    byId("page-info").textContent = `page ${this.page} of ${pages} · ${answer.count} alerts`;
    byId("prev-page").disabled = !answer.previous;
    byId("next-page").disabled = !answer.next;
  }

  rows(alert) {
    const status = STATUS_TEXT[alert.status] || alert.status;
    const condition = `${alert.direction} ${decimal(alert.target_price)}`;
    const fired = alert.triggered_at
      ? el("span", {}, `${when(alert.triggered_at)} at ${decimal(alert.triggered_price)}`)
      : "";
    const actions = el(
      "td",
      { class: "actions" },
      el("button", { type: "button", class: "quiet", "data-act": "watch" }, "Chart"),
      el("button", { type: "button", class: "quiet", "data-act": "notes" }, "Notifications"),
      alert.status !== "deleted" ? el("button", { type: "button", class: "danger", "data-act": "delete" }, "Delete") : null
    );
    const row = el(
      "tr",
      { dataset: { id: alert.id, status: alert.status } },
      el("td", { class: "name" }, alert.name || `#${alert.id}`),
      el("td", {}, alert.symbol, el("small", {}, ` ${alert.exchange}`)),
      el("td", { class: "num" }, condition),
      el("td", {}, el("span", { class: `status ${alert.status}` }, status), alert.problem ? el("small", { class: "problem" }, ` ${alert.problem}`) : null),
      el("td", {}, fired),
      actions
    );
    actions.addEventListener("click", (event) => this.act(event, alert, row));
    const rows = [row];
    if (this.open.has(alert.id)) {
      const holder = el("tr", { class: "notes", dataset: { for: alert.id } }, el("td", { colspan: 6 }, "loading…"));
      rows.push(holder);
      this.notes(alert, holder);
    }
    return rows;
  }

  async act(event, alert, row) {
    const act = event.target.closest("button")?.dataset.act;
    if (act === "watch") {
      this.dispatchEvent(new CustomEvent("watch", { detail: { exchange: alert.exchange, symbol: alert.symbol } }));
    } else if (act === "notes") {
      if (this.open.has(alert.id)) this.open.delete(alert.id);
      else this.open.add(alert.id);
      await this.load();
    } else if (act === "delete") {
      event.target.disabled = true;
      try {
        await this.session.request("DELETE", `/api/alerts/${alert.id}`);
        this.dispatchEvent(new CustomEvent("changed", { detail: alert }));
      } catch (error) {
        event.target.disabled = false;
        this.dispatchEvent(new CustomEvent("error", { detail: error }));
      }
    }
  }

  async notes(alert, holder) {
    let full;
    try {
      full = await this.session.get(`/api/alerts/${alert.id}`);
    } catch (error) {
      fill(holder.firstChild, error.message);
      return;
    }
    const notes = full.notifications || [];
    if (!notes.length) {
      fill(holder.firstChild, alert.status === "triggered" ? "No notification for this fire." : "Nothing sent yet: it has not fired.");
      return;
    }
    const items = notes.map((n) =>
      el(
        "li",
        {},
        el("strong", {}, n.channel),
        n.destination_id ? ` (destination #${n.destination_id})` : " (your account)",
        ": ",
        el("span", { class: `state ${n.state}` }, n.state),
        n.attempts ? ` after ${n.attempts} attempt${n.attempts === 1 ? "" : "s"}` : "",
        n.delivered_at ? ` at ${when(n.delivered_at)}` : "",
        n.last_error ? el("small", { class: "problem" }, ` ${n.last_error}`) : null
      )
    );
    fill(holder.firstChild, el("ul", { class: "list" }, ...items));
  }
}

export class CreateForm extends EventTarget {
  constructor(session, lastPrice) {
    super();
    this.session = session;
    this.lastPrice = lastPrice; // async (exchange, symbol) -> price string or null
    this.form = byId("create-form");
    this.hint = byId("direction-hint");
    this.error = byId("create-error");
    this.asked = 0; // the hint's latest question: an older answer arriving late is dropped
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      busy(this.form, () => this.create());
    });
    // The hint waits for a pause in typing before it asks for a price.
    let pause = null;
    const later = () => {
      clearTimeout(pause);
      pause = setTimeout(() => this.explain(), HINT_PAUSE_MS);
    };
    for (const name of ["exchange", "symbol", "target_price", "direction"]) {
      this.form.elements[name].addEventListener("input", later);
      this.form.elements[name].addEventListener("change", later);
    }
  }

  choices(choices) {
    const channels = byId("channels");
    fill(
      channels,
      el("legend", {}, "Notify by"),
      ...choices.channels.map((name) =>
        el("label", { class: "check" }, el("input", { type: "checkbox", name: "channels", value: name, checked: true }), ` ${name}`)
      )
    );
  }

  /** Prefill the symbol from the chart. */
  use(exchange, symbol) {
    this.form.elements.exchange.value = exchange;
    this.form.elements.symbol.value = symbol;
    this.explain();
  }

  async explain() {
    const { exchange, symbol, target_price: target, direction } = values(this.form);
    const asked = ++this.asked;
    if (!symbol) {
      this.hint.textContent = "";
      return;
    }
    const last = await this.lastPrice(exchange, symbol);
    if (asked !== this.asked) return; // a newer keystroke asked since
    if (last === null) {
      this.hint.textContent = direction ? "" : "No price known yet for this symbol: choose a direction.";
      return;
    }
    const parts = [`Last price ${decimal(last)}.`];
    if (/^\d+(\.\d+)?$/.test(target)) {
      const inferred = compareDecimal(target, last) >= 0 ? "above" : "below";
      parts.push(
        direction
          ? `${direction === inferred ? "" : "Note: "}it fires when the price ${direction === "above" ? "rises to" : "falls to"} ${decimal(target)}.`
          : `Without a direction it will be "${inferred}": it fires when the price ${inferred === "above" ? "rises to" : "falls to"} ${decimal(target)}.`
      );
    }
    this.hint.textContent = parts.join(" ");
  }

  async create() {
    this.error.textContent = "";
    const data = values(this.form);
    const body = { exchange: data.exchange, symbol: data.symbol, target_price: data.target_price };
    if (data.direction) body.direction = data.direction;
    if (data.name) body.name = data.name;
    const boxes = [...this.form.querySelectorAll("input[name=channels]")];
    const chosen = boxes.filter((box) => box.checked).map((box) => box.value);
    // Every box ticked: no list, so the alert follows the engine's channels at fire time.
    if (chosen.length !== boxes.length) body.channels = chosen;
    try {
      const alert = await this.session.request("POST", "/api/alerts", body);
      this.form.elements.symbol.value = alert.symbol; // the exchange's own spelling
      this.form.elements.target_price.value = "";
      this.form.elements.name.value = "";
      this.hint.textContent = "";
      this.dispatchEvent(new CustomEvent("created", { detail: alert }));
    } catch (error) {
      this.error.textContent = error.field ? `${error.field}: ${error.message}` : error.message;
    }
  }
}
