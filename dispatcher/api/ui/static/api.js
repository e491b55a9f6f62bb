// The API as the page uses it. The token lives in this tab's sessionStorage only: never in a
// URL, a cookie or a log. Every call sends it as a bearer token; event streams are read with
// fetch() (EventSource cannot send headers), resuming from the last event id on reconnect.

const TOKEN_KEY = "crucible.token";

export function token() { return sessionStorage.getItem(TOKEN_KEY) || ""; }
export function setToken(value) { sessionStorage.setItem(TOKEN_KEY, value); }
export function forget() { sessionStorage.removeItem(TOKEN_KEY); }

export class ApiError extends Error {
  constructor(status, body) {
    const error = (body && body.error) || {};
    super(error.message || `HTTP ${status}`);
    this.status = status;
    this.code = error.code || "";
    this.details = Array.isArray(error.details) ? error.details : [];
  }
}

function headers(extra = {}) {
  const all = { ...extra };
  if (token()) all.Authorization = `Bearer ${token()}`;
  return all;
}

/** JSON in, JSON out; an answer other than 2xx throws ApiError. */
export async function call(method, path, body) {
  const init = { method, headers: headers({ Accept: "application/json" }), cache: "no-store" };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  const response = await fetch(path, init);
  const text = await response.text();
  let parsed = null;
  try { parsed = text ? JSON.parse(text) : null; } catch { parsed = null; }
  if (!response.ok) throw new ApiError(response.status, parsed);
  return parsed;
}

export async function text(path) {
  const response = await fetch(path, { headers: headers(), cache: "no-store" });
  if (!response.ok) throw new ApiError(response.status, null);
  return response.text();
}

export const evaluationPath = (id) => `/v1/evaluations/${encodeURIComponent(id)}`;

/**
 * Follows an SSE endpoint until `signal` aborts or `onEvent` returns "stop": each message goes to
 * onEvent({id, type, data}). After a cut (a network error, the server ending the stream while
 * the caller wants more) it reconnects with Last-Event-ID, the last id it saw. `ended` says
 * whether a normal end of the stream is the end (true for one evaluation's stream).
 */
export async function follow(path, { lastEventId = "", signal, onEvent, onOpen, ended }) {
  let last = lastEventId;
  let wait = 500;
  while (!signal.aborted) {
    try {
      const extra = { Accept: "text/event-stream" };
      if (last) extra["Last-Event-ID"] = last;
      const response = await fetch(path, { headers: headers(extra), signal, cache: "no-store" });
      if (!response.ok) {
        let body = null;
        try { body = await response.json(); } catch { body = null; }
        throw new ApiError(response.status, body);
      }
      if (onOpen) onOpen();
      wait = 500;
      let stop = false;
      for await (const message of messages(response.body, signal)) {
        if (message.id) last = message.id;
        if (onEvent(message) === "stop") { stop = true; break; }
      }
      if (stop || (ended && ended())) return;
    } catch (e) {
      if (signal.aborted) return;
      if (e instanceof ApiError && e.status !== 429 && e.status < 500) throw e;
    }
    await new Promise((resolve) => setTimeout(resolve, wait));
    wait = Math.min(wait * 2, 10000);
  }
}

/** The messages of an event stream: {id, type, data (parsed JSON)}. */
async function* messages(body, signal) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  signal.addEventListener("abort", () => reader.cancel().catch(() => {}), { once: true });
  let buffer = "";
  let searched = 0;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n", searched)) !== -1) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      searched = 0;
      const message = parse(block);
      if (message) yield message;
    }
    searched = Math.max(0, buffer.length - 1);
  }
}

function parse(block) {
  let id = "";
  let type = "message";
  const data = [];
  for (const line of block.split("\n")) {
    if (!line || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "id") id = value;
    else if (field === "event") type = value;
    else if (field === "data") data.push(value);
  }
  if (!data.length) return null;
  try {
    return { id, type, data: JSON.parse(data.join("\n")) };
  } catch {
    return null;
  }
}
