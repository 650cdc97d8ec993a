// What is out of date in the project and the one "Update stale (n)" button: it shows the dry run
// (exactly what will be redone, and its quote) and only then starts the refresh, whose job progress shows here.
import { api, errorText } from "./api.js";
import { $, badge, confirmDialog, el, notify } from "./dom.js";
import { quoteBlock } from "./money.js";

const NOUN = { portrait: "portrait", reference: "reference image", keyframe: "keyframe", clip: "clip", line: "spoken line", film: "final film" };
const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;

// "Keyframe · scene 1, frame 2" from the project the page holds.
export function unitName(unit, p) {
  if (unit.type === "film") return "Final film";
  if (unit.type === "portrait") {
    const c = p?.characters.find((x) => x.id === unit.id);
    return `Portrait · ${c ? c.name : `character #${unit.id}`}`;
  }
  if (unit.type === "reference") {
    const o = p?.objects?.find((x) => x.id === unit.id);
    return `Reference image · ${o ? o.name : `object #${unit.id}`}`;
  }
  for (const s of p?.scenes || []) {
    const f = s.frames.find((x) => x.id === unit.id);
    if (f) return `${NOUN[unit.type][0].toUpperCase()}${NOUN[unit.type].slice(1)} · scene ${s.order}, frame ${f.order}`;
  }
  return `${NOUN[unit.type] || unit.type} #${unit.id}`;
}

// `report` is GET /stale; `job` the project's latest refresh job (or null).
export function renderStale(report, job) {
  const n = report?.units?.length || 0;
  const running = job && ["queued", "running", "waiting"].includes(job.status);
  const box = $("#stale-box");
  box.hidden = !n && !running;
  document.body.dataset.staleCount = String(n);
  const button = $("#update-stale");
  button.textContent = `Update stale (${n})`;
  button.disabled = running || !n;
  $("#stale-summary").textContent = running ? "Redoing what is out of date, then re-cutting the film…"
    : n ? `${plural(n, "unit")} out of date: ${summary(report.units)}.` : "";
  const progress = $("#refresh-progress");
  progress.hidden = !running;
  if (running) {
    progress.replaceChildren(el("span", { class: "nowrap small", text: `Refresh #${job.id}` }), badge(job.status),
      el("div", { class: "progress", style: "width:12rem" }, el("span", { style: `width:${job.progress}%` })),
      el("span", { class: "small muted", text: `${job.progress}%` }));
  }
  if (job && !running && $("#stale-box").dataset.watching === String(job.id)) {
    delete $("#stale-box").dataset.watching;
    if (job.status === "succeeded") notify(`Refresh #${job.id} done: the stale units were redone and the film re-cut.`);
    else notify(`Refresh #${job.id} ${job.status}${job.error ? `: ${job.error}` : "."}`, "error");
  }
}

function summary(units) {
  const counts = new Map();
  for (const u of units) counts.set(u.type, (counts.get(u.type) || 0) + 1);
  return Array.from(counts, ([type, k]) => plural(k, NOUN[type] || type)).join(", ");
}

function estimateText(estimate) {
  const items = (estimate?.items || []).map((i) => plural(i.count, NOUN[i.stage] || i.stage));
  return items.length ? `Model calls: ${items.join(", ")}.` : "";
}

export async function updateStale(projectId, p, soon) {
  const button = $("#update-stale");
  button.disabled = true;
  const dry = await api("POST", `/api/projects/${projectId}/refresh`, { dry_run: true });
  button.disabled = false;
  if (!dry.ok) { notify(errorText(dry.data, "Could not work out what is stale."), "error"); return; }
  const units = dry.data.units || [];
  if (!units.length) { notify("Nothing is stale: every take matches its inputs."); soon(); return; }
  const list = el("ul", { class: "stale-units" }, units.map((u) =>
    el("li", { "data-unit": `${u.type}-${u.id}`, "data-follows": u.follows ? "" : null }, el("strong", { text: unitName(u, p) }),
      u.follows ? el("span", { class: "small", text: " (follows)" }) : "",
      u.reasons?.length ? el("span", { class: "small muted", text: ` — ${u.reasons.join("; ")}` }) : "")));
  const yes = await confirmDialog(`Redo ${plural(units.length, "unit")}?`, [
    el("p", { text: "The stale units, and what is made from them (marked “follows”), are regenerated in dependency order. Nothing else is redone." }),
    list,
    el("p", { class: "small", text: estimateText(dry.data.estimate) }),
    quoteBlock(dry.data.estimate),
  ], `Update ${plural(units.length, "unit")}`);
  if (!yes) return;
  button.disabled = true;
  const { ok, data } = await api("POST", `/api/projects/${projectId}/refresh`, {});
  if (!ok) { button.disabled = false; notify(errorText(data, "Could not start the refresh."), "error"); soon(); return; }
  $("#stale-box").dataset.watching = String(data.id);
  renderStale(dry.data, data);  // its progress shows at once; job events move it on
  notify(`Refresh #${data.id} started: ${plural(units.length, "unit")} to redo, then the film.`);
  soon();
}
