// Sound in the studio: a voice picker with a sample on each character, a player for each
// spoken line in the storyboard, and the project's sound panel (music: none, the generated
// stand-in bed or an uploaded track; subtitles burnt in or not; speak the lines; download the
// subtitles).
import { api, csrfToken, errorText } from "./api.js";
import { $, el, notify } from "./dom.js";
import { staleBadge } from "./control.js";
import { askToSpend } from "./money.js";

// The speech provider's voices ([{id, provider, name, description}]), read once.
let voiceList = null;
export function voices() {
  voiceList ??= api("GET", "/api/voices").then(({ ok, data }) => (ok && Array.isArray(data) ? data : []));
  return voiceList;
}

let sample = null;
function play(url) {
  sample?.pause();
  sample = new Audio(url);
  sample.play().catch(() => notify("The browser would not play the sample.", "error"));
}

// A character's voice: a <select> of the provider's voices (PATCH on change) and a button to
// hear the one chosen.
export function voicePicker(c, onSaved) {
  const select = el("select", { class: "voice-select", "aria-label": `Voice of ${c.name}`, "data-voice-for": c.id });
  const hear = el("button", { class: "btn small voice-sample", type: "button", text: "▶ Hear",
    title: "Hear this voice say one sentence", onclick: () => play(`/api/voices/${encodeURIComponent(select.value)}/sample`) });
  const note = el("span", { class: "small muted voice-note" });
  voices().then((list) => {
    const known = list.some((v) => v.id === c.voice);
    const options = list.map((v) => el("option", { value: v.id, text: `${v.name} — ${v.description}` }));
    if (!known) options.unshift(el("option", { value: c.voice || "", text: c.voice ? `${c.voice} (not offered)` : "No voice yet", disabled: true }));
    select.replaceChildren(...options);
    select.value = c.voice || "";
    note.textContent = list[0]?.provider === "local" ? "offline eSpeak NG voices: robotic stand-ins" : "";
  });
  select.addEventListener("change", async () => {
    const { ok, data } = await api("PATCH", `/api/characters/${c.id}`, { voice: select.value });
    if (!ok) { notify(errorText(data, "Could not change the voice."), "error"); select.value = c.voice || ""; return; }
    notify(`${c.name} now speaks in ${select.selectedOptions[0]?.text.split(" — ")[0] || select.value}. Their lines are stale until spoken again.`);
    onSaved?.();
  });
  return el("div", { class: "voice row" }, el("span", { class: "small", text: "Voice" }), select, hear, note);
}

// A frame's spoken line: who says it, a player, and whether it is stale.
export function linePlayer(f, speakers) {
  if (!f.dialogue) return null;
  const who = f.speaker_id ? speakers.get(f.speaker_id) || `#${f.speaker_id}` : "Narrator";
  if (!f.line) return el("p", { class: "line small muted", "data-line": f.id, text: `${who}: not spoken yet` });
  return el("div", { class: "line", "data-line": f.id, "data-stale": f.line.stale ? "true" : null },
    el("span", { class: "small", text: `${who} · ${f.line.duration?.toFixed(1) ?? "?"} s` }),
    staleBadge(f.line),
    el("audio", { class: "line-audio", src: f.line.url, controls: true, preload: "none", "aria-label": `Line of ${who}` }));
}

const MUSIC = [["none", "None"], ["generated", "Generated bed (an offline stand-in, not a score)"], ["upload", "Uploaded track"]];
let current = null; // the project on the page

async function patchProject(body, done) {
  const { ok, data } = await api("PATCH", `/api/projects/${current.id}`, body);
  if (!ok) { notify(errorText(data, "Could not save."), "error"); return false; }
  done?.();
  return true;
}

async function uploadTrack(file, onSaved) {
  const form = new FormData();
  form.append("file", file);
  const response = await fetch(`/api/projects/${current.id}/music`, {
    method: "POST", credentials: "same-origin", body: form,
    headers: { Accept: "application/json", "X-CSRFToken": csrfToken() },
  });
  const data = await response.json().catch(() => null);
  if (!response.ok) { notify(errorText(data, "Could not upload the track."), "error"); return; }
  notify(`“${file.name}” is the music now. Stitch again to hear it under the film.`);
  onSaved?.();
}

async function speakLines(onStarted) {
  const url = "/api/jobs/audio-generation";
  const body = { project_id: current.id };
  const yes = await askToSpend({ title: "Speak the lines?", url, body, go: "Confirm", intro: [
    el("p", { text: "Every line without a take, or whose text, speaker or voice changed, is spoken again by its speaker's voice." }),
  ] });
  if (!yes) return;
  const { ok, data } = await api("POST", url, body);
  if (!ok) { notify(errorText(data, "Could not start speaking the lines."), "error"); return; }
  notify(`Speaking the lines (job #${data.id}).`);
  onStarted?.(data);
}

function bind(actions) {
  const panel = $("#sound-panel");
  if (panel.dataset.bound) return;
  panel.dataset.bound = "true";
  $("#music-choice").replaceChildren(...MUSIC.map(([value, text]) => el("option", { value, text })));
  $("#music-choice").addEventListener("change", async (event) => {
    const ok = await patchProject({ music: event.target.value }, actions.soon);
    if (!ok) event.target.value = current.music;
  });
  $("#music-file").addEventListener("change", (event) => {
    const [file] = event.target.files;
    if (file) uploadTrack(file, actions.soon);
    event.target.value = "";
  });
  $("#burn-subtitles").addEventListener("change", async (event) => {
    const ok = await patchProject({ burn_subtitles: event.target.checked }, actions.soon);
    if (!ok) event.target.checked = current.burn_subtitles;
  });
  $("#speak-lines").addEventListener("click", () => speakLines(actions.soon));
}

export function renderSound(p, actions) {
  current = p;
  bind(actions);
  $("#music-choice").value = p.music;
  $("#burn-subtitles").checked = Boolean(p.burn_subtitles);
  $("#music-note").textContent = p.music === "upload" ? "an uploaded track plays under the film" : "";
  const spoken = p.scenes.some((s) => s.frames.some((f) => f.dialogue));
  $("#speak-lines").disabled = !spoken;
  $("#subtitles-srt").href = `/api/projects/${p.id}/subtitles.srt`;
  $("#subtitles-vtt").href = `/api/projects/${p.id}/subtitles.vtt`;
}
