// The director panel: sends a turn with the page the person is on, streams the answer, and
// carries out the UI tools (navigate, highlight, open_modal) on this page. The pages and which
// tools are the client's come from GET /api/director/pages.
import { api, directorPages, errorText, postTurn, readEvents } from "./api.js";
import { $, badge, el, flash, notify } from "./dom.js";
import { decide, selectProject, showNewProject, soon, state } from "./project.js";

const director = { sessionId: null, sending: false, pageIds: [], uiTools: new Set() };

export const pagesReady = directorPages().then((pages) => {
  director.pageIds = pages.map((page) => page.id);
  director.uiTools = new Set(pages.flatMap((page) => page.tools.filter((t) => t.kind === "ui").map((t) => t.name)));
});

function currentPage() {
  if (!state.projectId) return "dashboard";
  let best = "project";
  for (const page of director.pageIds) {
    const section = page === "dashboard" ? null : document.getElementById(page);
    if (section && section.getBoundingClientRect().top <= window.innerHeight * 0.35) best = page;
  }
  return best;
}

// Scroll to a page's section (the section links, and navigate).
export function goTo(page) {
  const target = document.getElementById(page);
  if (!target) return false;
  if (page === "dashboard") $("#dashboard").hidden = false;
  target.scrollIntoView({ behavior: "smooth", block: "start" });
  flash(target);
  document.body.dataset.navigated = page;
  return true;
}

// navigate {page, project_id?}: switch project if asked, then scroll to the page's section.
function navigate(args) {
  const page = args.page;
  if (!director.pageIds.includes(page) || !document.getElementById(page)) return false;
  if (args.project_id && Number(args.project_id) !== state.projectId) selectProject(Number(args.project_id)).then(() => goTo(page));
  else goTo(page);
  return true;
}

// highlight {target}: "character:12", "scene:3", "frame:7", "job:9", "approve-button",
// "generate-button", an element id, or a CSS selector.
const ALIASES = {
  "approve-button": ["#approve-all:not([hidden])", ".character .approve"],
  "reject-button": [".character .reject"],
  "generate-button": ["#generate-characters"],
  "new-project": ["#project-form"],
  "film": ["#film-box"],
  "final-film": ["#film-box"],
  "progress": ["#project-progress-bar"],
  "status": ["#project-status"],
};

