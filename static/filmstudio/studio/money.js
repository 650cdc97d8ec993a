// Money on the studio page: the quote shown before each paid step (the same request with
// `dry_run: true`; Confirm sends it, Cancel spends nothing), and spent / budget on the project
// (a bar, the budget edited in place, and what `paused_budget` means with a way out: raising
// the budget resumes the paused work).
import { api, errorText } from "./api.js";
import { $, confirmDialog, el, notify } from "./dom.js";

export function usd(value) {
  const n = Number(value) || 0;
  if (n > 0 && n < 0.005) return "< $0.01";
  return `$${n.toFixed(2)}`;
}

const STAGES = { characters: "Cast (text)", portraits: "Portraits", scenes: "Scenes (text)", frames: "Shot lists (text)", keyframes: "Keyframes", clips: "Clips" };
const whole = (n) => Math.round(n).toLocaleString("en-US");

function countText(item) {
  const n = item.count;
  if (item.unit === "image") return `${whole(n)} image${n === 1 ? "" : "s"}`;
  if (item.unit === "video_second") return `${whole(n)} s of video`;
  if (item.unit === "input_tokens") return `${whole(n)} tokens in`;
  if (item.unit === "output_tokens") return `${whole(n)} tokens out`;
  return `${whole(n)} ${item.unit.replaceAll("_", " ")}`;
}

// The estimate document ({total_usd, items, spent_usd, budget_usd, remaining_usd}) as a table:
// one line per stage, what it counts, the models, the dollars; then the total and the budget.
export function quoteBlock(estimate) {
  const stages = new Map();
  for (const item of estimate?.items || []) {
    const line = stages.get(item.stage) || { counts: [], models: new Set(), usd: 0 };
    line.counts.push(countText(item));
    line.models.add(`${item.provider} · ${item.model}`);
    line.usd += item.usd;
    stages.set(item.stage, line);
  }
  const total = Number(estimate?.total_usd) || 0;
  const left = estimate?.remaining_usd;
  const over = typeof left === "number" && total > left;
  const rows = Array.from(stages, ([stage, line]) =>
    el("tr", { "data-stage": stage },
      el("td", { text: STAGES[stage] || stage }),
      el("td", { class: "small", text: line.counts.join(" + ") }),
      el("td", { class: "small muted", text: Array.from(line.models).join(", ") }),
      el("td", { class: "right nowrap", text: usd(line.usd) })));
  const budget = estimate?.budget_usd;
  return el("div", { class: over ? "quote-box over" : "quote-box", "data-quote-total": String(total) },
    rows.length ? el("table", { class: "quote-items" }, el("tbody", {}, rows)) : el("p", { class: "small muted", text: "No model call." }),
    el("p", { class: "quote-total" }, el("strong", { text: `Estimated cost: ${usd(total)}` }),
      total === 0 && rows.length ? el("span", { class: "small muted", text: " (these models cost nothing on the rate card)" }) : ""),
    el("p", { class: "small muted quote-budget", text: budget === null || budget === undefined
      ? `Spent so far on this project: ${usd(estimate?.spent_usd)} · no budget set.`
      : `Spent so far: ${usd(estimate?.spent_usd)} of the ${usd(budget)} budget · ${usd(Math.max(left, 0))} left.` }),
    over ? el("p", { class: "quote-over", role: "alert", text: `This needs more than the ${usd(Math.max(left, 0))} left: it would be refused. Raise the budget on the project first.` }) : "",
    el("p", { class: "small muted", text: "A retry after a provider error is charged again when it happens." }));
}

// Quote `body` at `url` (a job POST with `dry_run: true`: nothing starts), show it with `intro`
// and resolve true only when the producer confirms. A refused quote is a notice and a no.
export async function askToSpend({ title, intro = [], url, body, go = "Confirm" }) {
  const dry = await api("POST", url, { ...body, dry_run: true });
  if (!dry.ok) { notify(errorText(dry.data, "Could not work out what this would cost."), "error"); return false; }
  return confirmDialog(title, [...[].concat(intro), quoteBlock(dry.data.estimate)], go);
}

// --- spent / budget on the project --------------------------------------------------------------

const pct = (spent, budget) => (budget > 0 ? Math.min(100, (spent / budget) * 100) : spent > 0 ? 100 : 0);

