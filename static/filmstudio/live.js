// Live dashboard pages. A page marks its root with [data-live] and the regions that change with
// [data-live-part id=...]. On a change the page is re-fetched (same URL, so filters and paging
// stay) and each region whose HTML differs is swapped in place.
// With data-live-events the page listens to the project's eventstream; without it, or when the
// stream is refused or gone, it polls every data-live-poll milliseconds (default 3 s).
(function () {
  "use strict";
  const root = document.querySelector("[data-live]");
  if (!root) return;
  const eventsUrl = root.dataset.liveEvents;
  const pollMs = Number(root.dataset.livePoll || 3000);
  const dot = root.querySelector("[data-live-dot]");
  const label = root.querySelector("[data-live-label]");
  const EVENT_TYPES = ["job", "character", "scene", "frame", "video", "project"];
  let busy = false;
  let again = false;
  let timer = null;
  let poller = null;

  function mark(on, text) {
    if (dot) dot.classList.toggle("on", on);
    if (label) label.textContent = text;
    root.dataset.liveState = text;
  }

  // A region with a playing video waits: swapping it would stop the film mid-scene.
  function playing(el) {
    return Array.from(el.querySelectorAll("video")).some((v) => !v.paused && !v.ended);
  }

  async function refresh() {
    if (busy) { again = true; return; }
    busy = true;
    try {
      const response = await fetch(location.href, {
        headers: { "X-Live-Refresh": "1" },
        credentials: "same-origin",
      });
      if (response.redirected || !response.headers.get("content-type")?.includes("text/html")) return;
      const doc = new DOMParser().parseFromString(await response.text(), "text/html");
      for (const fresh of doc.querySelectorAll("[data-live-part]")) {
        const old = document.getElementById(fresh.id);
        if (!old || old.innerHTML === fresh.innerHTML) continue;
        if (playing(old)) { again = true; continue; }
        old.innerHTML = fresh.innerHTML;
      }
      root.dataset.refreshed = String(Date.now());
    } catch (error) {
      console.warn("live refresh failed", error);
    } finally {
      busy = false;
      if (again) { again = false; soon(1000); }
    }
  }

  function soon(delay) {
    clearTimeout(timer);
    timer = setTimeout(refresh, delay ?? 200);
  }

  function poll() {
    if (poller) return;
    mark(false, "refreshing every " + Math.round(pollMs / 1000) + " s");
    poller = setInterval(() => { if (!document.hidden) refresh(); }, pollMs);
  }

  function listen() {
    const source = new EventSource(eventsUrl);
    for (const type of EVENT_TYPES) source.addEventListener(type, () => soon());
    // Changes between the page render and the stream opening are not replayed: catch up once.
    source.addEventListener("stream-open", () => { mark(true, "live"); soon(); });
    source.addEventListener("stream-error", () => { source.close(); poll(); });
    source.onerror = () => {
      if (source.readyState === EventSource.CLOSED) poll();
      else mark(false, "reconnecting…");
    };
  }

  if (eventsUrl && "EventSource" in window) listen();
  else poll();
})();
