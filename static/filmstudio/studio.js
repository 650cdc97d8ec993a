// The studio page: a small client of the JSON API (session auth + CSRF header) and of the
// project's eventstream. State lives on the server; on every event the page re-reads the
// project and reconciles the DOM by key, so images and playing videos are not rebuilt needlessly.
(function () {
  "use strict";

  const $ = (selector, root = document) => root.querySelector(selector);
  const csrfToken = () => $('meta[name="csrf-token"]').content;
  const UI_TOOLS = new Set(["navigate", "highlight", "open_modal"]);
  const PAGES = ["dashboard", "project", "characters", "scenes", "storyboard", "videos"];
  const STEPS = [
    ["Characters", ["generating_characters"]],
    ["Approval", ["awaiting_approval"]],
    ["Scenes", ["generating_scenes"]],
    ["Frames", ["generating_frames"]],
    ["Clips", ["generating_videos"]],
    ["Film", ["stitching"]],
  ];
  const ORDER = ["draft", ...STEPS.flatMap(([, s]) => s), "complete"];

  const state = { projectId: null, project: null, source: null, busy: false, again: false, timer: null };

  // --- helpers -------------------------------------------------------------------------------

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children.flat()) {
      if (child !== null && child !== undefined && child !== false) {
        node.append(child instanceof Node ? child : document.createTextNode(String(child)));
      }
    }
    return node;
  }

  const label = (status) => status.replaceAll("_", " ");
  const badge = (status) => el("span", { class: `badge s-${status}`, "data-status": status, text: label(status) });

  async function api(method, url, body) {
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (method !== "GET") headers["X-CSRFToken"] = csrfToken();
    const response = await fetch(url, {
      method,
      headers,
      credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (response.status === 401) {  // the session ended: log in again, then come back here
      location.assign(`/accounts/login/?next=${encodeURIComponent(location.pathname + location.search)}`);
    }
    const data = response.status === 204 ? null : await response.json().catch(() => null);
    return { ok: response.ok, status: response.status, data };
  }

  function errorText(data, fallback) {
    if (!data) return fallback;
    if (typeof data.detail === "string") return data.detail;
    return Object.entries(data).map(([field, errors]) => `${field}: ${[].concat(errors).join(" ")}`).join("; ") || fallback;
  }

  function notify(text, kind = "info") {
    const box = $("#notice");
    box.textContent = text;
    box.className = `notice ${kind}`;
    box.hidden = !text;
    clearTimeout(notify.timer);
    if (text && kind !== "error") notify.timer = setTimeout(() => { box.hidden = true; }, 6000);
  }

  // Keep an element whose signature is unchanged (and one being edited), rebuild the rest.
  function reconcile(container, items, key, signature, build) {
    const existing = new Map(Array.from(container.children, (node) => [node.dataset.key, node]));
    const wanted = items.map((item) => {
      const k = String(key(item));
      const sig = signature(item);
      let node = existing.get(k);
      const typing = document.activeElement?.matches("input, textarea, select");
      const editing = node && typing && node.contains(document.activeElement);
      if (!node || (node.dataset.sig !== sig && !editing)) {
        node = build(item);
        node.dataset.key = k;
        node.dataset.sig = sig;
      }
      return node;
    });
    const same = wanted.length === container.children.length && wanted.every((node, i) => container.children[i] === node);
    if (!same) container.replaceChildren(...wanted);
  }

  // --- project list --------------------------------------------------------------------------

  async function loadProjects() {
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

  // --- creating and selecting ----------------------------------------------------------------

  function formBody(form) {
    const body = {};
    for (const [key, value] of new FormData(form).entries()) {
      const input = form.elements[key];
      if (input.type === "number") { if (value !== "") body[key] = Number(value); }
      else if (value.trim() !== "" || key === "title") body[key] = value.trim();
    }
    return body;
  }

  async function createProject(event) {
    event.preventDefault();
    const form = event.target;
    const errors = $("#project-form-errors");
    errors.replaceChildren();
    const button = $("#create-project");
    button.disabled = true;
    const { ok, data } = await api("POST", "/api/projects", formBody(form));
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

  function showNewProject() {
    $("#dashboard").hidden = false;
    $("#dashboard").scrollIntoView({ behavior: "smooth", block: "start" });
    $("#f-title").focus();
  }

  async function selectProject(id) {
    if (state.source) { state.source.close(); state.source = null; }
    state.projectId = id;
    state.project = null;
    for (const list of ["#character-list", "#scene-list", "#frame-list", "#clip-list"]) $(list).replaceChildren();
    history.replaceState(null, "", id ? `?project=${id}` : location.pathname);
    loadProjects();
    if (id) await refresh();
    // Shown only once filled in, so the page never flashes an empty project.
    const shown = Boolean(id && state.project);
    $("#dashboard").hidden = shown;
    $("#project-view").hidden = !shown;
    $("#section-nav").hidden = !shown;
    if (shown) listen(id);
  }

  // --- live updates --------------------------------------------------------------------------

  function setLive(on, text) {
    $("#live-dot").classList.toggle("on", on);
    $("#live-label").textContent = text;
    document.body.dataset.live = on ? "on" : "off";
  }

  function listen(id) {
    const source = new EventSource(`/api/events/projects/${id}`);
    state.source = source;
    for (const type of ["job", "character", "scene", "frame", "video", "project"]) {
      source.addEventListener(type, () => soon());
    }
    source.addEventListener("project", () => loadProjects());
    // Changes between the first read and the stream opening are not replayed: read once more.
    source.addEventListener("stream-open", () => { setLive(true, "live"); soon(); });
    source.addEventListener("stream-error", () => { source.close(); setLive(false, "offline"); });
    source.onerror = () => setLive(false, source.readyState === EventSource.CLOSED ? "offline" : "reconnecting…");
  }

  function soon() {
    clearTimeout(state.timer);
    state.timer = setTimeout(refresh, 150);
  }

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
      render(data);
      const jobs = await api("GET", `/api/jobs?project_id=${id}&page_size=8`);
      if (jobs.ok && id === state.projectId) renderJobs(jobs.data.results);
    } finally {
      state.busy = false;
      if (state.again) { state.again = false; soon(); }
    }
  }

  // --- rendering -----------------------------------------------------------------------------

  function render(p) {
    document.title = `${p.title} · Studio · FilmStudio`;
    $("#project-title").textContent = p.title;
    $("#project-logline").textContent = [p.logline, [p.genre, p.style].filter(Boolean).join(" · ")].filter(Boolean).join(" — ") || "No logline.";
    $("#project-status").replaceChildren(badge(p.status));
    $("#project-progress-bar").style.width = `${p.progress}%`;
    $("#project-progress-bar").parentElement.classList.toggle("done", p.progress >= 100);
    $("#project-progress").textContent = `${p.progress}%`;
    $("#project-shape").textContent = `${p.num_scenes} scene(s) × ${p.frames_per_scene} frame(s) · ${p.clip_seconds} s clips · ${p.aspect_ratio}`;
    document.body.dataset.projectStatus = p.status;
    renderStepper(p.status);
    const link = $("#dashboard-link");
    link.hidden = document.body.dataset.staff !== "true";
    link.href = `/dashboard/projects/${p.id}/`;
    const started = p.scenes.length > 0 || ["generating_scenes", "generating_frames", "generating_videos", "stitching", "complete"].includes(p.status);
    $("#generate-characters").disabled = p.status === "generating_characters";
    $("#project-actions").hidden = started;
    $("#generate-characters").textContent = p.characters.length ? "Generate more characters" : "Generate characters";
    renderCharacters(p);
    renderScenes(p);
    renderStoryboard(p);
    renderVideos(p);
  }

  function renderStepper(status) {
    const at = ORDER.indexOf(status);
    const items = STEPS.map(([name, statuses]) => {
      const index = ORDER.indexOf(statuses[0]);
      let cls = index < at || status === "complete" ? "done" : index === at ? "now" : "";
      if (index === at && ["failed", "cancelled"].includes(status)) cls = "bad";
      return el("li", { class: cls, text: name });
    });
    if (["failed", "cancelled"].includes(status)) items.push(el("li", { class: "bad", text: label(status) }));
    $("#stepper").replaceChildren(...items);
  }

  function renderCharacters(p) {
    const deciding = p.status === "awaiting_approval" && p.scenes.length === 0;
    reconcile($("#character-list"), p.characters, (c) => `character-${c.id}`,
      (c) => JSON.stringify([c.name, c.role, c.description, c.status, c.image_url, deciding]),
      (c) => characterCard(c, deciding));
    $("#characters-empty").hidden = p.characters.length > 0;
    $("#approve-all").hidden = !(deciding && p.characters.some((c) => c.status === "pending"));
  }

  function characterCard(c, deciding) {
    const description = el("p", { class: "description", text: c.description || "No description." });
    const card = el("div", { class: "card character", id: `character-${c.id}`, "data-character": c.id },
      c.image_url ? el("img", { class: "portrait", src: c.image_url, alt: `Portrait of ${c.name}` })
        : el("div", { class: "no-portrait", text: c.status === "generating" ? "Drawing portrait…" : "No portrait" }),
      el("h3", {}, c.name, " ", badge(c.status)),
      el("div", { class: "role", text: c.role }),
      description);
    if (deciding && ["pending", "approved", "rejected"].includes(c.status)) {
      const actions = el("div", { class: "actions" });
      if (c.status !== "approved") actions.append(el("button", { class: "btn ok small approve", type: "button", text: "Approve", onclick: () => decide(c, "approve") }));
      if (c.status !== "rejected") actions.append(el("button", { class: "btn danger small reject", type: "button", text: "Reject", onclick: () => rejectWithReason(c, card) }));
      actions.append(el("button", { class: "btn small edit", type: "button", text: "Edit", onclick: () => editDescription(c, card, description) }));
      card.append(actions);
    }
    return card;
  }

  async function decide(c, action, body) {
    document.activeElement?.blur();  // a focused reason field would keep the card from updating
    const { ok, data } = await api("POST", `/api/characters/${c.id}/${action}`, body);
    if (!ok) notify(errorText(data, `Could not ${action} ${c.name}.`), "error");
    else notify(`${c.name} ${action === "approve" ? "approved" : "rejected"}.`);
    soon();
  }

  function rejectWithReason(c, card) {
    if (card.querySelector(".reject-form")) return;
    const input = el("input", { type: "text", maxlength: "2000", placeholder: "Why? (optional)", "aria-label": `Reason for rejecting ${c.name}` });
    const form = el("form", { class: "reject-form row", onsubmit: (event) => { event.preventDefault(); decide(c, "reject", { reason: input.value.trim() }); } },
      input, el("button", { class: "btn danger small", type: "submit", text: "Reject" }));
    card.append(form);
    input.focus();
  }

  function editDescription(c, card, description) {
    if (card.querySelector("textarea")) return;
    const area = el("textarea", { maxlength: "5000", "aria-label": `Description of ${c.name}` });
    area.value = c.description;
    const save = async (event) => {
      event.preventDefault();
      const { ok, data } = await api("PATCH", `/api/characters/${c.id}`, { description: area.value });
      if (!ok) { notify(errorText(data, "Could not save the description."), "error"); return; }
      notify(`${c.name}'s description saved.`);
      area.blur();
      soon();
    };
    description.replaceWith(el("form", { class: "edit-form", onsubmit: save }, area,
      el("div", { class: "row" }, el("button", { class: "btn primary small", type: "submit", text: "Save" }))));
    area.focus();
  }

  async function approveAll() {
    const pending = (state.project?.characters || []).filter((c) => c.status === "pending");
    for (const c of pending) {
      const { ok, data } = await api("POST", `/api/characters/${c.id}/approve`);
      if (!ok) { notify(errorText(data, `Could not approve ${c.name}.`), "error"); soon(); return; }
    }
    notify(`Approved ${pending.length} character(s).`);
    soon();
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

  function renderJobs(jobs) {
    reconcile($("#job-list"), jobs, (j) => `job-${j.id}`,
      (j) => JSON.stringify([j.status, j.progress, j.error, j.attempts]),
      (j) => el("li", { id: `job-${j.id}`, class: "job" },
        el("span", { class: "nowrap", text: `#${j.id} ${j.type}` }), " ", badge(j.status),
        el("div", { class: j.progress >= 100 ? "progress done" : "progress" }, el("span", { style: `width:${j.progress}%` })),
        ["failed", "cancelled"].includes(j.status)
          ? el("button", { class: "btn small", type: "button", text: "Retry", onclick: () => retryJob(j.id) }) : "",
        j.error ? el("div", { class: "small job-error", text: j.error }) : ""));
    $("#jobs-box").hidden = jobs.length === 0;
  }

  async function retryJob(id) {
    const { ok, data } = await api("POST", `/api/jobs/${id}/retry`);
    notify(ok ? `Job #${id} queued again.` : errorText(data, "Could not retry the job."), ok ? "info" : "error");
    soon();
  }

  async function generateCharacters() {
    const count = Number($("#character-count").value || 4);
    const button = $("#generate-characters");
    button.disabled = true;
    const { ok, data } = await api("POST", "/api/jobs/character-generation", { project_id: state.projectId, count });
    if (!ok) { notify(errorText(data, "Could not start character generation."), "error"); button.disabled = false; return; }
    notify("Character generation started: portraits appear below as they are drawn.");
    soon();
  }

  // --- director ------------------------------------------------------------------------------

  function currentPage() {
    if (!state.projectId) return "dashboard";
    let best = "project";
    for (const page of PAGES.slice(1)) {
      const box = document.getElementById(page).getBoundingClientRect();
      if (box.top <= window.innerHeight * 0.35) best = page;
    }
    return best;
  }

  // navigate {page, project_id?}: switch project if asked, then scroll to the page's section.
  function navigate(args) {
    const page = args.page;
    const target = PAGES.includes(page) ? document.getElementById(page) : null;
    if (!target) return false;
    const go = () => {
      if (page === "dashboard") $("#dashboard").hidden = false;
      target.scrollIntoView({ behavior: "smooth", block: "start" });
      flash(target);
      document.body.dataset.navigated = page;
    };
    if (args.project_id && Number(args.project_id) !== state.projectId) selectProject(Number(args.project_id)).then(go);
    else go();
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

  function flash(node, ms = 2500) {
    node.classList.add("highlighted");
    setTimeout(() => node.classList.remove("highlighted"), ms);
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

  function runTool(name, args) {
    if (name === "navigate") return navigate(args);
    if (name === "highlight") return highlight(args);
    if (name === "open_modal") return openModal(args);
    return false;
  }

  // One SSE block: "event: x" and "data: ..." lines (multi-line data joined with \n).
  function parseBlock(block) {
    let event = "message";
    const data = [];
    for (const line of block.split(/\r?\n/)) {
      if (!line || line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (field === "event") event = value;
      else if (field === "data") data.push(value);
    }
    if (!data.length) return null;
    try { return { event, data: JSON.parse(data.join("\n")) }; } catch { return { event, data: data.join("\n") }; }
  }

  const director = { sessionId: null, sending: false };

  function bubble(role, text) {
    const node = el("div", { class: `bubble ${role}`, text });
    $("#director-log").append(node);
    node.scrollIntoView({ block: "end" });
    return node;
  }

  function handleDirectorEvent({ event, data }, reply) {
    if (event === "start") {
      director.sessionId = data.session_id ?? director.sessionId;
    } else if (event === "message") {
      reply.text.textContent += data.delta ?? "";
    } else if (event === "function_call") {
      const args = data.args || {};
      const done = UI_TOOLS.has(data.name) ? runTool(data.name, args) : true;
      const detail = args.page || args.target || args.modal || args.selector || "";
      reply.tools.append(el("span", { class: "tool-call", "data-tool": data.name, title: JSON.stringify(args), text: `${data.name}${detail ? ` → ${detail}` : ""}${done ? "" : " (not found)"}` }));
      if (!UI_TOOLS.has(data.name)) soon(); // a service tool changed the project: re-read it
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

  async function askDirector(event) {
    event.preventDefault();
    const input = $("#director-input");
    const message = input.value.trim();
    if (!message || director.sending) return;
    director.sending = true;
    $("#director-send").disabled = true;
    $("#director-state").textContent = "thinking…";
    bubble("user", message);
    input.value = "";
    const text = el("span", { class: "text" });
    const tools = el("div", { class: "tools" });
    const node = bubble("assistant", "");
    node.append(text, tools);
    const reply = { node, text, tools };
    const body = { message, page: currentPage() };
    if (state.projectId) body.project_id = state.projectId;
    if (director.sessionId) body.session_id = director.sessionId;
    try {
      const response = await fetch("/api/director/stream", {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", Accept: "text/event-stream", "X-CSRFToken": csrfToken() },
        body: JSON.stringify(body),
      });
      if (!response.ok || !response.body) {
        const data = await response.json().catch(() => null);
        handleDirectorEvent({ event: "error", data: { message: errorText(data, `The director is unavailable (HTTP ${response.status}).`) } }, reply);
        return;
      }
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      let finished = false;
      while (!finished) {
        const { value, done } = await reader.read();
        buffer += decoder.decode(value || new Uint8Array(), { stream: !done });
        let match;
        while (!finished && (match = /\r?\n\r?\n/.exec(buffer))) {
          const parsed = parseBlock(buffer.slice(0, match.index));
          buffer = buffer.slice(match.index + match[0].length);
          if (parsed) finished = handleDirectorEvent(parsed, reply);
        }
        if (done) break;
      }
      if (finished) reader.cancel().catch(() => {});
      else if (!reply.node.dataset.complete) handleDirectorEvent({ event: "error", data: { message: "The answer was cut off." } }, reply);
    } catch (error) {
      handleDirectorEvent({ event: "error", data: { message: `The director is unreachable: ${error.message}` } }, reply);
    } finally {
      director.sending = false;
      $("#director-send").disabled = false;
      $("#director-state").textContent = "";
    }
  }

  // --- start ---------------------------------------------------------------------------------

  $("#project-form").addEventListener("submit", createProject);
  $("#new-project-button").addEventListener("click", showNewProject);
  $("#generate-characters").addEventListener("click", generateCharacters);
  $("#approve-all").addEventListener("click", approveAll);
  $("#director-form").addEventListener("submit", askDirector);
  $("#director-input").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) { event.preventDefault(); $("#director-form").requestSubmit(); }
  });
  for (const link of document.querySelectorAll("[data-nav]")) {
    link.addEventListener("click", (event) => { event.preventDefault(); navigate({ page: link.dataset.nav }); });
  }
  const initial = Number(new URLSearchParams(location.search).get("project")) || null;
  selectProject(initial);
})();
