// Projections: each one's state, checkpoint, lag, speed, owners and parked events, refreshed
// every second; pause, resume, rebuild and replay for admin tokens (the /v1/projections routes).
//
// Cards are built once and then updated in place, so a refresh never takes the keyboard focus
// away from a button.

import { api } from "./api.js";
import { clear, formatNumber, formatSeconds, h, liveStatus, timeEl } from "./dom.js";

const REFRESH_MS = 1000;
const STATE_TEXT = {
  running: "running",
  catching_up: "catching up",
  paused: "paused",
  stopped: "stopped (no worker)",
  failed: "failed",
  retired: "retired",
};

const path = (name, action = "") => `/v1/projections/${encodeURIComponent(name)}${action}`;

function fact(label, field) {
  const value = h("dd", { "data-field": field }, "—");
  return { nodes: [h("dt", {}, label), value], value };
}

function buildCard(name, session, refresh) {
  const titleId = `projection-${name.replace(/[^A-Za-z0-9_-]/g, "_")}`;
  const badge = h("span", { class: "badge", "data-field": "state" });
  const facts = {
    checkpoint: fact("Checkpoint", "checkpoint"),
    behind: fact("Events behind", "events_behind"),
    lag: fact("Lag", "lag_seconds"),
    rate: fact("Events/s", "events_per_second"),
    owners: fact("Owner", "owners"),
    parked: fact("Parked", "parked"),
    version: fact("Version", "version"),
    reads: fact("Reads", "reads"),
  };
  const status = liveStatus();
  const partitions = h("div", { class: "partitions" });
  const parkedList = h("div", { class: "parked-list" });
  const parkedDetails = h("details", { class: "parked" }, h("summary", {}, "Parked events"), parkedList);
  parkedDetails.addEventListener("toggle", () => {
    if (parkedDetails.open) loadParked(name, parkedList);
  });

  const actions = h("div", { class: "actions" });
  const act = async (label, action, done) => {
    status.textContent = `${label}…`;
    try {
      const result = await api(path(name, action), { method: "POST", body: action.endsWith("replay") ? {} : undefined });
      status.textContent = done(result);
      await refresh();
      if (parkedDetails.open) loadParked(name, parkedList);
    } catch (error) {
      status.textContent = `${label} failed: ${error.message}`;
    }
  };
  const pauseButton = h("button", { type: "button" }, "Pause");
  pauseButton.addEventListener("click", () => {
    if (pauseButton.dataset.paused === "true") {
      act("Resuming", "/resume", () => "Resumed: workers take it up within a third of their lease time.");
    } else {
      act("Pausing", "/pause", () => "Paused: its workers let go after their current batch.");
    }
  });
  const rebuildButton = h("button", { type: "button", class: "ghost" }, "Rebuild");
  let confirmTimer = null;
  rebuildButton.addEventListener("click", () => {
    if (rebuildButton.dataset.confirm !== "true") {
      // A rebuild replays the whole log: ask once more instead of a modal dialog.
      rebuildButton.dataset.confirm = "true";
      rebuildButton.textContent = "Confirm rebuild";
      status.textContent = "Rebuilding replays the whole log into a new version. Press again to confirm.";
      confirmTimer = setTimeout(() => {
        rebuildButton.dataset.confirm = "false";
        rebuildButton.textContent = "Rebuild";
      }, 6000);
      return;
    }
    clearTimeout(confirmTimer);
    rebuildButton.dataset.confirm = "false";
    rebuildButton.textContent = "Rebuild";
    act("Requesting a rebuild", "/rebuild", (r) => `Rebuild requested: version ${r.version} is being built beside the serving one.`);
  });
  const replayButton = h("button", { type: "button", class: "ghost" }, "Replay parked events");
  replayButton.addEventListener("click", () =>
    act("Requesting replays", "/parked/replay", (r) => `${r.requested} parked event${r.requested === 1 ? "" : "s"} will be applied again.`),
  );
  if (session.role === "admin") {
    actions.append(pauseButton, rebuildButton, replayButton);
  } else {
    actions.append(h("p", { class: "muted small" }, "Pausing, resuming, rebuilding and replaying need an admin token."));
  }

  const el = h(
    "article",
    { class: "card projection", "data-projection": name, "aria-labelledby": titleId },
    h("header", { class: "projection-head" }, h("h2", { id: titleId }, name), badge),
    h("dl", { class: "facts grid" }, Object.values(facts).map((f) => f.nodes)),
    partitions,
    actions,
    status,
    parkedDetails,
  );

  function update(p) {
    el.dataset.state = p.state;
    badge.textContent = STATE_TEXT[p.state] || p.state;
    badge.className = `badge state-${p.state}`;
    facts.checkpoint.value.textContent = formatNumber(p.checkpoint);
    const capped = p.partitions.some((x) => x.events_behind_capped);
    facts.behind.value.textContent = p.events_behind
      ? `${capped ? "≥ " : ""}${formatNumber(p.events_behind)}`
      : "0";
    facts.behind.value.classList.toggle("behind", p.events_behind > 0);
    facts.behind.value.title = p.events_behind ? "events this projection has still to read" : "caught up";
    facts.lag.value.textContent = p.events_behind ? formatSeconds(p.lag_seconds) : "caught up";
    facts.rate.value.textContent = p.events_per_second ? p.events_per_second.toFixed(1) : "0";
    facts.owners.value.textContent = p.owners.length ? p.owners.join(", ") : "none";
    facts.parked.value.textContent = formatNumber(p.parked);
    facts.parked.value.classList.toggle("behind", p.parked > 0);
    facts.version.value.textContent = p.requested_version
      ? `${p.active_version} (building ${p.requested_version})`
      : String(p.active_version);
    facts.reads.value.textContent = `${p.category ? `category ${p.category}` : "the whole log"}${p.types ? `; ${p.types.join(", ")}` : ""}`;
    pauseButton.dataset.paused = String(p.paused);
    pauseButton.textContent = p.paused ? "Resume" : "Pause";
    rebuildButton.disabled = p.requested_version !== null;
    replayButton.hidden = p.parked === 0;
    clear(partitions);
    const shown = [...p.partitions, ...p.rebuilding];
    if (shown.length > 1 || p.rebuilding.length) partitions.append(partitionTable(p, shown));
  }

  return { el, update };
}

