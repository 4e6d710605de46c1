// Streams: search by name prefix and category; one stream's events, a page at a time; one event.

import { ApiError, api, streamPath } from "./api.js";
import { categoryOf, clear, formatNumber, h, links, liveStatus, renderJson, timeEl, withQuery } from "./dom.js";

const PAGE = 20;
const LIST_PAGE = 50;

// -- search -----------------------------------------------------------------------------------

export async function mountSearch(container, { session, query }) {
  const prefix = h("input", {
    id: "stream-prefix",
    name: "prefix",
    type: "search",
    value: query.get("prefix") || "",
    autocomplete: "off",
    spellcheck: "false",
    placeholder: "order-",
    "aria-describedby": "search-help",
  });
  const category = h("input", {
    id: "stream-category",
    name: "category",
    type: "text",
    value: query.get("category") || "",
    list: "known-categories",
    autocomplete: "off",
    spellcheck: "false",
    placeholder: "any",
  });
  const form = h(
    "form",
    { class: "search", role: "search", "aria-label": "Find streams" },
    h("div", { class: "field" }, h("label", { for: "stream-prefix" }, "Name starts with"), prefix),
    h("div", { class: "field" }, h("label", { for: "stream-category" }, "Category"), category),
    h(
      "datalist",
      { id: "known-categories" },
      session.views.map((v) => h("option", { value: v.category })),
    ),
    h("button", { type: "submit", class: "primary" }, "Search"),
  );
  const status = liveStatus();
  const results = h("div", { class: "results" });
  container.append(
    h(
      "section",
      { "aria-labelledby": "streams-title" },
      h("h1", { id: "streams-title" }, "Streams"),
      h(
        "p",
        { id: "search-help", class: "muted" },
        "Streams are listed in name order. A category is the part of a name before its first “-”.",
      ),
      form,
      status,
      results,
    ),
  );

  let controller = null;
  async function search(after, table) {
    controller?.abort();
    controller = new AbortController();
    const q = { prefix: prefix.value.trim(), category: category.value.trim(), after, limit: LIST_PAGE };
    const page = await api(withQuery("/v1/streams", q), { signal: controller.signal });
    if (!table) {
      clear(results);
      if (!page.streams.length) {
        status.textContent = "No stream matches.";
        return;
      }
      table = streamTable(q);
      results.append(table);
    }
    const body = table.querySelector("tbody");
    for (const stream of page.streams) {
      body.append(
        h(
          "tr",
          {},
          h("th", { scope: "row" }, h("a", { href: links.stream(stream.stream) }, stream.stream)),
          h("td", { class: "num" }, formatNumber(stream.version)),
          h("td", { class: "num wide-only" }, formatNumber(stream.last_position)),
          h("td", {}, timeEl(stream.last_recorded_at)),
        ),
      );
    }
    const count = body.rows.length;
    status.textContent = `${count} stream${count === 1 ? "" : "s"}${page.next ? " so far" : ""}.`;
    results.querySelector(".more")?.remove();
    if (page.next) {
      const more = h("button", { type: "button", class: "more" }, "Show more streams");
      more.addEventListener("click", async () => {
        await run(() => search(page.next, table));
        body.rows[count]?.querySelector("a")?.focus();
      });
      results.append(more);
    }
  }

  async function run(action) {
    try {
      await action();
    } catch (error) {
      if (error.name === "AbortError") return;
      status.textContent = "";
      clear(results).append(h("p", { class: "error", role: "alert" }, `Could not list streams: ${error.message}`));
    }
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    // Keep the search in the URL (to share or go back to) without leaving the form.
    history.pushState(null, "", links.streams({ prefix: prefix.value.trim(), category: category.value.trim() }));
    run(() => search("", null));
  });
  await run(() => search("", null));
  return () => controller?.abort();
}

function streamTable(q) {
  const what = [q.prefix ? `names starting with “${q.prefix}”` : null, q.category ? `category “${q.category}”` : null]
    .filter(Boolean)
    .join(", ");
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { class: "data" },
      h("caption", {}, what ? `Streams: ${what}` : "All streams"),
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          h("th", { scope: "col" }, "Stream"),
          h("th", { scope: "col", class: "num" }, "Version"),
          h("th", { scope: "col", class: "num wide-only" }, "Last position"),
          h("th", { scope: "col" }, "Last event"),
        ),
      ),
      h("tbody"),
    ),
  );
}

// -- one stream ---------------------------------------------------------------------------------

