// The Autopilot panel: an agent run drives the whole pipeline towards a goal and stops at its
// checkpoints (the cast always, the storyboard if asked, a paid step over the threshold, an approval
// the budget cannot pay for: a budget field beside Approve) for the
// producer's Approve or Revise (with notes). Its log comes from the run's event stream
// (/api/agent-runs/{id}/events): read whole from the run first, then live; a reconnect replays
// what was missed (Last-Event-ID) and every event shows once (by its seq). State is the server's.
import { api, errorText } from "./api.js";
import { $, badge, confirmDialog, el, label, notify } from "./dom.js";

const ACTIVE = ["running", "awaiting_decision"];
const TYPES = ["status", "log", "action", "checkpoint", "decision", "complete", "error"];
// Events that change what the panel shows besides the log: the run is read again.
const CHANGES = new Set(["status", "checkpoint", "decision", "complete", "error"]);
const pilot = { projectId: null, run: null, source: null, seen: new Set(), timer: null, busy: false };

const usd = (value) => (value === null || value === undefined ? "—" : `$${Number(value).toFixed(2)}`);

// The project shown changed (or was closed, `id` null): show its latest run, or the form.
export async function showAutopilot(id) {
  if (pilot.projectId === id) return;
  stop();
  pilot.projectId = id;
  pilot.run = null;
  clearLog();
  renderRun(null);
  if (!id) return;
  const { ok, data } = await api("GET", `/api/projects/${id}/agent-runs`);
  if (id !== pilot.projectId) return;
  if (ok && data.length) await follow(data[0].id);
}

function stop() {
  if (pilot.source) { pilot.source.close(); pilot.source = null; }
  clearTimeout(pilot.timer);
  setLive("");
}

function clearLog() {
  pilot.seen = new Set();
  $("#autopilot-log").replaceChildren();
}

async function follow(runId) {
  stop();
  clearLog();
  await reread(runId);
  if (pilot.run?.id === runId && ACTIVE.includes(pilot.run.status)) listen(runId);
}

async function reread(runId) {
  const { ok, data } = await api("GET", `/api/agent-runs/${runId}`);
  if (!ok || data.project_id !== pilot.projectId) return;
  pilot.run = data;
  for (const event of data.events || []) logEvent(event.type, { ...event.data, seq: event.data?.seq ?? event.id });
  renderRun(data);
  if (!ACTIVE.includes(data.status)) stop();
}

function soonReread() {
  clearTimeout(pilot.timer);
  pilot.timer = setTimeout(() => { if (pilot.run) reread(pilot.run.id); }, 120);
}

function listen(runId) {
  const source = new EventSource(`/api/agent-runs/${runId}/events`);
  pilot.source = source;
  for (const type of TYPES) {
    source.addEventListener(type, (message) => {
      let data;
      try { data = JSON.parse(message.data); } catch { return; }
      if (data.run_id !== runId) return;
      logEvent(type, data);
      if (CHANGES.has(type)) soonReread();
    });
  }
  // What happened between reading the run and the stream opening is not replayed: read again.
  source.addEventListener("stream-open", () => { setLive("live"); soonReread(); });
  source.addEventListener("stream-error", () => { source.close(); setLive("offline"); });
  source.onerror = () => setLive(source.readyState === EventSource.CLOSED ? "offline" : "reconnecting…");
}

function setLive(text) {
  $("#autopilot-live").textContent = text;
  $("#autopilot").dataset.live = text || "off";
}

// --- the log ------------------------------------------------------------------------------------

function summary(args) {
  const text = Object.entries(args || {}).map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`).join(", ");
  return text.length > 120 ? `${text.slice(0, 117)}...` : text;
}

function line(type, d) {
  switch (type) {
    case "status": return `Status: ${label(d.status || "")}${d.project_status ? ` (project ${label(d.project_status)})` : ""}`;
    case "log": return d.text || "";
    case "action": {
      const outcome = d.result?.error ? `refused: ${d.result.error}` : d.held ? "held for your decision" : "done";
      return `${d.name}(${summary(d.args)}): ${outcome}`;
    }
    case "checkpoint": return `Checkpoint, ${d.kind}: ${d.summary}`;
    case "decision": return `You: ${d.decision}${d.notes ? `, "${d.notes}"` : ""}`;
    case "complete": return `Complete: the film is ${Number(d.final_duration || 0).toFixed(1)} s; spent ${usd(d.spent_usd)}`;
    case "error": return `Failed: ${d.message}`;
    default: return type;
  }
}

function logEvent(type, data) {
  const seq = data.seq;
  if (seq !== undefined && seq !== null) {
    if (pilot.seen.has(seq)) return;
    pilot.seen.add(seq);
  }
  const log = $("#autopilot-log");
  const item = el("li", { class: `ap-${type}${data.result?.error ? " refused" : ""}`, "data-type": type, "data-seq": seq ?? null, text: line(type, data) });
  // In seq order, whatever order the stream and the reads delivered them in.
  const after = Array.from(log.children).find((node) => Number(node.dataset.seq) > Number(seq));
  log.insertBefore(item, after || null);
  log.scrollTop = log.scrollHeight;
}

// --- the run ------------------------------------------------------------------------------------

function renderRun(run) {
  const active = run && ACTIVE.includes(run.status);
  $("#autopilot-form").hidden = Boolean(active);
  const box = $("#autopilot-run");
  box.hidden = !run;
  $("#autopilot").dataset.status = run ? run.status : "none";
  if (!run) { box.replaceChildren(); return; }
  const head = el("div", { class: "row between" },
    el("span", {}, el("strong", { text: `Run #${run.id} ` }), badge(run.status), el("span", { class: "small muted", text: ` ${run.planner} planner` })),
    el("span", { class: "small", id: "autopilot-spent", text: `Spent ${usd(run.spent_usd)}${run.budget_usd === null ? "" : ` of ${usd(run.budget_usd)}`}` }));
  const parts = [head, el("p", { class: "small goal", text: `Goal: ${run.goal}` })];
  if (run.status === "awaiting_decision" && run.checkpoint) parts.push(checkpointBox(run));
  if (run.status === "failed" && run.error) parts.push(el("p", { class: "field-error", text: run.error }));
  if (active) parts.push(el("div", { class: "row" }, el("button", { class: "btn danger small", type: "button", id: "autopilot-cancel", text: "Cancel run", onclick: () => cancel(run) })));
  box.replaceChildren(...parts);
}

