// The project on the page: header, stepper, cast, scenes, storyboard, clips and jobs. Each part
// is reconciled by key, so images and playing videos are not rebuilt needlessly. `actions` are
// the project's actions ({decide, retryJob, soon}), from project.js.
import { api, errorText } from "./api.js";
import { $, badge, el, label, notify, reconcile } from "./dom.js";

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
  const link = $("#dashboard-link");
  link.hidden = document.body.dataset.staff !== "true";
  link.href = `/dashboard/projects/${p.id}/`;
  const started = p.scenes.length > 0 || ["generating_scenes", "generating_frames", "awaiting_storyboard_approval", "generating_videos", "stitching", "complete"].includes(p.status);
  $("#generate-characters").disabled = p.status === "generating_characters";
  $("#project-actions").hidden = started;
  $("#generate-characters").textContent = p.characters.length ? "Generate more characters" : "Generate characters";
  renderCharacters(p, actions);
  renderScenes(p);
  renderStoryboard(p);
  renderVideos(p);
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
  $("#stepper").replaceChildren(...items);
}

function renderCharacters(p, actions) {
  const deciding = p.status === "awaiting_approval" && p.scenes.length === 0;
  reconcile($("#character-list"), p.characters, (c) => `character-${c.id}`,
    (c) => JSON.stringify([c.name, c.role, c.description, c.status, c.image_url, deciding]),
    (c) => characterCard(c, deciding, actions));
  $("#characters-empty").hidden = p.characters.length > 0;
  $("#approve-all").hidden = !(deciding && p.characters.some((c) => c.status === "pending"));
}

function characterCard(c, deciding, actions) {
  const description = el("p", { class: "description", text: c.description || "No description." });
  const card = el("div", { class: "card character", id: `character-${c.id}`, "data-character": c.id },
    c.image_url ? el("img", { class: "portrait", src: c.image_url, alt: `Portrait of ${c.name}` })
      : el("div", { class: "no-portrait", text: c.status === "generating" ? "Drawing portrait…" : "No portrait" }),
    el("h3", {}, c.name, " ", badge(c.status)),
    el("div", { class: "role", text: c.role }),
    description);
  if (deciding && ["pending", "approved", "rejected"].includes(c.status)) {
    const buttons = el("div", { class: "actions" });
    if (c.status !== "approved") buttons.append(el("button", { class: "btn ok small approve", type: "button", text: "Approve", onclick: () => actions.decide(c, "approve") }));
    if (c.status !== "rejected") buttons.append(el("button", { class: "btn danger small reject", type: "button", text: "Reject", onclick: () => rejectWithReason(c, card, actions) }));
    buttons.append(el("button", { class: "btn small edit", type: "button", text: "Edit", onclick: () => editDescription(c, card, description, actions) }));
    card.append(buttons);
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

function renderScenes(p) {
  const names = new Map(p.characters.map((c) => [c.id, c.name]));
  reconcile($("#scene-list"), p.scenes, (s) => `scene-${s.id}`,
    (s) => JSON.stringify([s.title, s.status, s.concise_plot, s.location, s.mood, s.character_ids]),
    (s) => el("div", { class: "card", id: `scene-${s.id}` },
      el("h3", {}, `${s.order}. ${s.title || "Untitled scene"} `, badge(s.status)),
      el("div", { class: "role", text: [s.location, s.mood].filter(Boolean).join(" · ") }),
      el("p", { text: s.concise_plot }),
      s.character_ids.length ? el("p", { class: "small muted", text: `With ${s.character_ids.map((id) => names.get(id) || `#${id}`).join(", ")}` }) : null));
  $("#scenes-empty").hidden = p.scenes.length > 0;
}

function renderStoryboard(p) {
  const withFrames = p.scenes.filter((s) => s.frames.length);
  reconcile($("#frame-list"), withFrames, (s) => `board-${s.id}`,
    (s) => JSON.stringify([s.order, s.title, s.frames.map((f) => [f.id, f.status, f.image_url, f.camera, f.dialogue])]),
    (s) => el("div", { class: "board" },
      el("h3", { text: `Scene ${s.order}: ${s.title || "Untitled"}` }),
      el("div", { class: "frames" }, s.frames.map((f) => el("div", { class: "card", id: `frame-${f.id}` },
        f.image_url ? el("img", { src: f.image_url, alt: `Keyframe ${s.order}.${f.order}` }) : el("div", { class: "no-image" }),
        el("h3", {}, `Frame ${f.order} `, badge(f.status)),
        el("p", { class: "small muted", text: f.camera }),
        f.dialogue ? el("p", { class: "small", text: `“${f.dialogue}”` }) : null)))));
  $("#storyboard-empty").hidden = withFrames.length > 0;
  $("#storyboard-approval").hidden = p.status !== "awaiting_storyboard_approval";
}

function renderVideos(p) {
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
  const clips = p.scenes.flatMap((s) => s.frames.filter((f) => f.video).map((f) => ({ scene: s, frame: f, video: f.video })));
  reconcile($("#clip-list"), clips, (c) => `clip-${c.frame.id}`,
    (c) => JSON.stringify([c.video.status, c.video.video_url]),
    (c) => el("div", { class: "card", id: `clip-${c.frame.id}` },
      c.video.video_url ? el("video", { src: c.video.video_url, poster: c.frame.image_url, controls: true, preload: "metadata" }) : el("div", { class: "no-portrait", style: "aspect-ratio:16/9", text: "Rendering…" }),
      el("h3", {}, `Scene ${c.scene.order}, frame ${c.frame.order} `, badge(c.video.status))));
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
