// The selected project: the project list, selecting and creating, the eventstream, re-reading
// on every event, and the actions a person takes on it. State lives on the server.
import { api, errorText } from "./api.js";
import { $, badge, el, notify, reconcile } from "./dom.js";
import { showAutopilot } from "./autopilot.js";
import { renderExport } from "./export.js";
import { askToSpend } from "./money.js";
import { render, renderJobs } from "./render.js";
import { renderStale, updateStale } from "./stale.js";

export const state = { projectId: null, project: null, source: null, busy: false, again: false, timer: null };

// --- project list ----------------------------------------------------------------------------

export async function loadProjects() {
  const { ok, data } = await api("GET", "/api/projects?page_size=100");
  const list = $("#project-list");
  if (!ok) { list.replaceChildren(el("li", { class: "muted small", text: "Could not load projects." })); return; }
  if (!data.results.length) { list.replaceChildren(el("li", { class: "muted small", text: "No projects yet." })); return; }
  reconcile(list, data.results, (p) => p.id, (p) => JSON.stringify([p.title, p.status, p.progress, p.id === state.projectId]), (p) =>
    el("li", {},
      el("a", { href: `?project=${p.id}`, class: p.id === state.projectId ? "current" : null, "data-project": p.id,
        onclick: (event) => { event.preventDefault(); selectProject(p.id); } },
        el("span", { class: "t", text: p.title }),
        badge(p.status),
        el("div", { class: p.progress >= 100 ? "progress done" : "progress" }, el("span", { style: `width:${p.progress}%` })))));
}

// --- creating and selecting ------------------------------------------------------------------

function formBody(form) {
  const body = {};
  for (const [key, value] of new FormData(form).entries()) {
    const input = form.elements[key];
    if (input.type === "number") { if (value !== "") body[key] = Number(value); }
    else if (value.trim() !== "" || key === "title") body[key] = value.trim();
  }
  return body;
}

export async function createProject(event) {
  event.preventDefault();
  const form = event.target;
  const errors = $("#project-form-errors");
  errors.replaceChildren();
  const button = $("#create-project");
  button.disabled = true;
  const body = formBody(form);
  // Stopping before the clips is the default: they are the expensive part.
  body.checkpoints = $("#f-storyboard").checked ? ["cast", "storyboard"] : ["cast"];
  const { ok, data } = await api("POST", "/api/projects", body);
  button.disabled = false;
  if (!ok) {
    errors.replaceChildren(el("li", { text: errorText(data, "The project could not be created.") }));
    return;
  }
  form.reset();
  notify(`Project “${data.title}” created. Generate its characters to begin.`);
  await selectProject(data.id);
  loadProjects();
}

export function showNewProject() {
  $("#dashboard").hidden = false;
  $("#dashboard").scrollIntoView({ behavior: "smooth", block: "start" });
  $("#f-title").focus();
}

export async function selectProject(id) {
  if (state.source) { state.source.close(); state.source = null; }
  state.projectId = id;
  state.project = null;
  for (const list of ["#character-list", "#object-list", "#scene-list", "#frame-list", "#clip-list"]) $(list).replaceChildren();
  history.replaceState(null, "", id ? `?project=${id}` : location.pathname);
  loadProjects();
  if (id) await refresh();
  // Shown only once filled in, so the page never flashes an empty project.
  const shown = Boolean(id && state.project);
  $("#dashboard").hidden = shown;
  $("#project-view").hidden = !shown;
  $("#section-nav").hidden = !shown;
  if (shown) listen(id);
  showAutopilot(shown ? id : null);
}

// --- live updates ----------------------------------------------------------------------------

function setLive(on, text) {
  $("#live-dot").classList.toggle("on", on);
  $("#live-label").textContent = text;
  document.body.dataset.live = on ? "on" : "off";
}

function listen(id) {
  const source = new EventSource(`/api/events/projects/${id}`);
  state.source = source;
  for (const type of ["job", "character", "object", "scene", "frame", "video", "project"]) {
    source.addEventListener(type, () => soon());
  }
  source.addEventListener("project", () => loadProjects());
  // Changes between the first read and the stream opening are not replayed: read once more.
  source.addEventListener("stream-open", () => { setLive(true, "live"); soon(); });
  source.addEventListener("stream-error", () => { source.close(); setLive(false, "offline"); });
  source.onerror = () => setLive(false, source.readyState === EventSource.CLOSED ? "offline" : "reconnecting…");
}

export function soon() {
  clearTimeout(state.timer);
  state.timer = setTimeout(refresh, 150);
}

const actions = { decide, retryJob, soon };

