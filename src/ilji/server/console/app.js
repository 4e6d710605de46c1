// The console's entry point: sign-in, the colour theme, and a hash router over its screens.
//
// Screens are modules with mount(container, context) that return a cleanup function (which
// stops their timers and live feeds). Routes are hashes, so every screen has a URL to share
// and the server needs to serve only one page:
//   #/overview  #/streams?prefix=&category=  #/stream/NAME[/VERSION][?from=]
//   #/travel/NAME?v=N  #/tail[?category=]  #/projections

import { ApiError, api, clearToken, onUnauthorized, setToken, token } from "./api.js";
import { clear, h } from "./dom.js";
import * as overview from "./overview.js";
import * as projections from "./projections.js";
import * as streams from "./streams.js";
import * as tail from "./tail.js";
import * as travel from "./travel.js";

const SCREENS = {
  overview: { module: overview, nav: "overview" },
  streams: { module: streams, nav: "streams", mount: streams.mountSearch },
  stream: { module: streams, nav: "streams", mount: streams.mountStream },
  travel: { module: travel, nav: "streams" },
  tail: { module: tail, nav: "tail" },
  projections: { module: projections, nav: "projections" },
};

const main = document.getElementById("main");
const session = { auth: false, role: null, views: [] };
let cleanup = null;
let rendered = false;

function parseRoute() {
  const hash = location.hash.startsWith("#/") ? location.hash.slice(2) : "overview";
  const [path, query = ""] = hash.split("?", 2);
  const [name, ...args] = path.split("/").map((part) => {
    try {
      return decodeURIComponent(part);
    } catch {
      return part;
    }
  });
  return { name: name || "overview", args, query: new URLSearchParams(query) };
}

function stop() {
  if (cleanup) {
    try {
      cleanup();
    } catch (error) {
      console.error(error);
    }
  }
  cleanup = null;
}

async function render({ focus = true } = {}) {
  stop();
  const route = parseRoute();
  const screen = SCREENS[route.name] || SCREENS.overview;
  for (const link of document.querySelectorAll("[data-nav]")) {
    if (link.dataset.nav === screen.nav) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  clear(main);
  const mount = screen.mount || screen.module.mount;
  const context = { session, args: route.args, query: route.query };
  try {
    const result = await mount(main, context);
    cleanup = typeof result === "function" ? result : null;
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) return; // the sign-in form took over
    main.append(h("p", { class: "error", role: "alert" }, `Could not show this screen: ${error.message}`));
  }
  const heading = main.querySelector("h1");
  if (heading) {
    heading.setAttribute("tabindex", "-1");
    document.title = `${heading.textContent} · Ilji console`;
  }
  // Move focus to the new screen's heading (or what it marks as its subject, like an opened
  // event), so keyboard and screen-reader users start there.
  const target = main.querySelector("[data-autofocus]") || heading;
  if (target && focus && rendered) {
    target.setAttribute("tabindex", "-1");
    target.focus({ preventScroll: !target.hasAttribute("data-autofocus") });
  }
  rendered = true;
}

// -- signing in -------------------------------------------------------------------------------

function showSignIn(message) {
  stop();
  clear(main);
  document.title = "Sign in · Ilji console";
  const input = h("input", {
    id: "token-input",
    name: "token",
    type: "password",
    autocomplete: "off",
    spellcheck: "false",
    required: true,
    "aria-describedby": "token-help token-error",
  });
  const error = h("p", { id: "token-error", class: "error", role: "alert" }, message || "");
  const button = h("button", { type: "submit", class: "primary" }, "Sign in");
  const form = h(
    "form",
    { class: "card sign-in", "aria-labelledby": "sign-in-title" },
    h("h1", { id: "sign-in-title" }, "Sign in"),
    h(
      "p",
      { id: "token-help" },
      "This server checks API tokens. Paste one of the tokens set in ILJI_API_TOKENS: a read token shows " +
        "everything, an admin token can also pause, resume and rebuild projections.",
    ),
    h("label", { for: "token-input" }, "API token"),
    input,
    button,
    error,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const value = input.value.trim();
    if (!value) {
      error.textContent = "Enter a token.";
      return;
    }
    button.disabled = true;
    error.textContent = "";
    setToken(value);
    try {
      await signedIn(await api("/v1/whoami", { quiet401: true }));
    } catch (failure) {
      clearToken();
      error.textContent =
        failure instanceof ApiError && failure.status === 401
          ? "The server did not accept this token. Check it and try again."
          : `Could not reach the server: ${failure.message}`;
      input.select();
    } finally {
      button.disabled = false;
    }
  });
  main.append(form);
  input.focus();
  updateStatus();
}

async function signedIn(who) {
  session.auth = who.auth;
  session.role = who.role;
  try {
    session.views = (await api("/v1/views")).views;
  } catch {
    session.views = [];
  }
  updateStatus();
  await render({ focus: false });
}

function updateStatus() {
  const status = document.getElementById("session-status");
  const signOut = document.getElementById("sign-out");
  if (!session.role) {
    status.textContent = "Not signed in";
    signOut.hidden = true;
    return;
  }
  const article = session.role === "admin" ? "an" : "a";
  status.textContent = session.auth ? `Signed in with ${article} ${session.role} token` : "Tokens are off on this server";
  signOut.hidden = !session.auth;
}

// -- theme ------------------------------------------------------------------------------------

const THEMES = ["auto", "light", "dark"];
const THEME_ICONS = { auto: "◐", light: "☀", dark: "☾" };

function applyTheme(theme) {
  if (theme === "auto") document.documentElement.removeAttribute("data-theme");
  else document.documentElement.setAttribute("data-theme", theme);
  const button = document.getElementById("theme-toggle");
  const label = { auto: "automatic (as the system)", light: "light", dark: "dark" }[theme];
  button.setAttribute("aria-label", `Colour theme: ${label}. Change it`);
  button.title = `Theme: ${label}`;
  document.getElementById("theme-icon").textContent = THEME_ICONS[theme];
}

function storedTheme() {
  try {
    const theme = localStorage.getItem("ilji.console.theme");
    return THEMES.includes(theme) ? theme : "auto";
  } catch {
    return "auto";
  }
}

// -- start ------------------------------------------------------------------------------------

async function start() {
  applyTheme(storedTheme());
  document.getElementById("theme-toggle").addEventListener("click", () => {
    const next = THEMES[(THEMES.indexOf(storedTheme()) + 1) % THEMES.length];
    try {
      localStorage.setItem("ilji.console.theme", next);
    } catch {
      /* private mode: the choice lasts for this page only */
    }
    applyTheme(next);
  });
  document.getElementById("skip-link").addEventListener("click", (event) => {
    event.preventDefault(); // "#main" is not a route
    (main.querySelector("h1") || main).focus();
  });
  document.getElementById("sign-out").addEventListener("click", () => {
    clearToken();
    session.role = null;
    showSignIn("Signed out.");
  });
  onUnauthorized(() => {
    const hadToken = Boolean(token());
    clearToken();
    session.role = null;
    showSignIn(hadToken ? "The server no longer accepts your token: sign in again." : "");
  });
  window.addEventListener("hashchange", () => {
    if (!location.hash.startsWith("#/")) return;
    if (session.role) render();
  });
  try {
    await signedIn(await api("/v1/whoami"));
  } catch (error) {
    if (!(error instanceof ApiError && error.status === 401)) {
      clear(main).append(h("p", { class: "error", role: "alert" }, `Could not reach the server: ${error.message}`));
    }
  }
}

start();
