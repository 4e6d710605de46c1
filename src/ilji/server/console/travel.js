// Time travel: a stream of a registered domain, as the state after each of its events.
//
// The server folds the stream with the domain's own evolve (GET /v1/states/NAME) and says what
// each event changed; this screen moves through the versions with a slider, buttons or the
// list, and highlights those changes in the state.

import { ApiError, api, streamPath } from "./api.js";
import { add, clear, h, links, pathText, renderJson, shortJson, timeEl, withQuery } from "./dom.js";

const PAGE = 200;

function changeItem(change) {
  const where = h("code", {}, pathText(change.path));
  if (change.kind === "added") {
    return h("li", { class: "chg-added" }, h("span", { class: "sign", "aria-hidden": "true" }, "+"), "Added ", where, " = ", h("code", {}, shortJson(change.after)));
  }
  if (change.kind === "removed") {
    return h("li", { class: "chg-removed" }, h("span", { class: "sign", "aria-hidden": "true" }, "−"), "Removed ", where, " (was ", h("code", {}, shortJson(change.before)), ")");
  }
  return h(
    "li",
    { class: "chg-changed" },
    h("span", { class: "sign", "aria-hidden": "true" }, "~"),
    "Changed ",
    where,
    ": ",
    h("code", {}, shortJson(change.before)),
    " → ",
    h("code", {}, shortJson(change.after)),
  );
}

export async function mount(container, { args, query }) {
  const [name] = args;
  const pages = new Map();
  const load = async (from) => {
    if (!pages.has(from)) {
      pages.set(from, api(withQuery(streamPath("/v1/states", name), { from_version: from, limit: PAGE })));
    }
    try {
      return await pages.get(from);
    } catch (error) {
      pages.delete(from);
      throw error;
    }
  };

  container.append(
    h(
      "div",
      { class: "title-row" },
      h(
        "nav",
        { "aria-label": "Breadcrumb", class: "breadcrumb" },
        h("a", { href: links.streams() }, "Streams"),
        h("span", { "aria-hidden": "true" }, " › "),
        h("a", { href: links.stream(name) }, name),
        h("span", { "aria-hidden": "true" }, " › "),
      ),
      h("h1", {}, "Time travel"),
    ),
  );

  let first;
  try {
    first = await load(1);
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) {
      container.append(h("p", { class: "error", role: "alert" }, error.message));
      return null;
    }
    throw error;
  }
  let total = first.version;
  const wanted = Number.parseInt(query.get("v") || "", 10);
  let version = Number.isFinite(wanted) ? Math.min(Math.max(wanted, 0), total) : total;

  const slider = h("input", {
    id: "version-slider",
    type: "range",
    min: "0",
    max: String(total),
    step: "1",
    value: String(version),
    "aria-describedby": "version-output",
  });
  const output = h("output", { id: "version-output", for: "version-slider", "aria-live": "polite" });
  const button = (label, text, onclick) => h("button", { type: "button", class: "ghost", "aria-label": label, onclick }, text);
  const controls = h(
    "div",
    { class: "travel-controls" },
    button("First version", "« First", () => go(0)),
    button("Previous version", "◀ Previous", () => go(version - 1)),
    h("div", { class: "slider" }, h("label", { for: "version-slider" }, "Version"), slider, output),
    button("Next version", "Next ▶", () => go(version + 1)),
    button("Latest version", "Latest »", () => go(total)),
  );
  slider.addEventListener("input", () => go(Number(slider.value), { fromSlider: true }));

  const list = h("ol", { class: "versions", "aria-label": "Versions" });
  const listBox = h("nav", { class: "card versions-card", "aria-label": "Events of this stream" }, h("h2", {}, "Events"), list);
  const panel = h("section", { class: "card state-panel", "aria-live": "off" });
  container.append(
    h("p", { class: "muted" }, `${first.title}: each version is the ${first.state_type} after one more event, folded by the domain's own evolve function.`),
    controls,
    h("div", { class: "travel" }, listBox, panel),
  );

  function fillList(entries) {
    add(
      clear(list),
      h("li", {}, h("a", { href: links.travel(name, 0), "data-version": "0" }, h("span", { class: "v" }, "0"), " Initial state")),
      entries.map((s) =>
        h(
          "li",
          {},
          h(
            "a",
            { href: links.travel(name, s.event.version), "data-version": String(s.event.version) },
            h("span", { class: "v" }, String(s.event.version)),
            " ",
            h("span", { class: "event-type" }, s.event.type),
          ),
        ),
      ),
    );
    for (const link of list.querySelectorAll("a")) {
      link.addEventListener("click", (event) => {
        event.preventDefault();
        go(Number(link.dataset.version));
      });
    }
  }

  let shownPage = null;
  let ticket = 0;
  async function show() {
    const mine = ++ticket;
    const from = version === 0 ? 1 : Math.floor((version - 1) / PAGE) * PAGE + 1;
    let page;
    try {
      page = await load(from);
    } catch (error) {
      clear(panel).append(h("p", { class: "error", role: "alert" }, `Could not load the states: ${error.message}`));
      return;
    }
    if (mine !== ticket) return; // a later move won
    if (page.version > total) {
      total = page.version;
      slider.max = String(total);
    }
    if (shownPage !== from) {
      fillList(page.states);
      shownPage = from;
    }
    for (const link of list.querySelectorAll("a")) {
      if (Number(link.dataset.version) === version) link.setAttribute("aria-current", "step");
      else link.removeAttribute("aria-current");
    }
    list.querySelector("[aria-current]")?.scrollIntoView({ block: "nearest" });
    slider.value = String(version);
    output.textContent = `${version} of ${total}`;
    clear(panel);
    if (version === 0) {
      add(
        panel,
        h("h2", {}, "Initial state"),
        h("p", { class: "muted" }, "Before any event: what the domain's initial_state() returns."),
        renderJson(page.before, { label: "Initial state" }),
      );
      return;
    }
    const step = page.states[version - from];
    if (!step) {
      panel.append(h("p", { class: "error", role: "alert" }, `Version ${version} is not in this stream.`));
      return;
    }
    const changes = step.changes;
    add(
      panel,
      h("h2", { id: "state-title" }, `State after version ${version}`),
      h(
        "p",
        { class: "event-line" },
        h("span", { class: "event-type" }, step.event.type),
        " recorded ",
        timeEl(step.event.recorded_at),
        " · ",
        h("a", { href: links.stream(name, version) }, "open the event"),
      ),
      step.error ? h("p", { class: "error", role: "alert" }, `This event could not be applied: ${step.error}`) : null,
      h("h3", { id: "changes-title" }, "What this event changed"),
      changes.length
        ? h("ul", { class: "changes", "aria-labelledby": "changes-title" }, changes.map(changeItem))
        : h("p", { class: "muted" }, "Nothing in the state."),
      h("h3", {}, "The state"),
      renderJson(step.state, { changes, label: `State after version ${version}` }),
      h("details", {}, h("summary", {}, "The event's data"), renderJson(step.event.data, { label: "Event data" })),
    );
  }

  function go(target, { fromSlider = false } = {}) {
    const next = Math.min(Math.max(target, 0), total);
    if (next === version && !fromSlider) return;
    version = next;
    // Keep the URL in step without a new screen (replaceState fires no hashchange).
    history.replaceState(null, "", links.travel(name, version));
    show();
  }

  await show();
  return () => {
    ticket++;
  };
}
