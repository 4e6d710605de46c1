/**
 * A small Node.js service on Ilji: it appends events to a stream and follows the global log
 * over Server-Sent Events. Its types come from the server's OpenAPI document
 * (`npm run types -- http://127.0.0.1:8000/openapi.json -o src/generated/ilji-api.d.ts`),
 * so a change of the API shows up as a compile error, not as a surprise at run time.
 *
 * Settings: ILJI_URL (default http://127.0.0.1:8000), ILJI_TOKEN (a write token when the
 * server has tokens), ILJI_EVENTS (how many events to append, default 10). It prints one
 * JSON line per event it sees and a summary line, and exits 0 when it saw every event it
 * appended, once each, in order.
 */
import { randomUUID } from "node:crypto";
import createClient from "openapi-fetch";
import type { components, paths } from "./generated/ilji-api.js";
// --8<-- [start:client]

type RecordedEvent = components["schemas"]["EventOut"];
type Problem = components["schemas"]["Problem"];

const baseUrl = process.env.ILJI_URL ?? "http://127.0.0.1:8000";
const token = process.env.ILJI_TOKEN;
const count = Number(process.env.ILJI_EVENTS ?? "10");
const auth: Record<string, string> = token ? { Authorization: `Bearer ${token}` } : {};
// JSON answers only: the read routes also answer text/event-stream, which `follow` reads itself.
const ilji = createClient<paths, `${string}/${string}json`>({ baseUrl, headers: auth });
// --8<-- [end:client]

function failure(operation: string, status: number, problem: Problem): Error {
  return new Error(`${operation}: ${status} ${problem.type}: ${problem.detail}`);
}

/** Where the global log ends now: following from there shows only new events. */
async function endOfLog(): Promise<number> {
  let after = 0;
  for (;;) {
    const { data, error, response } = await ilji.GET("/v1/all", {
      params: { query: { after, limit: 1000 } },
    });
    if (error) throw failure("readAll", response.status, error);
    if (data.events.length === 0) return data.next;
    after = data.next;
  }
}

// --8<-- [start:append]
/** Append one event if the stream is at `expected`; a conflict comes back as a typed problem. */
async function append(stream: string, expected: number, i: number): Promise<string> {
  const id = randomUUID();
  const { data, error, response } = await ilji.POST("/v1/streams/{stream}", {
    params: { path: { stream } },
    body: { expected_version: expected, events: [{ id, type: "NodeTick", data: { i }, metadata: {} }] },
  });
  if (error) throw failure("appendToStream", response.status, error);
  if (data.last_version !== expected + 1) throw new Error(`unexpected version ${data.last_version}`);
  return id;
}
// --8<-- [end:append]

function isEvent(value: unknown): value is RecordedEvent {
  const v = value as Partial<RecordedEvent> | null;
  return typeof v?.id === "string" && typeof v.stream === "string" && typeof v.position === "number";
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

// --8<-- [start:follow]
/**
 * The global log after `after`, live, for ever (until `signal` aborts). A lost connection,
 * a restart or a 503 is followed by a reconnection with `Last-Event-ID`, after a growing
 * pause: the feed goes on after the last event seen.
 */
async function* follow(after: number, signal: AbortSignal): AsyncGenerator<RecordedEvent> {
  let lastId = after;
  let pause = 100;
  while (!signal.aborted) {
    try {
      const response = await fetch(new URL("/v1/all", baseUrl), {
        headers: { ...auth, Accept: "text/event-stream", "Last-Event-ID": String(lastId) },
        signal,
      });
      if (response.status === 401 || response.status === 403 || response.status === 400) {
        throw new Error(`subscribeAll: ${response.status} ${await response.text()}`);
      }
      if (response.ok && response.body) {
        const decoder = new TextDecoder();
        let buffer = "";
        for await (const chunk of response.body) {
          buffer += decoder.decode(chunk, { stream: true });
          let end: number;
          while ((end = buffer.indexOf("\n\n")) >= 0) {
            const message = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            const data = message
              .split("\n")
              .filter((line) => line.startsWith("data:"))
              .map((line) => line.slice(5).trimStart())
              .join("\n");
            if (!data) continue; // a heartbeat
            const event: unknown = JSON.parse(data);
            if (!isEvent(event) || event.position <= lastId) continue;
            lastId = event.position;
            pause = 100;
            yield event;
          }
        }
      }
    } catch (error) {
      if (signal.aborted) return;
      if (error instanceof Error && error.message.startsWith("subscribeAll:")) throw error;
    }
    await sleep(pause * (0.5 + Math.random() / 2));
    pause = Math.min(pause * 2, 5000);
  }
}
// --8<-- [end:follow]

async function main(): Promise<number> {
  const stream = `node-${randomUUID().slice(0, 8)}`;
  const start = await endOfLog();
  const stop = new AbortController();
  const giveUp = setTimeout(() => stop.abort(), 60_000);
  const seen: string[] = [];
  const following = (async () => {
    for await (const event of follow(start, stop.signal)) {
      if (event.stream !== stream) continue;
      seen.push(event.id);
      console.log(JSON.stringify({ seen: event.id, type: event.type, version: event.version }));
      if (seen.length === count) stop.abort();
    }
  })();

  const appended: string[] = [];
  for (let i = 0; i < count; i++) appended.push(await append(stream, i, i));
  // Expecting a version the stream has left: the server's 409 problem, typed.
  const conflict = await ilji.POST("/v1/streams/{stream}", {
    params: { path: { stream } },
    body: { expected_version: 0, events: [{ type: "NodeTick", data: {}, metadata: {} }] },
  });
  const actual = conflict.error?.actual;

  await following;
  clearTimeout(giveUp);
  const ok = seen.length === appended.length && seen.every((id, i) => id === appended[i]);
  console.log(JSON.stringify({ stream, appended, seen, conflict: conflict.response.status, actual, ok }));
  return ok && conflict.response.status === 409 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(error instanceof Error ? error.message : error);
    process.exit(2);
  },
);
