// Talking to the Ilji HTTP API: JSON calls and Server-Sent Events, with the bearer token.
//
// The token lives in sessionStorage: it is gone when the tab closes, and other sites cannot
// read it. EventSource cannot send an Authorization header, so live feeds are read with
// fetch() and a stream reader, and the SSE lines (id:, event:, data:) are parsed here.

const TOKEN_KEY = "ilji.console.token";

export class ApiError extends Error {
  constructor(status, problem) {
    const detail = (problem && (problem.detail || problem.title)) || `HTTP ${status}`;
    super(detail);
    this.status = status;
    this.problem = problem || {};
  }
}

const unauthorizedListeners = new Set();

/** Call `listener(error)` whenever the server answers 401 (no token, or one it does not know). */
export function onUnauthorized(listener) {
  unauthorizedListeners.add(listener);
}

export function token() {
  try {
    return sessionStorage.getItem(TOKEN_KEY);
  } catch {
    return null;
  }
}

export function setToken(value) {
  sessionStorage.setItem(TOKEN_KEY, value);
}

export function clearToken() {
  sessionStorage.removeItem(TOKEN_KEY);
}

function headers(accept, extra = {}) {
  const out = { Accept: accept, ...extra };
  const t = token();
  if (t) out.Authorization = `Bearer ${t}`;
  return out;
}

async function failure(response) {
  let problem = null;
  try {
    problem = await response.json();
  } catch {
    problem = null;
  }
  const error = new ApiError(response.status, problem);
  if (response.status === 401) unauthorizedListeners.forEach((listener) => listener(error));
  return error;
}

/** A JSON call: `api("/v1/stats")`, `api(path, {method: "POST", body})`. Throws ApiError. */
export async function api(path, { method = "GET", body, signal, quiet401 = false } = {}) {
  const init = { method, signal, headers: headers("application/json") };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  if (!response.ok) {
    if (quiet401 && response.status === 401) throw new ApiError(401, await response.json().catch(() => null));
    throw await failure(response);
  }
  if (response.status === 204) return null;
  return response.json();
}

/** Path of a stream URL: names may hold any character, "/" and "?" included. */
export function streamPath(prefix, name) {
  return `${prefix}/${encodeURIComponent(name)}`;
}

/**
 * Follow an SSE feed: yields {id, event, data} for each message until `signal` aborts or the
 * server ends the stream. Comments (the server's heartbeats) are skipped. Throws ApiError for
 * an error answer and whatever fetch throws when the connection fails.
 */
export async function* sse(path, { signal, lastEventId } = {}) {
  const extra = lastEventId !== undefined && lastEventId !== null ? { "Last-Event-ID": String(lastEventId) } : {};
  const response = await fetch(path, { signal, headers: headers("text/event-stream", extra), cache: "no-store" });
  if (!response.ok) throw await failure(response);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let message = { id: null, event: null, data: [] };
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      let newline;
      while ((newline = buffer.search(/\r\n|\r|\n/)) >= 0) {
        const line = buffer.slice(0, newline);
        buffer = buffer.slice(newline + (buffer.startsWith("\r\n", newline) ? 2 : 1));
        if (line === "") {
          // A blank line ends a message.
          if (message.data.length) {
            yield { id: message.id, event: message.event || "message", data: message.data.join("\n") };
          }
          message = { id: message.id, event: null, data: [] };
          continue;
        }
        if (line.startsWith(":")) continue; // a comment: the server's heartbeat
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let text = colon < 0 ? "" : line.slice(colon + 1);
        if (text.startsWith(" ")) text = text.slice(1);
        if (field === "data") message.data.push(text);
        else if (field === "id") message.id = text;
        else if (field === "event") message.event = text;
      }
    }
  } finally {
    reader.cancel().catch(() => {});
  }
}
