// Toasts: short notes in a corner, seen wherever the person is on the page. Text only.

import { el } from "./dom.js";

const SHOW_MS = 8000;

export function toast(container, title, body = "", kind = "info") {
  const note = el(
    "div",
    { class: `toast ${kind}`, role: kind === "error" ? "alert" : "status" },
    el("strong", {}, title),
    body ? el("p", {}, body) : null,
    el("button", { type: "button", class: "quiet close", "aria-label": "dismiss" }, "×")
  );
  note.querySelector("button").addEventListener("click", () => note.remove());
  container.prepend(note);
  while (container.children.length > 5) container.lastElementChild.remove();
  setTimeout(() => note.remove(), SHOW_MS);
  return note;
}
