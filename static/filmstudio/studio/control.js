// Producer control on one unit: text edited in place, one unit regenerated with instructions
// (after a confirmation, since it spends), the take strip to compare and pick takes, and the
// stale badge with its reasons. Each control marks itself [data-editing] while open, so the
// card around it is not rebuilt under the producer's hands (dom.js reconcile).
import { api, errorText } from "./api.js";
import { confirmDialog, el, notify } from "./dom.js";
import { askToSpend } from "./money.js";

export { confirmDialog };

// --- text edited in place -----------------------------------------------------------------------

// One field of a unit shown as text; a click (or Enter on it) turns it into a box. Enter saves
// (Shift+Enter is a new line in long fields), so does leaving the box; Escape puts the text back.
// A refused save (409 while the unit is being drawn, 400) keeps the box open with the message.
export function editable({ url, field, value, name, multiline = false, label = null, cls = "", maxlength = 5000, onSaved }) {
  const wrap = el("div", { class: `editable ${cls}`.trim(), "data-field": field });
  let current = value || "";

  const show = () => {
    delete wrap.dataset.editing;
    const text = el("span", {
      class: current ? "value" : "value empty", text: current || `Add ${name}…`, tabindex: "0", role: "button",
      title: `Click to edit the ${name}`,
      onclick: edit, onkeydown: (event) => { if (event.key === "Enter") { event.preventDefault(); edit(); } },
    });
    wrap.replaceChildren(label ? el("span", { class: "field-label", text: label }) : "", text);
  };

  function edit() {
    wrap.dataset.editing = "true";
    const box = el(multiline ? "textarea" : "input", { class: "edit-box", maxlength: String(maxlength), "aria-label": name });
    if (!multiline) box.type = "text";
    box.value = current;
    const error = el("div", { class: "field-error", role: "alert", hidden: true });
    const save = el("button", { class: "btn primary small", type: "button", text: "Save" });
    const cancel = el("button", { class: "btn small", type: "button", text: "Cancel" });
    let saving = false;
    let closing = false; // Escape or Cancel: removing the box blurs it, which must not save
    const close = () => { closing = true; show(); };

    const commit = async () => {
      if (saving || closing) return;
      const next = box.value.trim();
      if (next === current.trim()) { show(); return; }
      saving = true;
      box.disabled = save.disabled = true;
      const { ok, status, data } = await api("PATCH", url, { [field]: next });
      saving = false;
      box.disabled = save.disabled = false;
      if (!ok) {
        error.hidden = false;
        error.textContent = errorText(data, `Could not save (${status}).`);
        return;
      }
      current = data && typeof data[field] === "string" ? data[field] : next;
      show();
      onSaved?.();
    };
    // Leaving for the Save or Cancel button is not leaving the field.
    box.addEventListener("blur", (event) => { if (!wrap.contains(event.relatedTarget)) commit(); });
    box.addEventListener("keydown", (event) => {
      if (event.key === "Escape") { event.preventDefault(); close(); }
      else if (event.key === "Enter" && !(multiline && event.shiftKey)) { event.preventDefault(); commit(); }
    });
    save.addEventListener("click", commit);
    cancel.addEventListener("click", close);
    wrap.replaceChildren(label ? el("span", { class: "field-label", text: label }) : "", box,
      el("div", { class: "edit-actions" }, save, cancel, el("span", { class: "hint", text: multiline ? "Enter saves · Shift+Enter new line · Esc cancels" : "Enter saves · Esc cancels" })),
      error);
    box.focus();
    box.setSelectionRange?.(box.value.length, box.value.length);
  }

  show();
  return wrap;
}

// --- regenerating or editing one unit ------------------------------------------------------------

// A "Regenerate" button opening an instructions box; going ahead shows the quote first (the
// same request as a dry run), because it calls the image or video model. `body` is the job request without `instructions`.
export function regenerate({ what, model, url, body, disabled = false, onStarted }) {
  return instructionAction({ what, url, body, disabled, onStarted, kind: "regen", field: "instructions",
    open: "Regenerate…", go: "Regenerate", hint: `Redo the ${what} with your instructions`, title: `Regenerate the ${what}?`,
    placeholder: "Instructions (optional), e.g. “closer, warmer light”", label: `Instructions for the new ${what}`,
    intro: (text) => [
      el("p", { text: `This will call the ${model} model once and add a new take. The current take is kept: you can go back to it in the take strip.` }),
      text ? el("p", { class: "quote" }, el("span", { class: "muted", text: "Instructions: " }), text) : el("p", { class: "muted", text: "No instructions: the same prompt, a new seed." }),
      el("p", { class: "muted small", text: "What depends on it becomes stale; nothing else is redone." }),
    ] });
}

// An "Edit…" button: the image model gets the current image and the producer's instruction
// (POST /api/jobs/image-edit; `body` names the unit), after the quote.
export function editImage({ what, body, disabled = false, onStarted }) {
  return instructionAction({ what, url: "/api/jobs/image-edit", body, disabled, onStarted, kind: "edit-image", field: "instruction", required: true,
    open: "Edit…", go: "Edit", hint: `Change the ${what} by an instruction`, title: `Edit the ${what}?`,
    placeholder: "What to change, e.g. “make it rusty, keep the shape”", label: `Instruction for editing the ${what}`,
    intro: (text) => [
      el("p", { text: "The image model gets the current image and your instruction, once, and makes a new take of it. The current take is kept: you can go back to it in the take strip." }),
      el("p", { class: "quote" }, el("span", { class: "muted", text: "Instruction: " }), text),
      el("p", { class: "muted small", text: "What depends on it becomes stale; nothing else is redone." }),
    ] });
}

