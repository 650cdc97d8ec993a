// The project on the page: header, stepper, spent / budget (money.js), cast, scenes,
// storyboard, clips and jobs. Each part is reconciled by key, so images and playing videos are
// not rebuilt needlessly. `actions` are the project's actions ({decide, retryJob, soon}), from
// project.js.
import { api, errorText } from "./api.js";
import { $, badge, el, label, notify, reconcile } from "./dom.js";
import { editable, regenerate, staleBadge, staleNote, takeStrip } from "./control.js";
import { renderMoney } from "./money.js";
import { castFallbackNote, consistencyBadge, inShot } from "./consistency.js";
import { linePlayer, renderSound, voicePicker } from "./sound.js";
import { renderObjects, sceneObjects } from "./objects.js";

const STEPS = [
  ["Characters", ["generating_characters"]],
  ["Approval", ["awaiting_approval"]],
  ["Scenes", ["generating_scenes"]],
  ["Frames", ["generating_frames"]],
  ["Storyboard", ["awaiting_storyboard_approval"]],
  ["Clips", ["generating_videos"]],
  ["Film", ["stitching"]],
];
const ORDER = ["draft", ...STEPS.flatMap(([, s]) => s), "complete"];

export function render(p, actions) {
  document.title = `${p.title} · Studio · FilmStudio`;
  $("#project-title").textContent = p.title;
  $("#project-logline").textContent = [p.logline, [p.genre, p.style].filter(Boolean).join(" · ")].filter(Boolean).join(" — ") || "No logline.";
  $("#project-status").replaceChildren(badge(p.status));
  $("#project-progress-bar").style.width = `${p.progress}%`;
  $("#project-progress-bar").parentElement.classList.toggle("done", p.progress >= 100);
  $("#project-progress").textContent = `${p.progress}%`;
  $("#project-shape").textContent = `${p.num_scenes} scene(s) × ${p.frames_per_scene} frame(s) · ${p.clip_seconds} s clips · ${p.aspect_ratio}`;
  document.body.dataset.projectStatus = p.status;
  renderStepper(p);
  renderMoney(p, actions.soon);
  const link = $("#dashboard-link");
  link.hidden = document.body.dataset.staff !== "true";
  link.href = `/dashboard/projects/${p.id}/`;
  const started = p.scenes.length > 0 || ["generating_scenes", "generating_frames", "awaiting_storyboard_approval", "generating_videos", "stitching", "complete"].includes(p.status);
  $("#generate-characters").disabled = p.status === "generating_characters";
  $("#project-actions").hidden = started;
  $("#generate-characters").textContent = p.characters.length ? "Generate more characters" : "Generate characters";
  renderCharacters(p, actions);
  renderObjects(p, actions);
  renderScenes(p, actions);
  renderStoryboard(p, actions);
  renderSound(p, actions);
  renderVideos(p, actions);
}

function renderStepper(p) {
  const status = p.status;
  const at = ORDER.indexOf(status);
  const stops = (p.checkpoints || []).includes("storyboard") || status === "awaiting_storyboard_approval";
  const steps = STEPS.filter(([name]) => name !== "Storyboard" || stops);
  const items = steps.map(([name, statuses]) => {
    const index = ORDER.indexOf(statuses[0]);
    let cls = index < at || status === "complete" ? "done" : index === at ? "now" : "";
    if (index === at && ["failed", "cancelled"].includes(status)) cls = "bad";
    return el("li", { class: cls, text: name });
  });
  if (["failed", "cancelled"].includes(status)) items.push(el("li", { class: "bad", text: label(status) }));
  if (status === "paused_budget") items.push(el("li", { class: "bad", text: "Paused: budget" }));
  $("#stepper").replaceChildren(...items);
}

