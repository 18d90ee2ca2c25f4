// The page: sign in, then alerts, destinations and a live chart, wired together here.
// Each part lives in its own module; this one only connects their events.

import { AlertsPanel, CreateForm } from "./alerts.js";
import { ApiError, Session } from "./api.js";
import { PriceChart } from "./chart.js";
import { DestinationsPanel } from "./destinations.js";
import { busy, byId, decimal, el, fill, values } from "./dom.js";
import { LiveStream } from "./stream.js";
import { toast } from "./toast.js";

const WATCHED_KEY = "triggerbook.watched";
const DEFAULT_WATCH = { exchange: "binance", symbol: "BTCUSDT" };

const session = new Session();
const stream = new LiveStream(session);
const chart = new PriceChart(byId("chart"), byId("chart-legend"));
const alerts = new AlertsPanel(session);
const destinations = new DestinationsPanel(session);
const toasts = byId("toasts");
const last = { key: null, price: null }; // the chart symbol's last streamed price
let watched = null; // {exchange, symbol} as the stream spells it
const names = new Map(); // alert id -> name, for toasts

const createForm = new CreateForm(session, lastPrice);

function showError(error) {
  toast(toasts, "Something went wrong", error instanceof ApiError ? error.message : String(error), "error");
}

// --- signing in and out --------------------------------------------------------------------

function showAuth(reason = "") {
  byId("auth-view").hidden = false;
  byId("app-view").hidden = true;
  byId("who").hidden = true;
  byId("sign-out").hidden = true;
  tab(false);
  byId("auth-error").textContent = reason;
}

function tab(signUp) {
  byId("sign-in-form").hidden = signUp;
  byId("sign-up-form").hidden = !signUp;
  byId("tab-sign-in").setAttribute("aria-selected", String(!signUp));
  byId("tab-sign-up").setAttribute("aria-selected", String(signUp));
  byId("auth-error").textContent = "";
}

byId("tab-sign-in").addEventListener("click", () => tab(false));
byId("tab-sign-up").addEventListener("click", () => tab(true));

byId("sign-in-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const { username, password } = values(event.target);
  busy(event.target, () => session.signIn(username, password).catch(authFailed));
});

byId("sign-up-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const { username, email, password } = values(event.target);
  busy(event.target, () => session.signUp(username, email, password).catch(authFailed));
});

function authFailed(error) {
  const field = error.field ? `${error.field}: ` : "";
  byId("auth-error").textContent = `${field}${error.message}`;
}

byId("sign-out").addEventListener("click", () => session.signOut());

session.addEventListener("signedin", (event) => start(event.detail));
session.addEventListener("signedout", (event) => {
  stream.stop();
  forget();
  showAuth(event.detail);
});

/** Nothing of the last person stays on the page for the next one to see. */
function forget() {
  watched = null;
  last.key = null;
  last.price = null;
  names.clear();
  looked.clear();
  chart.clear();
  byId("create-form").reset();
  byId("direction-hint").textContent = "";
  byId("chart-title").textContent = "Chart";
  alerts.forget();
  destinations.forget();
  fill(byId("last-price"));
  fill(byId("toasts"));
  byId("secret").textContent = "";
  byId("secret-box").hidden = true;
}

async function start(user) {
  byId("auth-view").hidden = true;
  byId("app-view").hidden = false;
  byId("who").hidden = false;
  byId("who").textContent = user.username;
  byId("sign-out").hidden = false;
  byId("sign-in-form").reset();
  byId("sign-up-form").reset();
  try {
    const choices = await session.get("/api/choices");
    offer(choices);
    destinations.account(user, choices);
  } catch (error) {
    showError(error);
  }
  stream.start();
  let first = DEFAULT_WATCH;
  try {
    first = JSON.parse(sessionStorage.getItem(WATCHED_KEY)) || DEFAULT_WATCH;
  } catch {
    // a damaged entry: watch the default
  }
  watch(first.exchange, first.symbol);
  await Promise.all([alerts.load(), destinations.load()]);
}

function offer(choices) {
  const exchanges = choices.exchanges.map((x) => el("option", { value: x.name }, x.name));
  fill(byId("watch-form").elements.exchange, ...exchanges.map((o) => o.cloneNode(true)));
  fill(byId("create-form").elements.exchange, ...exchanges);
  createForm.choices(choices);
  destinations.choices(choices);
  const preferred = choices.exchanges.find((x) => x.default) || choices.exchanges[0];
  if (preferred) DEFAULT_WATCH.exchange = preferred.name;
}

// --- the chart and the live stream -----------------------------------------------------------

let asked = null; // a symbol asked for and not yet subscribed: refused, the chart goes back

function watch(exchange, symbol) {
  const form = byId("watch-form");
  form.elements.exchange.value = exchange;
  form.elements.symbol.value = symbol;
  asked = { exchange, symbol };
  stream.watch([{ exchange, symbol }]);
}

byId("watch-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const { exchange, symbol } = values(event.target);
  watch(exchange, symbol);
});

alerts.addEventListener("watch", (event) => watch(event.detail.exchange, event.detail.symbol));

stream.addEventListener("state", (event) => {
  const live = byId("live");
  live.dataset.state = event.detail.name;
  live.textContent = event.detail.text;
});