function instructionAction({ what, url, body, disabled, onStarted, kind, field, required = false, open: openText, go: goText, hint, title, placeholder, label, intro }) {
  const wrap = el("div", { class: kind === "regen" ? "regenerate" : kind });
  const open = el("button", { class: `btn small ${kind}-open`, type: "button", text: openText, disabled,
    title: disabled ? "Busy: wait for the current job" : hint });
  const closed = () => { delete wrap.dataset.editing; wrap.replaceChildren(open); };
  open.addEventListener("click", () => {
    wrap.dataset.editing = "true";
    const instructions = el("textarea", { class: "instructions", maxlength: "2000", rows: "2", required, placeholder, "aria-label": label });
    const error = el("div", { class: "field-error", role: "alert", hidden: true });
    const go = el("button", { class: `btn primary small ${kind}-go`, type: "submit", text: goText });
    const form = el("form", { class: `${kind}-form`, onsubmit: async (event) => {
      event.preventDefault();
      const text = instructions.value.trim();
      if (required && !text) { error.hidden = false; error.textContent = "Say what to change."; return; }
      go.disabled = true;
      const request = { ...body, [field]: text };
      const yes = await askToSpend({ title, url, body: request, go: "Confirm", intro: intro(text) });
      if (!yes) { go.disabled = false; return; }
      const { ok, data } = await api("POST", url, request);
      go.disabled = false;
      if (!ok) { error.hidden = false; error.textContent = errorText(data, "Could not start the job."); return; }
      notify(`${kind === "regen" ? "Regenerating" : "Editing"} the ${what} (job #${data.id}).`);
      closed();
      onStarted?.(data);
    } },
    instructions,
    el("div", { class: "edit-actions" }, go, el("button", { class: "btn small", type: "button", text: "Cancel", onclick: closed })),
    error);
    wrap.replaceChildren(form);
    instructions.focus();
  });
  closed();
  return wrap;
}

// --- the take strip ----------------------------------------------------------------------------------

const when = (iso) => new Date(iso).toLocaleString(undefined, { dateStyle: "short", timeStyle: "short" });

function media(take, kind, large = false) {
  if (kind === "clip" || kind === "film") {
    // A thumbnail shows a frame from just after the start (the very first may be black).
    return el("video", { src: large ? take.url : `${take.url}#t=0.5`, muted: !large, controls: large, preload: "metadata", playsinline: true });
  }
  return el("img", { src: take.url, alt: `Take ${take.id}`, loading: "lazy" });
}

// The unit's takes, newest first, the current one marked; a click shows a take large with what
// made it, and "Use this take" makes it current (nothing is regenerated).
export function takeStrip({ url, kind, count, what, onSelected }) {
  const strip = el("div", { class: "takes", "data-takes": kind },
    el("div", { class: "takes-head" }, el("span", { text: `Takes (${count})` })));
  const list = el("div", { class: "take-list" });
  strip.append(list);
  const sep = url.includes("?") ? "&" : "?";
  api("GET", `${url}${sep}page_size=20`).catch(() => ({ ok: false, data: null })).then(({ ok, data }) => {
    if (!ok) { list.replaceChildren(el("span", { class: "small muted", text: errorText(data, "Takes unavailable.") })); return; }
    const total = data.count;
    list.replaceChildren(...data.results.map((take, i) => {
      const number = total - i;
      const title = [`Take ${number} · ${when(take.created_at)}`, take.current ? "current" : "click to compare or use",
        take.instructions ? `Instructions: ${take.instructions}` : ""].filter(Boolean).join("\n");
      return el("button", { type: "button", class: take.current ? "take current" : "take", "data-take": take.id,
        "data-current": take.current ? "true" : null, title, "aria-label": `Take ${number}${take.current ? " (current)" : ""}`,
        onclick: () => preview(take, number, kind, what, onSelected) },
        media(take, kind),
        el("span", { class: "take-n", text: take.current ? `#${number} ✓` : `#${number}` }));
    }));
  });
  return strip;
}

async function preview(take, number, kind, what, onSelected) {
  const facts = el("dl", { class: "facts small" },
    el("dt", { text: "Made" }), el("dd", { text: when(take.created_at) }),
    take.instructions ? [el("dt", { text: "Instructions" }), el("dd", { text: take.instructions })] : null,
    take.prompt ? [el("dt", { text: "Prompt" }), el("dd", { class: "prompt-text", text: take.prompt })] : null,
    el("dt", { text: "Model" }), el("dd", { text: [take.provider, take.model, take.seed !== null ? `seed ${take.seed}` : ""].filter(Boolean).join(" · ") || "—" }));
  const body = [el("div", { class: "take-preview" }, media(take, kind, true)), facts];
  if (take.current) { await confirmDialog(`Take ${number} of the ${what} (current)`, body, null); return; }
  body.push(el("p", { class: "muted small", text: "Using it changes nothing else now: what depends on it becomes stale." }));
  if (!(await confirmDialog(`Take ${number} of the ${what}`, body, "Use this take"))) return;
  const { ok, data } = await api("POST", `/api/takes/${take.id}/select`);
  if (!ok) { notify(errorText(data, "Could not select that take."), "error"); return; }
  notify(`Take ${number} is now the current ${what}.`);
  onSelected?.(data);
}

// --- staleness -----------------------------------------------------------------------------------------

export function staleBadge(unit) {
  if (!unit?.stale) return null;
  const reasons = unit.stale_reasons || [];
  return el("span", { class: "badge s-stale", "data-stale": "true", title: reasons.length ? `Out of date: ${reasons.join("; ")}` : "Out of date", text: "stale" });
}

export function staleNote(unit) {
  if (!unit?.stale || !unit.stale_reasons?.length) return null;
  return el("p", { class: "stale-note", text: unit.stale_reasons.join("; ") });
}
