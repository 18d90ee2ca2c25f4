// Building the page from data. Every piece of text goes in as text (textContent), never as
// markup, so a name like <img src=x onerror=alert(1)> shows literally; the page's CSP is the
// second wall, not the first.

/** An element: `el("td", {class: "num"}, "text", child, ...)`. Children are nodes or text. */
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === false || value === null || value === undefined) continue;
    if (name === "class") node.className = value;
    else if (name === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** The element with this id (it must exist: a missing one is a bug in the page). */
export function byId(id) {
  const node = document.getElementById(id);
  if (!node) throw new Error(`no element #${id}`);
  return node;
}

/** Replace every child of `node` with `children`. */
export function fill(node, ...children) {
  node.replaceChildren(...children.filter((c) => c !== null && c !== undefined));
}

/** The values of a form's named fields, trimmed. */
export function values(form) {
  const out = {};
  for (const [name, value] of new FormData(form).entries()) {
    out[name] = typeof value === "string" ? value.trim() : value;
  }
  return out;
}

/** Disable a form's buttons while `work` runs, so a double click sends one request. */
export async function busy(form, work) {
  const buttons = [...form.querySelectorAll("button")];
  buttons.forEach((b) => (b.disabled = true));
  try {
    return await work();
  } finally {
    buttons.forEach((b) => (b.disabled = false));
  }
}

/** A decimal string with thousands separators, every digit kept ("70000.10" -> "70,000.10"). */
export function decimal(text) {
  if (text === null || text === undefined) return "";
  const [whole, fraction] = String(text).split(".");
  const grouped = whole.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  return fraction === undefined ? grouped : `${grouped}.${fraction}`;
}

/** Compare two non-negative decimal strings exactly: -1, 0 or 1 (no float ever decides). */
export function compareDecimal(a, b) {
  const [aw, af = ""] = String(a).replace(/^0+(?=\d)/, "").split(".");
  const [bw, bf = ""] = String(b).replace(/^0+(?=\d)/, "").split(".");
  if (aw.length !== bw.length) return aw.length < bw.length ? -1 : 1;
  if (aw !== bw) return aw < bw ? -1 : 1;
  const width = Math.max(af.length, bf.length);
  const x = af.padEnd(width, "0");
  const y = bf.padEnd(width, "0");
  return x === y ? 0 : x < y ? -1 : 1;
}

/** A time for people: local date and time to the second. */
export function when(value) {
  if (!value) return "";
  const date = typeof value === "number" ? new Date(value) : new Date(String(value));
  return Number.isNaN(date.getTime()) ? "" : date.toLocaleString();
}