export async function mountStream(container, { session, args, query }) {
  const [name, selectedText] = args;
  if (!name) {
    location.hash = links.streams();
    return null;
  }
  const selected = selectedText ? Number.parseInt(selectedText, 10) : null;
  let from = Number.parseInt(query.get("from") || "", 10);
  if (!(from >= 1)) from = selected ? Math.floor((selected - 1) / PAGE) * PAGE + 1 : 1;
  const view = session.views.find((v) => name.startsWith(`${v.category}-`) && name.length > v.category.length + 1);

  const header = h(
    "div",
    { class: "title-row" },
    h(
      "nav",
      { "aria-label": "Breadcrumb", class: "breadcrumb" },
      h("a", { href: links.streams() }, "Streams"),
      h("span", { "aria-hidden": "true" }, " › "),
    ),
    h("h1", { class: "stream-name" }, name),
  );
  container.append(header);

  let page;
  try {
    page = await api(withQuery(streamPath("/v1/streams", name), { from_version: from, limit: PAGE }));
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) {
      container.append(h("p", { class: "muted", role: "status" }, "This stream has no events."));
      return null;
    }
    throw error;
  }
  const last = page.events.length ? page.events[page.events.length - 1].version : from - 1;
  container.append(
    h(
      "p",
      { class: "stream-meta" },
      h("span", {}, `Version ${formatNumber(page.version)} · category `),
      h("a", { href: links.streams({ category: categoryOf(name) }) }, categoryOf(name)),
      view ? h("a", { class: "button", href: links.travel(name, selected || page.version) }, "Time travel") : null,
      h("a", { class: "button ghost", href: links.tail(categoryOf(name)) }, "Follow category live"),
    ),
  );

  const rows = page.events.map((event) => {
    const href = links.stream(name, event.version);
    const current = event.version === selected;
    const row = h(
      "tr",
      { class: current ? "selected" : null, "aria-current": current ? "true" : null },
      h("th", { scope: "row", class: "num" }, h("a", { href, "aria-label": `Open event ${event.version}, ${event.type}` }, String(event.version))),
      h("td", {}, h("span", { class: "event-type" }, event.type)),
      h("td", {}, timeEl(event.recorded_at)),
      h("td", { class: "num wide-only" }, formatNumber(event.position)),
    );
    // The whole row opens the event for a mouse; the link in its first cell is for the keyboard.
    row.addEventListener("click", (e) => {
      if (e.target.closest("a")) return;
      location.hash = href;
    });
    return row;
  });
  const pager = h(
    "nav",
    { class: "pager", "aria-label": "Pages of events" },
    from > 1
      ? h("a", { class: "button ghost", href: links.streamPage(name, Math.max(1, from - PAGE)), rel: "prev" }, "← Earlier events")
      : null,
    last < page.version
      ? h("a", { class: "button ghost", href: links.streamPage(name, last + 1), rel: "next" }, "Later events →")
      : null,
    last < page.version - PAGE
      ? h("a", { class: "button ghost", href: links.streamPage(name, Math.max(1, page.version - PAGE + 1)) }, "Newest")
      : null,
  );
  const table = h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { class: "data events clickable" },
      h("caption", {}, `Events ${from}–${last} of ${page.version}`),
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          h("th", { scope: "col", class: "num" }, "Version"),
          h("th", { scope: "col" }, "Type"),
          h("th", { scope: "col" }, "Recorded"),
          h("th", { scope: "col", class: "num wide-only" }, "Position"),
        ),
      ),
      h("tbody", {}, rows),
    ),
  );
  const layout = h("div", { class: selected ? "split" : "single" }, h("div", {}, table, pager));
  container.append(layout);

  if (selected) {
    const event = page.events.find((e) => e.version === selected);
    layout.append(event ? eventDetail(name, event, view) : h("p", { class: "error", role: "alert" }, `No event ${selected} in this stream.`));
  }
  return null;
}

function eventDetail(name, event, view) {
  return h(
    "section",
    { class: "card detail", "aria-labelledby": "event-title" },
    h("h2", { id: "event-title", "data-autofocus": true }, `Event ${event.version}: `, h("span", { class: "event-type" }, event.type)),
    h(
      "dl",
      { class: "facts" },
      h("dt", {}, "Id"),
      h("dd", { class: "mono" }, event.id),
      h("dt", {}, "Position"),
      h("dd", { class: "mono" }, String(event.position)),
      h("dt", {}, "Recorded"),
      h("dd", {}, timeEl(event.recorded_at)),
    ),
    h("h3", {}, "Data"),
    renderJson(event.data, { label: `Data of event ${event.version}` }),
    h("h3", {}, "Metadata"),
    renderJson(event.metadata, { label: `Metadata of event ${event.version}` }),
    view ? h("p", {}, h("a", { href: links.travel(name, event.version) }, `See the ${view.title.toLowerCase()} after this event`)) : null,
    committedWith(event),
  );
}

// A position is the transaction's block of 4,096 plus the event's index in it (docs: Concepts,
// "Several streams in one append"), so the events of one transaction share a block: the other
// streams of a multi-stream append, or of appends group commit sent together.
const BLOCK = 4096;

function committedWith(event) {
  const section = h("section", { "aria-labelledby": "committed-title" }, h("h3", { id: "committed-title" }, "Committed with it"));
  const status = h("p", { class: "muted", role: "status" }, "Looking…");
  section.append(status);
  // Math.floor, not bitwise operators: positions go past 2^31, and JavaScript's bit operations are 32-bit.
  const start = Math.floor(event.position / BLOCK) * BLOCK;
  api(withQuery("/v1/all", { after: Math.max(0, start - 1), limit: 1000 }))
    .then((page) => {
      const others = page.events.filter((e) => e.position < start + BLOCK && e.id !== event.id);
      if (!others.length) {
        status.textContent = "No other event was committed in the same transaction.";
        return;
      }
      status.textContent = `${others.length} other event${others.length === 1 ? "" : "s"} committed in the same transaction:`;
      section.append(
        h(
          "ul",
          { class: "committed", "aria-label": "Events committed with this one" },
          others.map((e) =>
            h("li", {}, h("a", { href: links.stream(e.stream, e.version) }, `${e.stream} #${e.version}`), " ", h("span", { class: "event-type" }, e.type)),
          ),
        ),
      );
    })
    .catch((error) => {
      status.textContent = `Could not read the global log: ${error.message}`;
    });
  return section;
}