const BUSY = ["queued", "generating"];
const takeState = (u) => [u?.take_id, u?.takes_count, u?.stale, u?.stale_reasons];
// A unit with more than one take shows them all; with one there is nothing to compare.
const strip = (u, url, kind, what, actions) =>
  u && u.takes_count > 1 ? takeStrip({ url, kind, count: u.takes_count, what, onSelected: actions.soon }) : null;

function renderCharacters(p, actions) {
  const deciding = p.status === "awaiting_approval" && p.scenes.length === 0;
  reconcile($("#character-list"), p.characters, (c) => `character-${c.id}`,
    (c) => JSON.stringify([c.name, c.role, c.description, c.status, c.image_url, c.voice, deciding, takeState(c)]),
    (c) => characterCard(c, deciding, actions));
  $("#characters-empty").hidden = p.characters.length > 0;
  $("#approve-all").hidden = !(deciding && p.characters.some((c) => c.status === "pending"));
}

function characterCard(c, deciding, actions) {
  const description = el("p", { class: "description", text: c.description || "No description." });
  const card = el("div", { class: "card character", id: `character-${c.id}`, "data-character": c.id, "data-stale": c.stale ? "true" : null },
    c.image_url ? el("img", { class: "portrait", src: c.image_url, alt: `Portrait of ${c.name}` })
      : el("div", { class: "no-portrait", text: c.status === "generating" ? "Drawing portrait…" : "No portrait" }),
    strip(c, `/api/characters/${c.id}/takes`, "portrait", `portrait of ${c.name}`, actions),
    el("h3", {}, c.name, " ", badge(c.status), " ", staleBadge(c)),
    staleNote(c),
    el("div", { class: "role", text: c.role }),
    description,
    c.status === "generating" || c.status === "rejected" ? null : voicePicker(c, actions.soon));
  if (deciding && ["pending", "approved", "rejected"].includes(c.status)) {
    const buttons = el("div", { class: "actions" });
    if (c.status !== "approved") buttons.append(el("button", { class: "btn ok small approve", type: "button", text: "Approve", onclick: () => actions.decide(c, "approve") }));
    if (c.status !== "rejected") buttons.append(el("button", { class: "btn danger small reject", type: "button", text: "Reject", onclick: () => rejectWithReason(c, card, actions) }));
    buttons.append(el("button", { class: "btn small edit", type: "button", text: "Edit", onclick: () => editDescription(c, card, description, actions) }));
    card.append(buttons);
  }
  if (c.image_url && c.status !== "rejected") {
    card.append(regenerate({ what: `portrait of ${c.name}`, model: "image", url: "/api/jobs/portrait-generation",
      body: { character_id: c.id }, disabled: c.status === "generating", onStarted: actions.soon }));
  }
  return card;
}

function rejectWithReason(c, card, actions) {
  if (card.querySelector(".reject-form")) return;
  const input = el("input", { type: "text", maxlength: "2000", placeholder: "Why? (optional)", "aria-label": `Reason for rejecting ${c.name}` });
  const form = el("form", { class: "reject-form row", onsubmit: (event) => { event.preventDefault(); actions.decide(c, "reject", { reason: input.value.trim() }); } },
    input, el("button", { class: "btn danger small", type: "submit", text: "Reject" }));
  card.append(form);
  input.focus();
}

function editDescription(c, card, description, actions) {
  if (card.querySelector("textarea")) return;
  const area = el("textarea", { maxlength: "5000", "aria-label": `Description of ${c.name}` });
  area.value = c.description;
  const save = async (event) => {
    event.preventDefault();
    const { ok, data } = await api("PATCH", `/api/characters/${c.id}`, { description: area.value });
    if (!ok) { notify(errorText(data, "Could not save the description."), "error"); return; }
    notify(`${c.name}'s description saved.`);
    area.blur();
    actions.soon();
  };
  description.replaceWith(el("form", { class: "edit-form", onsubmit: save }, area,
    el("div", { class: "row" }, el("button", { class: "btn primary small", type: "submit", text: "Save" }))));
  area.focus();
}

