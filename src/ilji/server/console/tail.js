// Live tail: new events of the global log or of one category, as they are appended (SSE).
//
// Pausing freezes the table, not the feed: events keep arriving and wait in a buffer, so
// resuming shows everything that happened meanwhile. After a dropped connection the feed
// resumes from the last position seen (Last-Event-ID), so no event is missed or repeated.

import { ApiError, api, sse, streamPath } from "./api.js";
import { formatNumber, h, links, liveStatus, timeEl, withQuery } from "./dom.js";

const MAX_ROWS = 200;
const MAX_BUFFER = 2000;

export async function mount(container, { query }) {
  const chosen = (query.get("category") || "").trim();
  const category = h("input", {
    id: "tail-category",
    name: "category",
    type: "text",
    value: chosen,
    placeholder: "all",
    autocomplete: "off",
    spellcheck: "false",
    "aria-describedby": "tail-help",
  });
  const form = h(
    "form",
    { class: "search", "aria-label": "Choose the feed" },
    h("div", { class: "field" }, h("label", { for: "tail-category" }, "Category"), category),
    h("button", { type: "submit", class: "primary" }, "Follow"),
  );
  const pause = h("button", { type: "button", class: "ghost", "aria-pressed": "false", id: "tail-pause" }, "Pause");
  const status = liveStatus("Connecting…");
  status.id = "tail-status";
  const body = h("tbody");
  const empty = h("p", { class: "muted empty" }, "Waiting for new events… append one and it appears here.");
  const table = h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { class: "data tail" },
      h("caption", {}, chosen ? `New events of category “${chosen}”, newest first` : "New events of the global log, newest first"),
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          h("th", { scope: "col", class: "num wide-only" }, "Position"),
          h("th", { scope: "col" }, "Stream"),
          h("th", { scope: "col", class: "num" }, "Version"),
          h("th", { scope: "col" }, "Type"),
          h("th", { scope: "col" }, "Recorded"),
        ),
      ),
      body,
    ),
  );
  container.append(
    h(
      "section",
      { "aria-labelledby": "tail-title" },
      h("h1", { id: "tail-title" }, "Live tail"),
      h("p", { id: "tail-help", class: "muted" }, "Leave the category empty to follow the whole log."),
      form,
      h("div", { class: "tail-bar" }, status, pause),
      empty,
      table,
    ),
  );

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    location.hash = links.tail(category.value.trim());
  });

  let paused = false;
  let received = 0;
  const buffer = [];
  let dropped = 0;
  const controller = new AbortController();

  const feedName = chosen ? `category “${chosen}”` : "the global log";
  function describe(state) {
    if (state) {
      status.textContent = state;
    } else if (paused) {
      status.textContent = `Paused: ${formatNumber(buffer.length + dropped)} new event${buffer.length + dropped === 1 ? "" : "s"} waiting.`;
    } else {
      status.textContent = `Live: following ${feedName}. ${formatNumber(received)} event${received === 1 ? "" : "s"} so far.`;
    }
  }

  // The status line is a polite live region: under a busy feed, say the count at most twice a
  // second instead of once per event.
  let pending = null;
  function describeSoon() {
    if (pending === null) pending = setTimeout(() => ((pending = null), describe()), 500);
  }

  function show(events) {
    if (!events.length) return;
    empty.hidden = true;
    for (const event of events) {
      body.prepend(
        h(
          "tr",
          { class: "fresh" },
          h("td", { class: "num wide-only" }, formatNumber(event.position)),
          h("th", { scope: "row" }, h("a", { href: links.stream(event.stream, event.version) }, event.stream)),
          h("td", { class: "num" }, String(event.version)),
          h("td", {}, h("span", { class: "event-type" }, event.type)),
          h("td", {}, timeEl(event.recorded_at)),
        ),
      );
    }
    while (body.rows.length > MAX_ROWS) body.lastElementChild.remove();
  }

  pause.addEventListener("click", () => {
    paused = !paused;
    pause.setAttribute("aria-pressed", String(paused));
    pause.textContent = paused ? "Resume" : "Pause";
    if (!paused) {
      show(buffer.splice(0));
      if (dropped) status.textContent = `${dropped} events arrived while paused and are not shown.`;
      dropped = 0;
    }
    describe(dropped ? status.textContent : null);
  });

  async function follow() {
    let after;
    try {
      after = (await api("/v1/stats?minutes=5", { signal: controller.signal })).follow_from;
    } catch (error) {
      if (error.name !== "AbortError") describe(`Could not start: ${error.message}`);
      return;
    }
    const url = chosen ? withQuery(streamPath("/v1/categories", chosen), { after }) : withQuery("/v1/all", { after });
    let lastId = null;
    let delay = 500;
    while (!controller.signal.aborted) {
      try {
        describe(lastId === null && received === 0 ? `Live: following ${feedName}.` : null);
        for await (const message of sse(url, { signal: controller.signal, lastEventId: lastId })) {
          delay = 500;
          lastId = message.id;
          const event = JSON.parse(message.data);
          received++;
          if (paused) {
            buffer.push(event);
            if (buffer.length > MAX_BUFFER) {
              buffer.shift();
              dropped++;
            }
          } else {
            show([event]);
          }
          describeSoon();
        }
      } catch (error) {
        if (controller.signal.aborted) return;
        if (error instanceof ApiError && error.status !== 503) {
          describe(`The server refused this feed: ${error.message}`);
          return;
        }
      }
      if (controller.signal.aborted) return;
      describe(`Connection lost; reconnecting in ${Math.round(delay / 1000) || 1} s…`);
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(delay * 2, 10000);
    }
  }

  follow();
  return () => {
    clearTimeout(pending);
    controller.abort();
  };
}
