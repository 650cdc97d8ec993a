// The Export menu: the film's timeline for an editor (OTIO, FCP X XML, CMX 3600 EDL, each
// downloaded from GET /api/projects/{id}/export with signed media URLs), its subtitles (.srt,
// .vtt), and the hand-off zip built by an export job (POST /api/jobs/export) whose progress
// shows here until its signed `result.url` is ready.
import { api, errorText } from "./api.js";
import { $, badge, el, notify } from "./dom.js";

// [what, its URL under /api/projects/{id}/, label, who opens it]
export const DOWNLOADS = [
  ["otio", "export?format=otio", "OpenTimelineIO (.otio)", "DaVinci Resolve, Premiere (with the OTIO plugin), Avid"],
  ["fcpxml", "export?format=fcpxml", "Final Cut Pro X XML (.fcpxml)", "Final Cut Pro, Resolve"],
  ["edl", "export?format=edl", "CMX 3600 EDL (.edl)", "any editor: picture cuts only"],
  ["srt", "subtitles.srt", "Subtitles (.srt)", "timed to the spoken lines"],
  ["vtt", "subtitles.vtt", "Subtitles (.vtt)", "for the web"],
];
const ACTIVE = ["queued", "running", "waiting"];

function filename(response, fallback) {
  const match = /filename="([^"]+)"/.exec(response.headers.get("Content-Disposition") || "");
  return match ? match[1] : fallback;
}

// Fetched rather than linked, so a refusal (409: no finished cut yet) is a notice, not a page.
export async function download(projectId, what, path) {
  const response = await fetch(`/api/projects/${projectId}/${path}`, { credentials: "same-origin" });
  if (!response.ok) {
    const data = await response.json().catch(() => null);
    notify(errorText(data, `Could not export the ${what}.`), "error");
    return;
  }
  const blob = await response.blob();
  const link = el("a", { href: URL.createObjectURL(blob), download: filename(response, `film.${what}`), hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
  const timeline = path.startsWith("export");
  notify(timeline ? `Timeline downloaded (${what}). Its media links are signed and expire; the zip carries the media itself.`
    : `Subtitles downloaded (${what}).`);
}

// `p` is the project JSON, `job` the project's latest export job (or null).
export function renderExport(p, job) {
  const menu = $("#export-menu");
  const ready = Boolean(p.final_video_url);
  menu.hidden = !ready;
  menu.dataset.ready = String(ready);
  const running = Boolean(job && ACTIVE.includes(job.status));
  $("#export-bundle").disabled = running;
  const state = $("#export-state");
  const key = JSON.stringify(job && [job.id, job.status, job.progress, job.result?.url, job.error]);
  if (state.dataset.key === key) return;
  state.dataset.key = key;
  if (!job) { state.replaceChildren(); return; }
  const parts = [el("span", { class: "nowrap small", text: `Export #${job.id}` }), badge(job.status)];
  if (running) {
    parts.push(el("div", { class: "progress", style: "width:10rem" }, el("span", { style: `width:${job.progress}%` })),
      el("span", { class: "small muted", text: `${job.progress}%` }));
  } else if (job.status === "succeeded" && job.result?.url) {
    const mib = job.result.size ? ` · ${(job.result.size / 2 ** 20).toFixed(1)} MiB` : "";
    parts.push(el("a", { class: "btn primary small", id: "export-download", href: job.result.url, download: "", text: "Download zip" }),
      el("span", { class: "small muted", text: `${job.result.clips} clips${mib}` }));
  } else if (job.status === "succeeded") {
    parts.push(el("span", { class: "small muted", text: "replaced by a newer export" }));
  } else if (job.error) {
    parts.push(el("span", { class: "small job-error", text: job.error }));
  }
  state.replaceChildren(...parts);
  if (menu.dataset.watching === String(job.id) && !running) {
    delete menu.dataset.watching;
    if (job.status === "succeeded") notify(`Export #${job.id} is ready: download the zip from the Export menu.`);
    else notify(`Export #${job.id} ${job.status}${job.error ? `: ${job.error}` : "."}`, "error");
  }
}

export async function startExport(projectId, soon) {
  const button = $("#export-bundle");
  button.disabled = true;
  const { ok, data } = await api("POST", "/api/jobs/export", { project_id: projectId });
  if (!ok) { button.disabled = false; notify(errorText(data, "Could not start the export."), "error"); return; }
  $("#export-menu").dataset.watching = String(data.id);
  $("#export-menu").open = true;
  notify(`Export #${data.id} started: the zip is built in the background.`);
  soon();
}

export function exportLinks(projectId) {
  return DOWNLOADS.map(([what, path, title, hint]) =>
    el("li", {},
      el("button", { class: "linkish", type: "button", "data-format": what, text: title, onclick: () => download(projectId(), what, path) }),
      el("span", { class: "small muted", text: ` ${hint}` })));
}