function findElement(args) {
  const ref = String(args.target ?? args.element_id ?? args.id ?? args.selector ?? "").trim();
  if (!ref) return null;
  const unit = /^(character|scene|frame|job|clip|video)\s*[:#_-]\s*(\d+)$/i.exec(ref);
  if (unit) {
    const kind = unit[1].toLowerCase() === "video" ? "clip" : unit[1].toLowerCase();
    return document.getElementById(`${kind}-${unit[2]}`);
  }
  for (const selector of ALIASES[ref.toLowerCase()] || []) {
    const node = document.querySelector(selector);
    if (node) return node;
  }
  const byId = document.getElementById(ref.replace(/^#/, ""));
  if (byId) return byId;
  try { return document.querySelector(ref); } catch { return null; }
}

function highlight(args) {
  const node = findElement(args);
  if (!node) return false;
  const folded = node.closest("details");
  if (folded) folded.open = true;
  node.scrollIntoView({ behavior: "smooth", block: "center" });
  flash(node, 6000);
  document.body.dataset.highlighted = node.id || node.className;
  return true;
}

// open_modal {modal, id?}: the app's dialogs, built from the project the page already holds.
function modal(title, ...body) {
  $("#modal-title").textContent = title;
  $("#modal-body").replaceChildren(...body);
  const dialog = $("#modal");
  if (!dialog.open) dialog.showModal();
  return true;
}

const closeModal = () => $("#modal").close();

function characterModal(c, rejecting) {
  const reason = el("input", { type: "text", maxlength: "2000", placeholder: "Why? (optional)" });
  const buttons = el("div", { class: "row" });
  if (c.status !== "approved" && !rejecting) buttons.append(el("button", { class: "btn ok", type: "button", text: "Approve", onclick: () => { closeModal(); decide(c, "approve"); } }));
  if (c.status !== "rejected") buttons.append(el("button", { class: "btn danger", type: "button", text: "Reject", onclick: () => { closeModal(); decide(c, "reject", { reason: reason.value.trim() }); } }));
  return modal(rejecting ? `Reject ${c.name}?` : c.name,
    c.image_url ? el("img", { src: c.image_url, alt: `Portrait of ${c.name}`, style: "width:12rem;border-radius:6px" }) : "",
    el("p", {}, badge(c.status), ` ${c.role || ""}`),
    el("p", { text: c.description }),
    c.status !== "rejected" ? reason : "",
    buttons);
}

async function jobModal(id) {
  const { ok, data } = await api("GET", `/api/jobs/${id}`);
  if (!ok) return modal("Job", el("p", { text: errorText(data, "No such job.") }));
  const retry = ["failed", "cancelled"].includes(data.status)
    ? el("button", { class: "btn primary", type: "button", text: "Retry", onclick: async () => {
      const r = await api("POST", `/api/jobs/${id}/retry`);
      closeModal();
      notify(r.ok ? `Job #${id} queued again.` : errorText(r.data, "Could not retry."), r.ok ? "info" : "error");
    } }) : "";
  return modal(`Job #${data.id}: ${data.type}`, el("p", {}, badge(data.status), ` ${data.progress}% · attempt ${data.attempts}`),
    data.error ? el("p", { class: "small", style: "color:var(--bad)", text: data.error }) : "", retry);
}

function editProjectModal() {
  const p = state.project;
  if (!p) return false;
  const fields = ["title", "logline", "synopsis", "genre", "style"].map((name) => {
    const input = el(name === "logline" || name === "synopsis" ? "textarea" : "input", { name, "aria-label": name });
    input.value = p[name] || "";
    return el("div", {}, el("label", { text: name }), input);
  });
  const form = el("form", { class: "form-grid", onsubmit: async (event) => {
    event.preventDefault();
    const body = Object.fromEntries(new FormData(event.target).entries());
    const r = await api("PATCH", `/api/projects/${p.id}`, body);
    if (!r.ok) { notify(errorText(r.data, "Could not save."), "error"); return; }
    closeModal();
    soon();
  } }, fields, el("div", {}, el("button", { class: "btn primary", type: "submit", text: "Save" })));
  return modal("Edit project", form);
}

function openModal(args) {
  const id = Number(args.id);
  const character = state.project?.characters.find((c) => c.id === id);
  switch (args.modal) {
    case "new-project": showNewProject(); return true;
    case "edit-project": return editProjectModal();
    case "character": return character ? characterModal(character, false) : false;
    case "reject-character": return character ? characterModal(character, true) : false;
    case "job": if (id) { jobModal(id); return true; } return false;
    case "film": return state.project?.final_video_url
      ? modal(state.project.title, el("video", { src: state.project.final_video_url, controls: true, class: "film" }))
      : modal("Final film", el("p", { text: "The film is not stitched yet." }));
    default: return args.title ? modal(args.title, el("p", { text: args.body || args.text || "" })) : false;
  }
}

const UI_TOOL_HANDLERS = { navigate, highlight, open_modal: openModal };

function runTool(name, args) {
  const handler = UI_TOOL_HANDLERS[name];
  return handler ? handler(args) : false;
}

// --- the conversation ------------------------------------------------------------------------

function bubble(role, text) {
  const node = el("div", { class: `bubble ${role}`, text });
  const log = $("#director-log");
  log.append(node);
  // Scroll the conversation, not the window: the page in view is what the director works on.
  log.scrollTop = log.scrollHeight;
  return node;
}

function handleDirectorEvent({ event, data }, reply) {
  if (event === "start") {
    director.sessionId = data.session_id ?? director.sessionId;
  } else if (event === "message") {
    reply.text.textContent += data.delta ?? "";
  } else if (event === "function_call") {
    const args = data.args || {};
    const ui = director.uiTools.has(data.name);
    const done = ui ? runTool(data.name, args) : true;
    const detail = args.page || args.target || args.modal || args.selector || "";
    reply.tools.append(el("span", { class: "tool-call", "data-tool": data.name, title: JSON.stringify(args), text: `${data.name}${detail ? ` → ${detail}` : ""}${done ? "" : " (not found)"}` }));
    if (!ui) soon(); // a service tool changed the project: re-read it
  } else if (event === "confirm") {
    reply.tools.append(confirmBox(data));
  } else if (event === "complete") {
    if (data.text) reply.text.textContent = data.text;
    reply.node.dataset.complete = "true";
    return true;
  } else if (event === "error") {
    reply.node.classList.add("error");
    reply.text.textContent = data.message || "The director could not answer.";
    return true;
  }
  return false;
}

// An action that spends money or replaces content: the director asks, the producer answers.
function estimateText(estimate) {
  if (!estimate || typeof estimate !== "object") return "";
  const items = Array.isArray(estimate.items)
    ? estimate.items.map((i) => `${i.count} ${i.stage}`)
    : Object.entries(estimate).filter(([, n]) => typeof n === "number").map(([k, n]) => `${k.replace(/_/g, " ")}: ${n}`);
  return items.length ? `Paid calls: ${items.join(", ")}.` : "";
}

function confirmBox(data) {
  const box = el("div", { class: "director-confirm", "data-confirm": data.name || "" });
  const yes = el("button", { class: "btn primary small", type: "button", "data-confirm-yes": "", text: "Confirm" });
  const no = el("button", { class: "btn small", type: "button", "data-confirm-no": "", text: "No" });
  const sessionId = director.sessionId; // the session that asked, whatever is open later
  const settle = (text) => {
    yes.remove(); no.remove();
    box.append(el("span", { class: "small muted", text }));
  };
  yes.addEventListener("click", async () => {
    if (director.sending) { notify("The director is still answering; confirm once it is done."); return; }
    yes.disabled = no.disabled = true;
    const ok = await runTurn({ session_id: sessionId, token: data.token }, "/api/director/confirm");
    if (ok) settle("Confirmed.");
    else yes.disabled = no.disabled = false; // refused (used, expired): the reply says why
  });
  no.addEventListener("click", () => settle("Not done: nothing was spent."));
  box.append(
    el("div", { class: "small", text: data.summary || "The director asks before it acts." }),
    el("div", { class: "small muted", text: estimateText(data.estimate) }),
    el("div", { class: "row" }, [yes, no]),
  );
  return box;
}

export async function askDirector(event) {
  event.preventDefault();
  const input = $("#director-input");
  const message = input.value.trim();
  if (!message || director.sending) return;
  bubble("user", message);
  input.value = "";
  await pagesReady;
  const body = { message, page: currentPage() };
  if (state.projectId) body.project_id = state.projectId;
  if (director.sessionId) body.session_id = director.sessionId;
  await runTurn(body);
}

// One streamed turn (a message, or a confirmation's rest of the turn) into a new reply bubble.
async function runTurn(body, url) {
  if (director.sending) return;
  director.sending = true;
  $("#director-send").disabled = true;
  $("#director-state").textContent = "thinking…";
  const text = el("span", { class: "text" });
  const tools = el("div", { class: "tools" });
  const node = bubble("assistant", "");
  node.append(text, tools);
  const reply = { node, text, tools };
  try {
    const response = await postTurn(body, url);
    if (!response.ok || !response.body) {
      const data = await response.json().catch(() => null);
      handleDirectorEvent({ event: "error", data: { message: errorText(data, `The director is unavailable (HTTP ${response.status}).`) } }, reply);
      return false;
    }
    const finished = await readEvents(response, (parsed) => handleDirectorEvent(parsed, reply));
    if (!finished && !reply.node.dataset.complete) handleDirectorEvent({ event: "error", data: { message: "The answer was cut off." } }, reply);
    return true;
  } catch (error) {
    handleDirectorEvent({ event: "error", data: { message: `The director is unreachable: ${error.message}` } }, reply);
  } finally {
    director.sending = false;
    $("#director-send").disabled = false;
    $("#director-state").textContent = "";
  }
}
