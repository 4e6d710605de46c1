// Small DOM helpers. Everything shown comes from events people wrote, so text always goes in
// as text nodes (never as HTML): a stream name or an event field cannot inject markup.

const SVG_NS = "http://www.w3.org/2000/svg";

function build(el, attrs, children) {
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      el.addEventListener(name.slice(2), value);
    } else if (name === "text") {
      el.textContent = value;
    } else if (value === true) {
      el.setAttribute(name, "");
    } else {
      el.setAttribute(name, String(value));
    }
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** An HTML element: h("a", {href: "#/x", class: "link"}, "text", otherNode). */
export function h(tag, attrs, ...children) {
  return build(document.createElement(tag), attrs, children);
}

/** An SVG element, same calling convention as h(). */
export function s(tag, attrs, ...children) {
  return build(document.createElementNS(SVG_NS, tag), attrs, children);
}

/** Append children like h() does: arrays flattened, null, undefined and false skipped. */
export function add(parent, ...children) {
  return build(parent, {}, children);
}

export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

const pad = (n, width = 2) => String(n).padStart(width, "0");

/** "2025-01-31 14:03:09" in the browser's time zone (the API's times are UTC). */
export function formatTime(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

export function formatClock(iso) {
  const d = new Date(iso);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/** A <time> element showing local time, with the exact UTC time as its datetime and title. */
export function timeEl(iso) {
  return h("time", { datetime: iso, title: iso }, formatTime(iso));
}

const numbers = new Intl.NumberFormat("en");
export function formatNumber(n) {
  return numbers.format(n);
}

export function formatSeconds(seconds) {
  if (!seconds) return "0 s";
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 120) return `${seconds.toFixed(1)} s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

// -- links ------------------------------------------------------------------------------------

const enc = encodeURIComponent;

export const links = {
  overview: () => "#/overview",
  streams: (query = {}) => withQuery("#/streams", query),
  stream: (name, version) => `#/stream/${enc(name)}${version ? `/${version}` : ""}`,
  streamPage: (name, from) => withQuery(`#/stream/${enc(name)}`, { from }),
  travel: (name, version) => withQuery(`#/travel/${enc(name)}`, { v: version }),
  tail: (category) => withQuery("#/tail", { category }),
  projections: () => "#/projections",
};

export function withQuery(base, query) {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) {
    if (v !== undefined && v !== null && v !== "") params.set(k, String(v));
  }
  const text = params.toString();
  return text ? `${base}?${text}` : base;
}

/** The category of a stream name: the part before the first "-". */
export function categoryOf(stream) {
  const dash = stream.indexOf("-");
  return dash < 0 ? stream : stream.slice(0, dash);
}

// -- JSON ------------------------------------------------------------------------------------

const pathKey = (path) => JSON.stringify(path);

function scalar(value) {
  if (value === null) return h("span", { class: "j-null" }, "null");
  switch (typeof value) {
    case "string":
      return h("span", { class: "j-str" }, JSON.stringify(value));
    case "number":
      return h("span", { class: "j-num" }, String(value));
    case "boolean":
      return h("span", { class: "j-bool" }, String(value));
    default:
      return h("span", {}, JSON.stringify(value));
  }
}

const isContainer = (v) => v !== null && typeof v === "object";

const MARKS = { added: "added", removed: "removed", changed: "changed" };

/**
 * A JSON value, pretty-printed one member per line. `changes` (from the states API: path,
 * kind, before, after) highlight what an event changed: added and changed members are marked,
 * and removed members are shown struck through where they were, with their old value.
 */
export function renderJson(value, { changes = [], label } = {}) {
  const byPath = new Map(changes.filter((c) => c.kind !== "removed").map((c) => [pathKey(c.path), c]));
  const removedIn = new Map();
  for (const c of changes.filter((c) => c.kind === "removed")) {
    const parent = pathKey(c.path.slice(0, -1));
    if (!removedIn.has(parent)) removedIn.set(parent, []);
    removedIn.get(parent).push(c);
  }
  const code = h("code");
  const line = (indent, parts, mark, title) => {
    code.append(
      h(
        "span",
        { class: mark ? `ln chg chg-${mark}` : "ln", title: title || undefined },
        h("span", { class: "indent" }, "  ".repeat(indent)),
        h("span", { class: "content" }, parts),
        "\n",
      ),
    );
  };
  const keyText = (key, inArray) => (inArray ? "" : [h("span", { class: "j-key" }, JSON.stringify(key)), ": "]);

  function emit(v, path, indent, key, inArray, comma, inherited) {
    const change = inherited ? null : byPath.get(pathKey(path));
    const mark = inherited || (change ? MARKS[change.kind] : null);
    const title = change ? `${change.kind} by this event` : undefined;
    const prefix = key === undefined ? "" : keyText(key, inArray);
    const tail = comma ? "," : "";
    if (!isContainer(v)) {
      const was =
        change && change.kind === "changed" && !isContainer(change.before)
          ? h("span", { class: "was" }, ` (was ${JSON.stringify(change.before)})`)
          : null;
      line(indent, [prefix, scalar(v), tail, was], mark, title);
      return;
    }
    const array = Array.isArray(v);
    const entries = array ? v.map((item, i) => [i, item]) : Object.entries(v);
    const removed = mark === "removed" ? [] : removedIn.get(pathKey(path)) || [];
    const [open, close] = array ? ["[", "]"] : ["{", "}"];
    if (!entries.length && !removed.length) {
      line(indent, [prefix, open + close, tail], mark, title);
      return;
    }
    line(indent, [prefix, open], mark, title);
    const total = entries.length + removed.length;
    // Inside a member that was added, removed or replaced as a whole, every line is part of it.
    entries.forEach(([k, item], i) => emit(item, [...path, k], indent + 1, k, array, i < total - 1, mark));
    removed.forEach((c, i) => {
      const k = c.path[c.path.length - 1];
      emit(c.before, c.path, indent + 1, k, array, entries.length + i < total - 1, "removed");
    });
    line(indent, [close, tail], mark);
  }

  emit(value, [], 0, undefined, false, false, null);
  return h("pre", { class: "json", tabindex: "0", "aria-label": label || "JSON" }, code);
}

/** "reservations.r1", "timeline[2].port": a change's path for people. */
export function pathText(path) {
  if (!path.length) return "(the whole state)";
  return path
    .map((p, i) => (typeof p === "number" ? `[${p}]` : i === 0 ? p : `.${p}`))
    .join("");
}

export function shortJson(value, max = 60) {
  const text = JSON.stringify(value);
  if (text === undefined) return "—";
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/** A status line whose changes screen readers announce politely. */
export function liveStatus(text = "") {
  return h("p", { class: "status", role: "status", "aria-live": "polite" }, text);
}

export function problemText(error) {
  if (!error) return "";
  return error.message || String(error);
}