// The project's money line under its status: spent, the budget and a bar; a click on the
// budget edits it (PATCH budget_usd). While `paused_budget` it says why and how to go on.
export function renderMoney(p, soon) {
  const box = $("#money");
  if (!box) return;
  const sig = JSON.stringify([p.id, p.spent_usd, p.budget_usd, p.status]);
  // an open budget editor stays while it is this project's
  const editing = box.querySelector("[data-editing]") && box.dataset.project === String(p.id);
  if (box.dataset.sig === sig || editing) return;
  box.dataset.sig = sig;
  box.dataset.project = String(p.id);
  const spent = Number(p.spent_usd) || 0;
  const budget = p.budget_usd === null || p.budget_usd === undefined ? null : Number(p.budget_usd);
  const paused = p.status === "paused_budget";
  const share = budget === null ? 0 : pct(spent, budget);
  const line = el("div", { class: "row money-line" },
    el("span", { class: "small", id: "money-spent", "data-spent": String(spent), text: budget === null ? `Spent ${usd(spent)} · no budget` : `Spent ${usd(spent)} of ${usd(budget)}` }),
    budget === null ? "" : el("div", { class: `progress money-bar${paused || share >= 100 ? " full" : share >= 80 ? " high" : ""}`, id: "money-bar", title: `${share.toFixed(0)}% of the budget` },
      el("span", { style: `width:${share}%` })),
    budget === null ? "" : el("span", { class: "small muted", text: `${usd(Math.max(budget - spent, 0))} left` }),
    budgetEditor(p, budget, soon));
  const parts = [line];
  if (paused) parts.push(pausedNote(p, spent, budget, soon));
  box.replaceChildren(...parts);
  box.hidden = false;
}

async function saveBudget(projectId, value, soon) {
  const { ok, data, status } = await api("PATCH", `/api/projects/${projectId}`, { budget_usd: value });
  if (!ok) return errorText(data, `Could not save the budget (${status}).`);
  notify(data.status === "paused_budget" ? `Budget ${usd(data.budget_usd)}: still paused, the next step does not fit.`
    : value === null ? "Budget removed." : `Budget set to ${usd(data.budget_usd)}.`);
  soon();
  return null;
}

function budgetEditor(p, budget, soon) {
  const wrap = el("span", { class: "budget-edit" });
  const open = el("button", { class: "btn small", type: "button", id: "budget-open", text: budget === null ? "Set a budget…" : "Change budget…" });
  const closed = () => { delete wrap.dataset.editing; wrap.replaceChildren(open); };
  open.addEventListener("click", () => {
    wrap.dataset.editing = "true";
    const input = el("input", { type: "number", min: "0", step: "0.01", id: "budget-input", "aria-label": "Budget in US dollars", style: "width:7rem", placeholder: "none" });
    input.value = budget === null ? "" : String(budget);
    const error = el("span", { class: "field-error", role: "alert", hidden: true });
    const form = el("form", { class: "row budget-form", onsubmit: async (event) => {
      event.preventDefault();
      const text = input.value.trim();
      const value = text === "" ? null : Number(text);
      const refused = await saveBudget(p.id, value, soon);
      if (refused) { error.hidden = false; error.textContent = refused; return; }
      closed();
      delete $("#money").dataset.sig;
    } },
    el("label", { class: "inline small", for: "budget-input", text: "Budget $" }), input,
    el("button", { class: "btn primary small", type: "submit", id: "budget-save", text: "Save" }),
    el("button", { class: "btn small", type: "button", text: "Cancel", onclick: closed }),
    el("span", { class: "small muted", text: "empty: no budget" }), error);
    wrap.replaceChildren(form);
    input.focus();
    input.select();
  });
  closed();
  return wrap;
}

// Paused rather than exceed: what is needed to finish (GET /estimate) and a one-click raise.
function pausedNote(p, spent, budget, soon) {
  const why = budget !== null && budget < spent
    ? `The budget of ${usd(budget)} is below what is already spent (${usd(spent)}), so nothing more is spent.`
    : `The next step needs more than the ${usd(Math.max((budget ?? 0) - spent, 0))} left of the ${usd(budget)} budget, so nothing more is spent.`;
  const note = el("div", { class: "budget-paused", id: "budget-paused", role: "status" },
    el("strong", { text: "Paused to stay within the budget." }),
    el("span", { class: "small", text: ` ${why} Raise the budget and the paused work resumes where it stopped.` }));
  const offer = el("div", { class: "row" });
  note.append(offer);
  api("GET", `/api/projects/${p.id}/estimate`).then(({ ok, data }) => {
    if (!ok) return;
    const needed = Math.ceil((spent + (Number(data.total_usd) || 0)) * 1.1 * 100) / 100;
    const raise = el("button", { class: "btn primary small", type: "button", id: "budget-raise", text: `Raise the budget to ${usd(needed)}` });
    raise.addEventListener("click", async () => {
      raise.disabled = true;
      const refused = await saveBudget(p.id, needed, soon);
      if (refused) { raise.disabled = false; notify(refused, "error"); }
    });
    offer.replaceChildren(
      el("span", { class: "small muted", text: `Finishing the film is quoted at ${usd(data.total_usd)} more (the offer adds 10 %).` }), raise);
  });
  return note;
}
