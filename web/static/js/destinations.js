// The destinations panel: where alerts go besides the account. Add a webhook (its signing
// secret shown once, with a copy button), another address (confirmed with the code mailed to
// it), or a chat-service URL; send a test; delete.

import { busy, byId, el, fill, values, when } from "./dom.js";

const PLACEHOLDERS = {
  webhook: "https://example.com/hook",
  email: "someone@example.com",
};

export class DestinationsPanel extends EventTarget {
  constructor(session) {
    super();
    this.session = session;
    this.list = byId("destinations");
    this.form = byId("destination-form");
    this.error = byId("destination-error");
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      busy(this.form, () => this.add());
    });
    this.form.elements.kind.addEventListener("change", () => this.placeholder());
    byId("copy-secret").addEventListener("click", () => this.copy());
    byId("send-account-code").addEventListener("click", (event) => this.sendAccountCode(event.target));
    byId("account-confirm-form").addEventListener("submit", (event) => {
      event.preventDefault();
      busy(event.target, () => this.confirmAccount(event.target));
    });
    byId("hide-secret").addEventListener("click", () => {
      byId("secret").textContent = "";
      byId("secret-box").hidden = true;
    });
  }

  choices(choices) {
    const kinds = choices.destination_kinds;
    fill(this.form.elements.kind, ...kinds.map((kind) => el("option", { value: kind }, kind)));
    this.form.hidden = kinds.length === 0;
    this.placeholder();
  }

  /** The account's own address, when the engine mails it only once confirmed. */
  account(user, choices) {
    byId("account-email").textContent = user.email;
    byId("account-confirm").hidden = !choices.account_confirmation || user.email_confirmed;
  }

  async sendAccountCode(button) {
    const outcome = byId("account-outcome");
    button.disabled = true;
    try {
      const sent = await this.session.request("POST", "/api/users/me/email/confirm/send");
      outcome.textContent = sent.state === "delivered" ? "Sent: check your mail." : `${sent.state}: ${sent.reason || ""}`;
      outcome.dataset.state = sent.state;
    } catch (error) {
      outcome.textContent = error.message;
      outcome.dataset.state = "failed";
    } finally {
      button.disabled = false;
    }
  }

  async confirmAccount(form) {
    const outcome = byId("account-outcome");
    try {
      await this.session.request("POST", "/api/users/me/email/confirm", { code: values(form).code });
      byId("account-confirm").hidden = true;
      form.reset();
      outcome.textContent = "";
    } catch (error) {
      outcome.textContent = error.message;
      outcome.dataset.state = "failed";
    }
  }

  forget() {
    byId("account-confirm").hidden = true;
    byId("account-outcome").textContent = "";
    fill(this.list);
    this.form.reset();
    this.error.textContent = "";
  }

  placeholder() {
    const kind = this.form.elements.kind.value;
    this.form.elements.target.placeholder = PLACEHOLDERS[kind] || `a ${kind} URL`;
  }

  async load() {
    let answer;
    try {
      answer = await this.session.get("/api/destinations");
    } catch (error) {
      this.dispatchEvent(new CustomEvent("error", { detail: error }));
      return;
    }
    const items = answer.results || answer;
    fill(this.list, ...items.map((d) => this.item(d)));
    if (!items.length) fill(this.list, el("li", { class: "note" }, "None yet: alerts go to your account only."));
  }

  item(d) {
    const outcome = el("span", { class: "outcome", "aria-live": "polite" });
    const state = d.disabled_reason
      ? el("small", { class: "problem" }, ` disabled: ${d.disabled_reason}`)
      : d.confirmed
        ? null
        : el("small", { class: "problem" }, " waiting for the code mailed to it");
    const item = el(
      "li",
      { dataset: { id: d.id, kind: d.kind } },
      el("strong", { class: "name" }, d.name || d.kind),
      " ",
      el("span", { class: "kind" }, d.kind),
      " ",
      el("code", { class: "target" }, d.target),
      state,
      el("small", {}, ` added ${when(d.created_at)}`),
      " ",
      el("button", { type: "button", class: "quiet", "data-act": "test" }, "Send a test"),
      el("button", { type: "button", class: "danger", "data-act": "delete" }, "Delete"),
      " ",
      outcome
    );
    if (!d.confirmed && !d.disabled_reason) item.append(this.confirmForm(d));
    item.addEventListener("click", async (event) => {
      const button = event.target.closest("button[data-act]");
      if (!button) return;
      button.disabled = true;
      try {
        if (button.dataset.act === "test") {
          const result = await this.session.request("POST", `/api/destinations/${d.id}/test`);
          outcome.textContent = result.reason ? `${result.state}: ${result.reason}` : result.state;
          outcome.dataset.state = result.state;
        } else {
          await this.session.request("DELETE", `/api/destinations/${d.id}`);
          await this.load();
          this.dispatchEvent(new CustomEvent("changed"));
        }
      } catch (error) {
        outcome.textContent = error.message;
        outcome.dataset.state = "failed";
      } finally {
        button.disabled = false;
      }
    });
    return item;
  }

  confirmForm(d) {
    const form = el(
      "form",
      { class: "row confirm" },
      el("input", { name: "code", required: true, maxlength: 64, placeholder: "code from the mail", "aria-label": "confirmation code" }),
      el("button", { type: "submit" }, "Confirm")
    );
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      busy(form, async () => {
        try {
          await this.session.request("POST", `/api/destinations/${d.id}/confirm`, { code: values(form).code });
          await this.load();
        } catch (error) {
          this.dispatchEvent(new CustomEvent("error", { detail: error }));
        }
      });
    });
    return form;
  }

  async add() {
    this.error.textContent = "";
    const data = values(this.form);
    const body = { kind: data.kind, target: data.target };
    if (data.name) body.name = data.name;
    try {
      const made = await this.session.request("POST", "/api/destinations", body);
      this.form.elements.target.value = "";
      this.form.elements.name.value = "";
      if (made.secret) {
        byId("secret").textContent = made.secret;
        byId("secret-box").hidden = false;
      }
      await this.load();
      this.dispatchEvent(new CustomEvent("changed"));
    } catch (error) {
      this.error.textContent = error.field ? `${error.field}: ${error.message}` : error.message;
    }
  }

  async copy() {
    const text = byId("secret").textContent;
    try {
      await navigator.clipboard.writeText(text);
      byId("copy-secret").textContent = "Copied";
    } catch {
      // No clipboard (an insecure origin, a refused permission): select it for a manual copy.
      const range = document.createRange();
      range.selectNodeContents(byId("secret"));
      window.getSelection().removeAllRanges();
      window.getSelection().addRange(range);
      byId("copy-secret").textContent = "Selected: copy it";
    }
  }
}