function renderScenes(p, actions) {
  const names = new Map(p.characters.map((c) => [c.id, c.name]));
  reconcile($("#scene-list"), p.scenes, (s) => `scene-${s.id}`,
    (s) => JSON.stringify([s.order, s.title, s.status, s.concise_plot, s.detailed_plot, s.dialogue, s.location, s.mood, s.character_ids, s.cast_fallback,
      s.object_ids, p.objects.map((o) => [o.id, o.name])]),
    (s) => {
      const url = `/api/scenes/${s.id}`;
      const field = (name, label, opts = {}) => editable({ url, field: name, value: s[name], name: `${label.toLowerCase()} of scene ${s.order}`, label, onSaved: actions.soon, ...opts });
      return el("div", { class: "card scene", id: `scene-${s.id}`, "data-scene": s.id },
        el("div", { class: "unit-head" }, el("span", { class: "order", text: `${s.order}.` }),
          editable({ url, field: "title", value: s.title, name: `title of scene ${s.order}`, cls: "title", maxlength: 200, onSaved: actions.soon }),
          badge(s.status)),
        el("div", { class: "field-row" }, field("location", "Location", { maxlength: 200 }), field("mood", "Mood", { maxlength: 200 })),
        field("concise_plot", "Plot", { multiline: true }),
        el("details", { class: "more" }, el("summary", { class: "small muted", text: "Detailed plot and dialogue" }),
          field("detailed_plot", "Detailed plot", { multiline: true, maxlength: 20000 }),
          field("dialogue", "Dialogue", { multiline: true, maxlength: 20000 })),
        s.character_ids.length ? el("p", { class: "small muted", text: `With ${s.character_ids.map((id) => names.get(id) || `#${id}`).join(", ")}` }) : null,
        castFallbackNote(s),
        sceneObjects(s, p.objects, actions.soon));
    });
  $("#scenes-empty").hidden = p.scenes.length > 0;
}

// Scene boards are kept; the frames inside each are reconciled one by one, so editing or
// regenerating one shot leaves its neighbours live.
function renderStoryboard(p, actions) {
  const withFrames = p.scenes.filter((s) => s.frames.length);
  const speakers = new Map(p.characters.map((c) => [c.id, c.name]));
  const boards = $("#frame-list");
  reconcile(boards, withFrames, (s) => `board-${s.id}`, (s) => JSON.stringify([s.order, s.title]),
    (s) => el("div", { class: "board", "data-board": s.id }, el("h3", { text: `Scene ${s.order}: ${s.title || "Untitled"}` }), el("div", { class: "frames" })));
  withFrames.forEach((s, i) => {
    reconcile(boards.children[i].querySelector(".frames"), s.frames, (f) => `frame-${f.id}`,
      (f) => JSON.stringify([f.order, f.status, f.image_url, f.prompt, f.camera, f.dialogue, takeState(f),
        f.speaker_id, speakers.get(f.speaker_id), f.line && [f.line.take_id, f.line.stale],
        f.consistency, f.character_ids, s.character_ids]),
      (f) => frameCard(s, f, actions, speakers));
  });
  $("#storyboard-empty").hidden = withFrames.length > 0;
  $("#storyboard-approval").hidden = p.status !== "awaiting_storyboard_approval";
}

function frameCard(s, f, actions, speakers) {
  const url = `/api/frames/${f.id}`;
  const where = `scene ${s.order}, frame ${f.order}`;
  const field = (name, label, opts = {}) => editable({ url, field: name, value: f[name], name: `${label.toLowerCase()} of ${where}`, label, onSaved: actions.soon, ...opts });
  return el("div", { class: "card frame", id: `frame-${f.id}`, "data-frame": f.id, "data-stale": f.stale ? "true" : null },
    f.image_url ? el("div", { class: "keyframe" }, el("img", { src: f.image_url, alt: `Keyframe ${s.order}.${f.order}` }), consistencyBadge(f))
      : el("div", { class: "no-image" }),
    strip(f, `/api/frames/${f.id}/takes?kind=keyframe`, "keyframe", `keyframe of ${where}`, actions),
    el("h3", {}, `Frame ${f.order} `, badge(f.status), " ", staleBadge(f)),
    staleNote(f),
    inShot(s, f, speakers),
    field("prompt", "Prompt", { multiline: true }),
    field("camera", "Camera", { maxlength: 500 }),
    field("dialogue", "Dialogue", { multiline: true }),
    linePlayer(f, speakers),
    f.image_url || f.status === "failed"
      ? regenerate({ what: `keyframe of ${where}`, model: "image", url: "/api/jobs/keyframe-generation",
        body: { frame_id: f.id }, disabled: BUSY.includes(f.status), onStarted: actions.soon }) : null);
}

function renderVideos(p, actions) {
  const film = $("#final-film");
  if (p.final_video_url) {
    if (film.getAttribute("src") !== p.final_video_url) film.src = p.final_video_url;
    film.hidden = false;
    $("#film-note").textContent = p.final_duration ? `${p.final_duration.toFixed(1)} s` : "";
  } else {
    film.hidden = true;
    film.removeAttribute("src");
    $("#film-note").textContent = "The film appears here once every clip is stitched.";
  }
  $("#film-stale").replaceChildren(staleBadge(p) || "");
  const takes = $("#film-takes");
  const sig = JSON.stringify(takeState(p));
  if (takes.dataset.sig !== sig) {
    takes.dataset.sig = sig;
    takes.replaceChildren(staleNote(p) || "", strip(p, `/api/projects/${p.id}/takes?kind=film`, "film", "final film", actions) || "");
  }
  const clips = p.scenes.flatMap((s) => s.frames.filter((f) => f.video).map((f) => ({ scene: s, frame: f, video: f.video })));
  reconcile($("#clip-list"), clips, (c) => `clip-${c.frame.id}`,
    (c) => JSON.stringify([c.video.status, c.video.video_url, takeState(c.video)]),
    (c) => {
      const where = `scene ${c.scene.order}, frame ${c.frame.order}`;
      return el("div", { class: "card clip", id: `clip-${c.frame.id}`, "data-clip": c.frame.id, "data-stale": c.video.stale ? "true" : null },
        c.video.video_url ? el("video", { src: c.video.video_url, poster: c.frame.image_url, controls: true, preload: "metadata" }) : el("div", { class: "no-portrait", style: "aspect-ratio:16/9", text: "Rendering…" }),
        strip(c.video, `/api/frames/${c.frame.id}/takes?kind=clip`, "clip", `clip of ${where}`, actions),
        el("h3", {}, `Scene ${c.scene.order}, frame ${c.frame.order} `, badge(c.video.status), " ", staleBadge(c.video)),
        staleNote(c.video),
        c.video.video_url || c.video.status === "failed"
          ? regenerate({ what: `clip of ${where}`, model: "video", url: "/api/jobs/video-generation",
            body: { frame_id: c.frame.id }, disabled: BUSY.includes(c.video.status), onStarted: actions.soon }) : null);
    });
}

export function renderJobs(jobs, actions) {
  reconcile($("#job-list"), jobs, (j) => `job-${j.id}`,
    (j) => JSON.stringify([j.status, j.progress, j.error, j.attempts]),
    (j) => el("li", { id: `job-${j.id}`, class: "job" },
      el("span", { class: "nowrap", text: `#${j.id} ${j.type}` }), " ", badge(j.status),
      el("div", { class: j.progress >= 100 ? "progress done" : "progress" }, el("span", { style: `width:${j.progress}%` })),
      ["failed", "cancelled"].includes(j.status)
        ? el("button", { class: "btn small", type: "button", text: "Retry", onclick: () => actions.retryJob(j.id) }) : "",
      j.error ? el("div", { class: "small job-error", text: j.error }) : ""));
  $("#jobs-box").hidden = jobs.length === 0;
}
