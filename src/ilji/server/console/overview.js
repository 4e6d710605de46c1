// Overview: how much the store holds and how fast it grows, refreshed every few seconds.

import { api } from "./api.js";
import { clear, formatClock, formatNumber, formatTime, h, links, s } from "./dom.js";

const REFRESH_MS = 5000;

function card(label, value, note, field) {
  return h(
    "div",
    { class: "stat", "data-field": field },
    h("dt", {}, label),
    h("dd", {}, h("span", { class: "stat-value" }, value), note ? h("span", { class: "stat-note" }, note) : null),
  );
}

function counted(n, exact) {
  return exact ? formatNumber(n) : `≈ ${formatNumber(n)}`;
}

/** The appends chart: one bar per bucket, drawn as inline SVG (no chart library). */
function chart(stats, available) {
  const buckets = stats.buckets;
  // Drawn at the width it gets on screen, so its text stays readable on a phone too.
  const width = Math.max(280, Math.min(1200, Math.floor(available || 600)));
  const height = 170;
  const left = 40;
  const bottom = 22;
  const top = 10;
  const plotW = width - left - 8;
  const plotH = height - top - bottom;
  const peak = Math.max(1, ...buckets.map((b) => b.events));
  const max = niceCeiling(peak);
  const slot = plotW / buckets.length;
  const completeSince = new Date(stats.complete_since).getTime();
  const total = buckets.reduce((sum, b) => sum + b.events, 0);
  const busiest = buckets.reduce((a, b) => (b.events > a.events ? b : a), buckets[0]);
  const unit = stats.bucket_seconds === 60 ? "minute" : `${stats.bucket_seconds} s`;
  const summary =
    `Events appended per ${unit} over the last ${stats.window_minutes} minutes: ${formatNumber(total)} in all` +
    (total ? `, at most ${formatNumber(busiest.events)} at ${formatClock(busiest.start)}.` : ".");

  const bars = buckets.map((b, i) => {
    const barH = (b.events / max) * plotH;
    const partial = new Date(b.start).getTime() < completeSince;
    return s(
      "rect",
      {
        x: (left + i * slot + 1).toFixed(1),
        y: (top + plotH - barH).toFixed(1),
        width: Math.max(1, slot - 2).toFixed(1),
        height: Math.max(b.events ? 1 : 0, barH).toFixed(1),
        class: partial ? "bar partial" : "bar",
      },
      s("title", {}, `${formatClock(b.start)}: ${formatNumber(b.events)} events${partial ? " (partial)" : ""}`),
    );
  });
  const grid = [0, 0.5, 1].map((f) => {
    const y = top + plotH - f * plotH;
    return [
      s("line", { x1: left, x2: width - 8, y1: y, y2: y, class: "grid" }),
      // Counts are whole numbers: the middle line of a scale up to 5 carries no label.
      s("text", { x: left - 6, y: y + 4, class: "axis", "text-anchor": "end" }, Number.isInteger(max * f) ? formatNumber(max * f) : ""),
    ];
  });
  const tickAt = width < 420 ? [0, buckets.length - 1] : [0, Math.floor(buckets.length / 2), buckets.length - 1];
  const ticks = tickAt.map((i) =>
    s(
      "text",
      { x: left + i * slot + slot / 2, y: height - 6, class: "axis", "text-anchor": "middle" },
      formatClock(buckets[i].start),
    ),
  );
  const svg = s(
    "svg",
    { viewBox: `0 0 ${width} ${height}`, width, height, role: "img", "aria-label": summary, class: "chart" },
    grid,
    bars,
    ticks,
  );
  const partialNote =
    completeSince > new Date(buckets[0].start).getTime()
      ? h("p", { class: "muted small" }, `Bars before ${formatClock(stats.complete_since)} are partial: only the newest events are read for this chart.`)
      : null;
  return h("figure", { class: "chart-figure" }, svg, h("figcaption", {}, summary), partialNote);
}

function niceCeiling(n) {
  const power = 10 ** Math.floor(Math.log10(n));
  for (const step of [1, 2, 5, 10]) {
    if (step * power >= n) return step * power;
  }
  return 10 * power;
}

export async function mount(container, { session }) {
  const body = h("div", { class: "overview-body" }, h("p", { class: "muted" }, "Loading…"));
  container.append(
    h(
      "section",
      { "aria-labelledby": "overview-title" },
      h("div", { class: "title-row" }, h("h1", { id: "overview-title" }, "Overview")),
      body,
      h(
        "p",
        { class: "next-steps" },
        h("a", { href: links.streams() }, "Browse streams"),
        " · ",
        h("a", { href: links.tail() }, "Watch the log live"),
        " · ",
        h("a", { href: links.projections() }, "Check projections"),
      ),
      session.views.length
        ? h(
            "p",
            { class: "muted" },
            "Time travel is available for streams of: ",
            session.views.map((v, i) => [i ? ", " : "", h("a", { href: links.streams({ category: v.category }) }, v.category)]),
            ".",
          )
        : null,
    ),
  );
  let timer = null;
  let stopped = false;

  async function refresh() {
    try {
      const stats = await api("/v1/stats?minutes=60");
      if (stopped) return;
      clear(body).append(
        h(
          "dl",
          { class: "stats" },
          card("Events", counted(stats.events, stats.events_exact), stats.events_exact ? null : "estimate", "events"),
          card("Streams", counted(stats.streams, stats.streams_exact), stats.streams_exact ? null : "estimate", "streams"),
          card("Append rate", `${stats.appends_per_second.toFixed(stats.appends_per_second < 10 ? 2 : 0)}/s`, "over the last minute", "rate"),
          card(
            "Last event",
            stats.last_recorded_at ? formatTime(stats.last_recorded_at).slice(11) : "none yet",
            stats.last_recorded_at
              ? `${formatTime(stats.last_recorded_at).slice(0, 10)} · position ${formatNumber(stats.last_position)}`
              : null,
            "last",
          ),
        ),
        h("h2", {}, "Appends over the last hour"),
        chart(stats, body.clientWidth),
      );
    } catch (error) {
      if (stopped) return;
      clear(body).append(h("p", { class: "error", role: "alert" }, `Could not load the statistics: ${error.message}`));
    }
    if (!stopped) timer = setTimeout(refresh, REFRESH_MS);
  }

  await refresh();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