async function refresh() {
  if (!state.projectId) return;
  if (state.busy) { state.again = true; return; }
  state.busy = true;
  try {
    const id = state.projectId;
    const { ok, status, data } = await api("GET", `/api/projects/${id}`);
    if (id !== state.projectId) return;
    if (!ok) {
      if (status === 404) { notify("That project does not exist (or is not yours).", "error"); selectProject(null); }
      return;
    }
    state.project = data;
    render(data, actions);
    const [jobs, stale, refreshes, exports] = await Promise.all([
      api("GET", `/api/jobs?project_id=${id}&page_size=8`),
      api("GET", `/api/projects/${id}/stale`),
      api("GET", `/api/jobs?project_id=${id}&type=refresh&page_size=1`),
      api("GET", `/api/jobs?project_id=${id}&type=export&page_size=1`),
    ]);
    if (id !== state.projectId) return;
    if (jobs.ok) renderJobs(jobs.data.results, actions);
    if (stale.ok) renderStale(stale.data, refreshes.ok ? refreshes.data.results[0] || null : null);
    if (exports.ok) renderExport(data, exports.data.results[0] || null);
  } finally {
    state.busy = false;
    if (state.again) { state.again = false; soon(); }
  }
}

// --- actions ---------------------------------------------------------------------------------

// The decision that settles the cast starts the scenes (and what follows them by itself):
// it shows their quote first. `deciding` are the characters decided now.
function settlesCast(deciding, approving) {
  const cast = state.project?.characters || [];
  const ids = new Set(deciding.map((c) => c.id));
  const pending = cast.filter((x) => x.status === "pending" && !ids.has(x.id));
  return !pending.length && (approving || cast.some((x) => x.status === "approved" && !ids.has(x.id)));
}

function quoteScenes(what) {
  return askToSpend({ title: `${what} and start the scenes?`, url: "/api/jobs/scene-generation", body: { project_id: state.projectId },
    intro: el("p", { text: "This settles the cast: the scenes are written, then each scene's shots and keyframes are drawn (and the clips, unless the project stops for storyboard approval)." }) });
}

export async function decide(c, action, body) {
  document.activeElement?.blur();  // a focused reason field would keep the card from updating
  if (settlesCast([c], action === "approve") && !(await quoteScenes(`${action === "approve" ? "Approve" : "Reject"} ${c.name}`))) return;
  const { ok, data } = await api("POST", `/api/characters/${c.id}/${action}`, body);
  if (!ok) notify(errorText(data, `Could not ${action} ${c.name}.`), "error");
  else notify(`${c.name} ${action === "approve" ? "approved" : "rejected"}.`);
  soon();
}

export async function approveAll() {
  const pending = (state.project?.characters || []).filter((c) => c.status === "pending");
  if (pending.length && settlesCast(pending, true) && !(await quoteScenes(`Approve ${pending.length} character(s)`))) return;
  for (const c of pending) {
    const { ok, data } = await api("POST", `/api/characters/${c.id}/approve`);
    if (!ok) { notify(errorText(data, `Could not approve ${c.name}.`), "error"); soon(); return; }
  }
  notify(`Approved ${pending.length} character(s).`);
  soon();
}

export async function retryJob(id) {
  if (!(await askToSpend({ title: `Retry job #${id}?`, url: `/api/jobs/${id}/retry`, body: {}, intro: el("p", { text: "The job runs again from where it stopped." }) }))) return;
  const { ok, data } = await api("POST", `/api/jobs/${id}/retry`);
  notify(ok ? `Job #${id} queued again.` : errorText(data, "Could not retry the job."), ok ? "info" : "error");
  soon();
}

export async function approveStoryboard() {
  const button = $("#approve-storyboard");
  button.disabled = true;
  const yes = await askToSpend({ title: "Approve the storyboard and make the clips?", url: "/api/jobs/video-generation", body: { project_id: state.projectId },
    intro: el("p", { text: "Every keyframe becomes a clip (the video model, billed by the second), then the film is cut." }) });
  if (!yes) { button.disabled = false; return; }
  const { ok, data } = await api("POST", `/api/projects/${state.projectId}/storyboard/approve`);
  button.disabled = false;
  notify(ok ? "Storyboard approved: the clips are being generated." : errorText(data, "Could not approve the storyboard."), ok ? "info" : "error");
  soon();
}

export function refreshStale() {
  return updateStale(state.projectId, state.project, soon);
}

export async function generateCharacters() {
  const count = Number($("#character-count").value || 4);
  const button = $("#generate-characters");
  button.disabled = true;
  const yes = await askToSpend({ title: `Generate ${count} character(s)?`, url: "/api/jobs/character-generation", body: { project_id: state.projectId, count },
    intro: el("p", { text: "The text model writes the cast, then the image model draws each portrait. You approve the cast before anything else is made." }) });
  if (!yes) { button.disabled = false; return; }
  const { ok, data } = await api("POST", "/api/jobs/character-generation", { project_id: state.projectId, count });
  if (!ok) { notify(errorText(data, "Could not start character generation."), "error"); button.disabled = false; return; }
  notify("Character generation started: portraits appear below as they are drawn.");
  soon();
}
