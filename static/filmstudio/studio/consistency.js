// Character consistency on the storyboard (issue 17): who is in each shot, and how faithfully
// its keyframe shows them against their portraits (the frame's `consistency`, scored by the
// judge in generation/consistency.py). The badge sits on the keyframe; its title lists each
// character's score and the judge's issues.
import { el } from "./dom.js";

const percent = (score) => `${Math.round(score * 100)} %`;

// The badge for a frame's current keyframe, or null when it was not scored (no one in the shot).
export function consistencyBadge(f) {
  const c = f.consistency;
  if (!c || typeof c.score !== "number") return null;
  const lines = (c.per_character || []).map((row) => {
    const issues = row.issues && row.issues.length ? `: ${row.issues.join("; ")}` : "";
    return `${row.name} ${percent(row.score)}${issues}`;
  });
  if (typeof c.threshold === "number") lines.push(`Threshold ${percent(c.threshold)}`);
  if (c.tries > 1) lines.push(`Best of ${c.tries} tries`);
  if (c.checked_by) lines.push(`Checked by ${c.checked_by}`);
  const state = c.flagged ? "flagged" : typeof c.threshold === "number" ? "pass" : "scored";
  return el("span", {
    class: `consistency c-${state}`,
    "data-consistency": state,
    "data-score": c.score,
    title: lines.join("\n"),
    text: c.flagged ? `${percent(c.score)} · flagged` : percent(c.score),
  });
}

// Who is in the shot: the frame's characters, or the scene's whole cast when the shot list named
// nobody (that is what the keyframe was drawn with).
export function inShot(s, f, names) {
  const ids = f.character_ids && f.character_ids.length ? f.character_ids : s.character_ids || [];
  if (!ids.length) return null;
  const who = ids.map((id) => names.get(id) || `#${id}`).join(", ");
  const whole = !(f.character_ids && f.character_ids.length);
  return el("p", { class: "small muted in-shot", "data-in-shot": ids.join(","), text: `In shot: ${who}${whole ? " (whole scene cast)" : ""}` });
}

// A scene whose plan named nobody while its text spoke of the cast gets the whole cast.
export function castFallbackNote(s) {
  return s.cast_fallback
    ? el("p", { class: "small cast-fallback", title: "The scene plan named no one although its text mentions the cast; every approved character was put in it.", text: "Cast fallback: the whole approved cast is in this scene." })
    : null;
}
