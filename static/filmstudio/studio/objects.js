// The project's objects (props and places that must look the same in every shot): each with
// its reference image, name and description edited in place, the image redrawn (Regenerate…)
// or edited by an instruction (Edit…), its takes, the scenes that use it; a form adds one.
// On each scene card, which objects it shows, editable (PATCH object_ids).
import { api, errorText } from "./api.js";
import { $, confirmDialog, el, notify, reconcile } from "./dom.js";
import { editable, editImage, regenerate, staleBadge, staleNote, takeStrip } from "./control.js";

const ACTIVE = ["queued", "running", "waiting"];

export function renderObjects(p, actions) {
  const inScenes = (o) => p.scenes.filter((s) => s.object_ids.includes(o.id)).map((s) => s.order);
  reconcile($("#object-list"), p.objects, (o) => `object-${o.id}`,
    (o) => JSON.stringify([o.name, o.description, o.image_url, o.take_id, o.takes_count, o.stale, o.stale_reasons, inScenes(o)]),
    (o) => objectCard(o, inScenes(o), actions));
  $("#objects-empty").hidden = p.objects.length > 0;
  const undrawn = p.objects.filter((o) => !o.image_url).map((o) => o.id);
  if (undrawn.length) drawingStates(p.id, undrawn);
}

function objectCard(o, scenes, actions) {
  const url = `/api/objects/${o.id}`;
  const what = `reference image of ${o.name}`;
  return el("div", { class: "card object", id: `object-${o.id}`, "data-object": o.id, "data-stale": o.stale ? "true" : null },
    o.image_url ? el("img", { class: "portrait", src: o.image_url, alt: `Reference image of ${o.name}` })
      : el("div", { class: "no-portrait", "data-drawing": o.id, text: "No reference image yet" }),
    o.takes_count > 1 ? takeStrip({ url: `${url}/takes`, kind: "reference", count: o.takes_count, what, onSelected: actions.soon }) : null,
    el("h3", {}, editable({ url, field: "name", value: o.name, name: `name of ${o.name}`, cls: "title", maxlength: 120, onSaved: actions.soon }), " ", staleBadge(o)),
    staleNote(o),
    editable({ url, field: "description", value: o.description, name: `description of ${o.name}`, multiline: true, onSaved: actions.soon }),
    el("p", { class: "small muted in-scenes", text: scenes.length ? `In scene${scenes.length > 1 ? "s" : ""} ${scenes.join(", ")}` : "In no scene yet" }),
    el("div", { class: "row" },
      regenerate({ what, model: "image", url: "/api/jobs/reference-generation", body: { object_id: o.id }, onStarted: () => { drawing.key = null; actions.soon(); } }),
      o.image_url ? editImage({ what, body: { object_id: o.id }, onStarted: actions.soon }) : null,
      el("button", { class: "btn danger small delete-object", type: "button", text: "Delete", onclick: () => deleteObject(o, actions) })));
}

// An object without an image: is its drawing under way, or did it fail? (The recent jobs.)
// Asked again only when the objects without an image change, while a drawing was under way at
// the last answer, or after a redraw is started: not on every render (a failed one forever);
// a card drawn again meanwhile shows the last answer.
const drawing = { key: null, active: false, newest: new Map() };

async function drawingStates(projectId, undrawn) {
  const key = `${projectId}:${undrawn.join(",")}`;
  if (key !== drawing.key || drawing.active) {
    drawing.key = key;
    const { ok, data } = await api("GET", `/api/jobs?project_id=${projectId}&type=reference-generation&page_size=50`);
    if (!ok) { drawing.key = null; return; }
    drawing.newest = new Map();
    for (const job of data.results) if (!drawing.newest.has(job.target.id)) drawing.newest.set(job.target.id, job);
    drawing.active = undrawn.some((id) => ACTIVE.includes(drawing.newest.get(id)?.status));
  }
  for (const box of document.querySelectorAll("[data-drawing]")) {
    const job = drawing.newest.get(Number(box.dataset.drawing));
    if (!job) continue;
    box.textContent = ACTIVE.includes(job.status) ? "Drawing the reference image…" : job.status === "failed" ? `Drawing failed: ${job.error || "see the jobs"}` : box.textContent;
    box.dataset.state = job.status;
  }
}

async function deleteObject(o, actions) {
  const yes = await confirmDialog(`Delete ${o.name}?`, el("p", { text: "Its reference images go with it; the scenes that list it no longer do, and their keyframes become stale." }), "Delete");
  if (!yes) return;
  const { ok, data } = await api("DELETE", `/api/objects/${o.id}`);
  notify(ok ? `${o.name} deleted.` : errorText(data, `Could not delete ${o.name}.`), ok ? "info" : "error");
  actions.soon();
}

export async function addObject(event, projectId, soon) {
  event.preventDefault();
  const form = event.target;
  const errors = $("#object-form-errors");
  errors.replaceChildren();
  const body = { name: $("#object-name").value.trim(), description: $("#object-description").value.trim() };
  const button = $("#add-object");
  button.disabled = true;
  const { ok, data } = await api("POST", `/api/projects/${projectId}/objects`, body);
  button.disabled = false;
  if (!ok) { errors.replaceChildren(el("li", { text: errorText(data, "The object could not be added.") })); return; }
  form.reset();
  notify(`${data.name} added: its reference image is being drawn (one image).`);
  soon();
}

// --- on a scene card: the objects it shows ---------------------------------------------------

export function sceneObjects(s, objects, soon) {
  const names = new Map(objects.map((o) => [o.id, o.name]));
  const wrap = el("div", { class: "scene-objects small", "data-field": "object_ids" });
  const show = () => {
    delete wrap.dataset.editing;
    const listed = s.object_ids.map((id) => names.get(id) || `#${id}`);
    wrap.replaceChildren(el("span", { class: "muted", text: listed.length ? `Objects: ${listed.join(", ")} ` : "No objects " }),
      objects.length ? el("button", { class: "linkish small edit-objects", type: "button", text: "change", onclick: edit }) : "");
  };
  function edit() {
    wrap.dataset.editing = "true";
    const boxes = objects.map((o) => el("label", { class: "inline check" },
      el("input", { type: "checkbox", value: String(o.id), checked: s.object_ids.includes(o.id) }), ` ${o.name}`));
    const error = el("div", { class: "field-error", role: "alert", hidden: true });
    const save = async () => {
      const ids = boxes.map((b) => b.querySelector("input")).filter((i) => i.checked).map((i) => Number(i.value));
      const { ok, data } = await api("PATCH", `/api/scenes/${s.id}`, { object_ids: ids });
      if (!ok) { error.hidden = false; error.textContent = errorText(data, "Could not save the objects."); return; }
      s.object_ids = data.object_ids;
      show();
      soon();
    };
    wrap.replaceChildren(el("div", { class: "row" }, ...boxes),
      el("div", { class: "edit-actions" }, el("button", { class: "btn primary small save-objects", type: "button", text: "Save", onclick: save }),
        el("button", { class: "btn small", type: "button", text: "Cancel", onclick: show })), error);
  }
  show();
  return wrap;
}
