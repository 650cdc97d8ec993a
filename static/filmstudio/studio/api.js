// The JSON API as the studio uses it: session auth, the CSRF header, 401 → log in again.

export const csrfToken = () => document.querySelector('meta[name="csrf-token"]').content;

export async function api(method, url, body) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET") headers["X-CSRFToken"] = csrfToken();
  const response = await fetch(url, {
    method,
    headers,
    credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 401) {  // the session ended: log in again, then come back here
    location.assign(`/accounts/login/?next=${encodeURIComponent(location.pathname + location.search)}`);
  }
  const data = response.status === 204 ? null : await response.json().catch(() => null);
  return { ok: response.ok, status: response.status, data };
}

export function errorText(data, fallback) {
  if (!data) return fallback;
  if (typeof data.detail === "string") return data.detail;
  return Object.entries(data).map(([field, errors]) => `${field}: ${[].concat(errors).join(" ")}`).join("; ") || fallback;
}

// The director's page contexts ({id, title, description, tools: [{name, kind}]}), read once.
let pages = null;
export function directorPages() {
  pages ??= api("GET", "/api/director/pages").then(({ ok, data }) => (ok && Array.isArray(data) ? data : []));
  return pages;
}

// POST a director turn (or a confirmation); the response body is a stream of SSE blocks.
export function postTurn(body, url = "/api/director/stream") {
  return fetch(url, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", Accept: "text/event-stream", "X-CSRFToken": csrfToken() },
    body: JSON.stringify(body),
  });
}

// One SSE block: "event: x" and "data: ..." lines (multi-line data joined with \n).
export function parseBlock(block) {
  let event = "message";
  const data = [];
  for (const line of block.split(/\r?\n/)) {
    if (!line || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "event") event = value;
    else if (field === "data") data.push(value);
  }
  if (!data.length) return null;
  try { return { event, data: JSON.parse(data.join("\n")) }; } catch { return { event, data: data.join("\n") }; }
}

// Each parsed event of a streamed response, in order; return true from `handle` to stop.
export async function readEvents(response, handle) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  let finished = false;
  while (!finished) {
    const { value, done } = await reader.read();
    buffer += decoder.decode(value || new Uint8Array(), { stream: !done });
    let match;
    while (!finished && (match = /\r?\n\r?\n/.exec(buffer))) {
      const parsed = parseBlock(buffer.slice(0, match.index));
      buffer = buffer.slice(match.index + match[0].length);
      if (parsed) finished = handle(parsed);
    }
    if (done) break;
  }
  if (finished) reader.cancel().catch(() => {});
  return finished;
}