stream.addEventListener("subscribed", (event) => {
  const [first] = event.detail.symbols;
  if (first) asked = null;
  if (!first || chart.is(first.exchange, first.symbol)) return;
  watched = first;
  sessionStorage.setItem(WATCHED_KEY, JSON.stringify(first));
  chart.show(first.exchange, first.symbol);
  last.key = `${first.exchange}/${first.symbol}`;
  last.price = null;
  byId("last-price").textContent = "";
  byId("chart-title").textContent = `${first.symbol} · ${first.exchange}`;
  byId("chart-empty").hidden = !chart.empty || !chart.available;
  createForm.use(first.exchange, first.symbol);
  drawAlerts();
});

stream.addEventListener("error", (event) => {
  toast(toasts, "Live stream", event.detail.detail, "error");
  if (asked === null) return;
  // The symbol asked for was refused: watch the one shown again (or nothing).
  asked = null;
  stream.refused(); // nothing of that request holds on the server
  if (watched) watch(watched.exchange, watched.symbol);
  asked = null;
});

stream.addEventListener("history", (event) => {
  const { exchange, symbol, points } = event.detail;
  if (!chart.is(exchange, symbol)) return;
  chart.history(points);
  byId("chart-empty").hidden = !chart.empty || !chart.available;
  if (last.price === null && points.length) showPrice(points[points.length - 1].price);
});

stream.addEventListener("price", (event) => {
  const { exchange, symbol, price, at } = event.detail;
  if (!chart.is(exchange, symbol)) return;
  chart.price(at, price);
  byId("chart-empty").hidden = true;
  showPrice(price);
});

function showPrice(price) {
  last.price = price;
  looked.clear(); // prices move: a hint asks again rather than trust an older answer
  byId("last-price").textContent = decimal(price);
  createForm.explain();
}

const looked = new Map(); // "exchange/symbol" -> {at, price}: the hint asks once per few seconds
const LOOK_AGAIN_MS = 1000;

async function lastPrice(exchange, symbol) {
  const key = `${exchange}/${symbol}`;
  if (last.key === key && last.price !== null) return last.price;
  const seen = looked.get(key);
  if (seen && Date.now() - seen.at < LOOK_AGAIN_MS) return seen.price;
  let price = null;
  try {
    price = (await session.get(`/api/prices/${encodeURIComponent(symbol)}`, { exchange })).price;
  } catch {
    // no price known yet (404), or a symbol the exchange cannot spell (422): no hint
  }
  looked.set(key, { at: Date.now(), price });
  if (looked.size > 100) looked.delete(looked.keys().next().value);
  return price;
}

/** The chart's lines (live alerts) and markers (fired ones) for the watched symbol. */
async function drawAlerts() {
  if (!watched) return;
  const { exchange, symbol } = watched;
  try {
    const query = { exchange, symbol, page_size: 100 };
    const [live, fired] = await Promise.all([
      session.get("/api/alerts", { ...query, status: "created" }),
      session.get("/api/alerts", { ...query, status: "triggered" }),
    ]);
    if (!chart.is(exchange, symbol)) return;
    const list = [...live.results, ...fired.results];
    list.forEach((a) => names.set(a.id, a.name));
    chart.alerts(list);
  } catch (error) {
    if (error.status !== 401) showError(error);
  }
}

stream.addEventListener("fire", async (event) => {
  const fire = event.detail;
  let name = names.get(fire.alert_id);
  if (name === undefined) {
    name = await session.get(`/api/alerts/${fire.alert_id}`).then((a) => a.name, () => "");
  }
  const moved = fire.direction === "above" ? "rose to" : "fell to";
  toast(
    toasts,
    `${fire.symbol} ${moved} ${decimal(fire.price)}`,
    `Alert “${name || `#${fire.alert_id}`}” fired (${fire.direction} ${decimal(fire.target_price)}).`,
    "fire"
  );
  if (chart.is(fire.exchange, fire.symbol)) {
    chart.fired(fire, name);
    showPrice(fire.price);
  }
  alerts.load();
});

// --- alerts and destinations -----------------------------------------------------------------

createForm.addEventListener("created", (event) => {
  const alert = event.detail;
  names.set(alert.id, alert.name);
  toast(toasts, "Alert created", `${alert.name || `#${alert.id}`}: ${alert.symbol} ${alert.direction} ${decimal(alert.target_price)}`);
  alerts.load();
  if (chart.is(alert.exchange, alert.symbol)) drawAlerts();
});

alerts.addEventListener("changed", (event) => {
  alerts.load();
  if (chart.is(event.detail.exchange, event.detail.symbol)) drawAlerts();
});
alerts.addEventListener("error", (event) => showError(event.detail));
destinations.addEventListener("error", (event) => showError(event.detail));

// --- the chart library and its attribution --------------------------------------------------

async function attribution() {
  if (!chart.available) {
    const note = byId("chart-missing");
    note.hidden = false;
    note.textContent =
      "The chart is off: its library (lightweight-charts) is not installed with this engine. " +
      "Run `make` with npm on the machine to add it; everything else works without it.";
    byId("chart").hidden = true;
    return;
  }
  try {
    const response = await fetch("/static/vendor/lightweight-charts.NOTICE.txt");
    if (response.ok) byId("notice").textContent = await response.text();
  } catch {
    // the NOTICE is shown when it can be read; the TradingView link stays either way
  }
}

// --- start ----------------------------------------------------------------------------------

attribution();
session.resume().then((resumed) => resumed || showAuth(), () => showAuth());