function partitionTable(p, partitions) {
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { class: "data compact" },
      h("caption", {}, "Partitions"),
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          ["Version", "Partition", "State", "Checkpoint", "Behind", "Owner"].map((t) => h("th", { scope: "col" }, t)),
        ),
      ),
      h(
        "tbody",
        {},
        partitions.map((x) =>
          h(
            "tr",
            {},
            h("td", {}, `${x.version}${x.version === p.active_version ? "" : " (new)"}`),
            h("td", {}, `${x.partition + 1} of ${x.partitions}`),
            h("td", {}, STATE_TEXT[x.state] || x.state),
            h("td", { class: "num" }, formatNumber(x.checkpoint)),
            h("td", { class: "num" }, formatNumber(x.events_behind)),
            h("td", {}, x.owner || "none"),
          ),
        ),
      ),
    ),
  );
}

async function loadParked(name, target) {
  try {
    const result = await api(`${path(name, "/parked")}?include_replayed=true&limit=100`);
    clear(target);
    if (!result.events.length) {
      target.append(h("p", { class: "muted" }, "No parked events."));
      return;
    }
    target.append(
      h(
        "div",
        { class: "table-wrap" },
        h(
          "table",
          { class: "data compact" },
          h("caption", {}, "Events the projection gave up on"),
          h(
            "thead",
            {},
            h("tr", {}, ["Position", "Stream", "Type", "Attempts", "Error", "Parked", "Replay"].map((t) => h("th", { scope: "col" }, t))),
          ),
          h(
            "tbody",
            {},
            result.events.map((e) =>
              h(
                "tr",
                {},
                h("td", { class: "num" }, formatNumber(e.position)),
                h("td", {}, e.stream),
                h("td", {}, e.type),
                h("td", { class: "num" }, String(e.attempts)),
                h("td", { class: "mono" }, e.error),
                h("td", {}, timeEl(e.parked_at)),
                h("td", {}, e.replayed_at ? "replayed" : e.replay_requested_at ? "requested" : "—"),
              ),
            ),
          ),
        ),
      ),
    );
  } catch (error) {
    clear(target).append(h("p", { class: "error" }, `Could not load parked events: ${error.message}`));
  }
}

export async function mount(container, { session }) {
  const list = h("div", { class: "projections" });
  const status = liveStatus();
  container.append(
    h(
      "section",
      { "aria-labelledby": "projections-title" },
      h("h1", { id: "projections-title" }, "Projections"),
      h(
        "p",
        { class: "muted" },
        "Read models kept up to date by ilji worker processes. Events behind and lag count what the slowest serving partition has still to read.",
      ),
      status,
      list,
    ),
  );
  const cards = new Map();
  let timer = null;
  let stopped = false;

  async function refresh() {
    clearTimeout(timer);
    try {
      const { projections } = await api("/v1/projections");
      if (stopped) return;
      if (!projections.length) {
        status.textContent = "No projection is registered yet: start a worker (ilji worker -p module:projection).";
      } else {
        status.textContent = "";
      }
      const seen = new Set();
      for (const p of projections) {
        seen.add(p.name);
        let card = cards.get(p.name);
        if (!card) {
          card = buildCard(p.name, session, refresh);
          cards.set(p.name, card);
          list.append(card.el);
        }
        card.update(p);
      }
      for (const [name, card] of cards) {
        if (!seen.has(name)) {
          card.el.remove();
          cards.delete(name);
        }
      }
    } catch (error) {
      if (stopped) return;
      status.textContent = `Could not load the projections: ${error.message}`;
    }
    if (!stopped) timer = setTimeout(refresh, REFRESH_MS);
  }

  await refresh();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
