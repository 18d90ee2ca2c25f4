// The live stream (/api/stream): prices of the watched symbols and this person's own fires.
// The token goes in the first message, never in the URL. The stream reconnects with capped,
// jittered backoff, resubscribes, and pings so a dead connection is noticed (the server pings
// too). A 4401 (token refused) asks the session for a fresh token before the next try.

const PING_S = 20;
const PONG_WAIT_S = 10;
const BACKOFF_CAP_S = 30;
const CLOSE_REASONS = {
  4401: "signed out of the live stream",
  4408: "too many live streams open for this account (close another tab)",
  4429: "the live stream fell behind and was dropped",
  4503: "the engine has too many live streams open",
};

export class LiveStream extends EventTarget {
  constructor(session) {
    super();
    this.session = session;
    this.socket = null;
    this.symbols = new Map(); // "exchange/symbol" -> {exchange, symbol}
    this.failures = 0;
    this.retry = null;
    this.pinger = null;
    this.pongDue = null;
    this.stopped = true;
  }

  start() {
    this.stopped = false;
    if (!this.socket) this.connect();
  }

  stop() {
    this.stopped = true;
    this.symbols.clear();
    clearTimeout(this.retry);
    this.cleanup();
    if (this.socket) this.socket.close(1000, "bye");
    this.socket = null;
    this.state("off", "offline");
  }

  /** Watch exactly these symbols ([{exchange, symbol}]). */
  watch(list) {
    const next = new Map(list.map((s) => [`${s.exchange}/${s.symbol}`, s]));
    const gone = [...this.symbols.keys()].filter((k) => !next.has(k)).map((k) => this.symbols.get(k));
    const added = [...next.keys()].filter((k) => !this.symbols.has(k)).map((k) => next.get(k));
    this.symbols = next;
    if (gone.length) this.send({ type: "unsubscribe", symbols: gone });
    if (added.length) this.send({ type: "subscribe", symbols: added });
  }

  /** The last subscribe was refused (the server kept nothing of it): forget its symbols here
   * too, without asking the server to unsubscribe what it never had. */
  refused() {
    this.symbols.clear();
  }

  send(message) {
    if (this.socket && this.socket.readyState === WebSocket.OPEN && this.socket.authed) {
      this.socket.send(JSON.stringify(message));
    }
  }

  connect() {
    if (this.stopped || !this.session.access) return;
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const socket = new WebSocket(`${scheme}//${location.host}/api/stream`);
    this.socket = socket;
    this.state("connecting", "connecting");
    socket.addEventListener("open", () => {
      socket.send(JSON.stringify({ type: "auth", token: this.session.access }));
      socket.authed = true;
      this.failures = 0;
      this.state("on", "live");
      if (this.symbols.size) this.send({ type: "subscribe", symbols: [...this.symbols.values()] });
      this.pinger = setInterval(() => this.ping(), PING_S * 1000);
    });
    socket.addEventListener("message", (event) => this.receive(event.data));
    socket.addEventListener("close", (event) => this.closed(socket, event));
  }

  ping() {
    this.send({ type: "ping" });
    clearTimeout(this.pongDue);
    this.pongDue = setTimeout(() => this.socket && this.socket.close(4000, "no pong"), PONG_WAIT_S * 1000);
  }

  receive(data) {
    let message;
    try {
      message = JSON.parse(data);
    } catch {
      return;
    }
    if (message.type === "pong") {
      clearTimeout(this.pongDue);
      return;
    }
    this.dispatchEvent(new CustomEvent(message.type, { detail: message }));
  }

  cleanup() {
    clearInterval(this.pinger);
    clearTimeout(this.pongDue);
  }

  async closed(socket, event) {
    if (socket !== this.socket) return;
    this.cleanup();
    this.socket = null;
    if (this.stopped) return;
    const reason = CLOSE_REASONS[event.code] || "the live stream was interrupted";
    this.state("off", `offline: ${reason}; reconnecting`);
    if (event.code === 4401 && !(await this.session.refresh())) return;
    this.failures += 1;
    const cap = Math.min(BACKOFF_CAP_S, 2 ** Math.min(this.failures, 5));
    const wait = (cap / 2 + (Math.random() * cap) / 2) * 1000;
    clearTimeout(this.retry);
    this.retry = setTimeout(() => this.connect(), event.code === 4401 ? 0 : wait);
  }

  state(name, text) {
    this.dispatchEvent(new CustomEvent("state", { detail: { name, text } }));
  }
}