function checkpointBox(run) {
  const cp = run.checkpoint;
  const notes = el("textarea", { id: "autopilot-notes", maxlength: "2000", rows: "2", placeholder: "What to change, e.g. “redo Mara's portrait: older, in a raincoat”", "aria-label": "Notes for the revision" });
  notes.value = typed("#autopilot-notes");  // the run re-read (an event) keeps what is being typed
  const error = el("div", { class: "field-error", role: "alert", hidden: true });
  return el("div", { class: "panel checkpoint", id: "autopilot-checkpoint", "data-kind": cp.kind },
    el("h3", { text: `Checkpoint: ${cp.kind}` }),
    el("p", { class: "summary", text: cp.summary }),
    el("p", { class: "small", id: "autopilot-estimate", text: `Approving starts about ${usd(cp.estimate?.total_usd)} of work.` }),
    cp.kind === "budget" ? budgetRow(run, error) : "",
    el("div", { class: "row" },
      el("button", { class: "btn primary small", type: "button", id: "autopilot-approve", text: "Approve", onclick: () => decide(run, "approve", "", error) }),
      el("button", { class: "btn small", type: "button", id: "autopilot-revise", text: "Revise", onclick: () => decide(run, "revise", notes.value.trim(), error) })),
    notes, error);
}

// At a budget checkpoint: the project's budget raised here (PATCH, checked by the server), then approved.
function budgetRow(run, error) {
  const input = el("input", { id: "autopilot-raise-budget", type: "number", min: "0", step: "0.01", "aria-label": "New budget of the project, USD", placeholder: "New budget, USD" });
  input.value = typed("#autopilot-raise-budget");
  return el("div", { class: "row" }, input,
    el("button", { class: "btn primary small", type: "button", id: "autopilot-raise", text: "Raise the budget and approve", onclick: () => raiseAndApprove(run, input.value, error) }));
}

function typed(selector) {
  return document.querySelector(selector)?.value || "";
}

async function raiseAndApprove(run, value, error) {
  if (value === "") { error.hidden = false; error.textContent = "Give the project's new budget."; return; }
  const { ok, data } = await api("PATCH", `/api/projects/${run.project_id}`, { budget_usd: Number(value) });
  if (!ok) {
    // also as a notice: an event arriving now re-renders the checkpoint (and its error line)
    const text = errorText(data, "Could not change the budget.");
    error.hidden = false; error.textContent = text; notify(text, "error"); return;
  }
  await decide(run, "approve", "", error);
}

async function decide(run, decision, notes, error) {
  if (decision === "revise" && !notes) { error.hidden = false; error.textContent = "Say what to revise in the notes."; return; }
  if (pilot.busy) return;
  pilot.busy = true;
  const { ok, data } = await api("POST", `/api/agent-runs/${run.id}/decide`, { decision, ...(notes ? { notes } : {}) });
  pilot.busy = false;
  if (!ok) { error.hidden = false; error.textContent = errorText(data, "Could not send the decision."); return; }
  notify(decision === "approve" ? "Approved: the autopilot goes on." : "Sent: the autopilot revises, then asks again.");
  soonReread();
}

async function cancel(run) {
  if (!(await confirmDialog(`Cancel run #${run.id}?`, el("p", { text: "The run stops, with the jobs it started; what is made so far stays." }), "Cancel run"))) return;
  const { ok, data } = await api("DELETE", `/api/agent-runs/${run.id}`);
  notify(ok ? `Run #${run.id} cancelled.` : errorText(data, "Could not cancel the run."), ok ? "info" : "error");
  soonReread();
}

export async function startRun(event) {
  event.preventDefault();
  const errors = $("#autopilot-errors");
  errors.replaceChildren();
  const goal = $("#autopilot-goal").value.trim();
  const budget = $("#autopilot-budget").value;
  const body = { goal, checkpoints: $("#autopilot-storyboard").checked ? ["storyboard"] : [] };
  if (budget !== "") body.budget_usd = Number(budget);
  const yes = await confirmDialog("Start the autopilot?", [
    el("p", { text: "The director writes and draws the cast (the text model once, a portrait each), then stops for your approval; every later stop shows what approving would cost." }),
    el("p", { class: "quote", text: goal }),
    el("p", { class: "small muted", text: body.budget_usd === undefined ? "No budget of its own: the project's applies." : `It may spend up to ${usd(body.budget_usd)}.` }),
  ], "Start");
  if (!yes) return;
  const button = $("#autopilot-start");
  button.disabled = true;
  const { ok, data } = await api("POST", `/api/projects/${pilot.projectId}/agent-runs`, body);
  button.disabled = false;
  if (!ok) { errors.replaceChildren(el("li", { text: errorText(data, "The run could not start.") })); return; }
  $("#autopilot-form").reset();
  notify(`Autopilot run #${data.id} started.`);
  await follow(data.id);
}
