// The API as the page uses it: a session (access token in memory, refresh token in this tab's
// sessionStorage, never in a URL), requests with the bearer token, and the API's own 401
// handling: an expired access token is refreshed once and the request sent again; a refused
// refresh signs the person out ("signedout" event) so they sign in again.

const REFRESH_KEY = "triggerbook.refresh";
const EARLY_S = 30; // refresh this long before the access token expires

/** A problem+json answer (RFC 9457) or a network failure, with the words to show. */
export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `request failed (${status})`);
    this.status = status;
    this.field = problem.field || null;
    this.type = problem.type || null;
  }
}

async function problemOf(response) {
  try {
    return await response.json();
  } catch {
    return { title: response.statusText || `HTTP ${response.status}` };
  }
}

async function post(path, body) {
  let response;
  try {
    response = await fetch(path, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
      credentials: "omit",
    });
  } catch {
    throw new ApiError(0, { detail: "the engine cannot be reached; try again" });
  }
  if (!response.ok) throw new ApiError(response.status, await problemOf(response));
  return response.json();
}

export class Session extends EventTarget {
  constructor(storage = window.sessionStorage) {
    super();
    this.storage = storage;
    this.access = null;
    this.user = null;
    this.timer = null;
    this.refreshing = null;
  }

  get signedIn() {
    return this.access !== null;
  }

  async signUp(username, email, password) {
    await post("/api/auth/register", { username, email, password });
    await this.signIn(username, password);
  }

  async signIn(username, password) {
    this.accept(await post("/api/auth/login", { username, password }));
    await this.loadUser();
  }

  /** Resume this tab's session after a reload: true when its refresh token still works. */
  async resume() {
    if (!this.storage.getItem(REFRESH_KEY)) return false;
    if (!(await this.refresh())) return false;
    await this.loadUser();
    return true;
  }

  async loadUser() {
    this.user = await this.request("GET", "/api/users/me");
    this.dispatchEvent(new CustomEvent("signedin", { detail: this.user }));
  }

  accept(tokens) {
    this.access = tokens.access;
    if (tokens.refresh) this.storage.setItem(REFRESH_KEY, tokens.refresh);
    clearTimeout(this.timer);
    const ttl = Number(tokens.expires_in) || 60;
    const wait = Math.max(1, ttl > 2 * EARLY_S ? ttl - EARLY_S : ttl / 2);
    this.timer = setTimeout(() => this.refresh(), wait * 1000);
    this.dispatchEvent(new CustomEvent("token", { detail: this.access }));
  }

  /** A new access token from the refresh token (one at a time); false when refused. */
  refresh() {
    if (!this.refreshing) {
      this.refreshing = this.refreshOnce().finally(() => (this.refreshing = null));
    }
    return this.refreshing;
  }

  async refreshOnce() {
    const token = this.storage.getItem(REFRESH_KEY);
    if (!token) return false;
    try {
      this.accept(await post("/api/auth/refresh", { refresh: token }));
      return true;
    } catch (error) {
      if (error.status === 401) {
        this.signOut("Your session has expired: sign in again.");
        return false;
      }
      // The engine is away (restarting?): keep the session and try again shortly.
      clearTimeout(this.timer);
      this.timer = setTimeout(() => this.refresh(), 5000);
      return this.access !== null;
    }
  }

  signOut(reason = "") {
    clearTimeout(this.timer);
    const was = this.access !== null || this.storage.getItem(REFRESH_KEY) !== null;
    this.access = null;
    this.user = null;
    this.storage.removeItem(REFRESH_KEY);
    if (was) this.dispatchEvent(new CustomEvent("signedout", { detail: reason }));
  }

  /** One API call with the bearer token; the JSON answer, or an ApiError. */
  async request(method, path, body = undefined, retried = false) {
    if (!this.access) throw new ApiError(401, { detail: "sign in first" });
    const headers = { Authorization: `Bearer ${this.access}` };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let response;
    try {
      response = await fetch(path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        credentials: "omit",
      });
    } catch {
      throw new ApiError(0, { detail: "the engine cannot be reached; try again" });
    }
    if (response.status === 401 && !retried) {
      if (await this.refresh()) return this.request(method, path, body, true);
    }
    if (response.status === 401) this.signOut("Your session has expired: sign in again.");
    if (!response.ok) throw new ApiError(response.status, await problemOf(response));
    return response.status === 204 ? null : response.json();
  }

  get(path, query = {}) {
    const params = new URLSearchParams();
    for (const [name, value] of Object.entries(query)) {
      if (value !== "" && value !== null && value !== undefined) params.set(name, value);
    }
    const text = params.toString();
    return this.request("GET", text ? `${path}?${text}` : path);
  }
}
