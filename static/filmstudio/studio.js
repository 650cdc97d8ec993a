// The studio page, as ES modules under studio/: api.js (the JSON API, SSE parsing), dom.js,
// render.js (the project on the page), control.js (editing, regenerating, takes, staleness on
// one unit), stale.js (the project's "Update stale"), objects.js (props and places), autopilot.js
// (agent runs), project.js (selection, live updates, actions), export.js (the Export menu) and
// director.js (the director panel and its UI tools).
// This entry wires the page's controls.
import { startRun } from "./studio/autopilot.js";
import { askDirector, goTo, pagesReady } from "./studio/director.js";
import { $ } from "./studio/dom.js";
import { exportLinks, startExport } from "./studio/export.js";
import { addObject } from "./studio/objects.js";
import { approveAll, approveStoryboard, createProject, generateCharacters, refreshStale, selectProject, showNewProject, soon, state } from "./studio/project.js";

$("#project-form").addEventListener("submit", createProject);
$("#new-project-button").addEventListener("click", showNewProject);
$("#generate-characters").addEventListener("click", generateCharacters);
$("#approve-all").addEventListener("click", approveAll);
$("#autopilot-form").addEventListener("submit", startRun);
$("#object-form").addEventListener("submit", (event) => addObject(event, state.projectId, soon));
$("#approve-storyboard").addEventListener("click", approveStoryboard);
$("#update-stale").addEventListener("click", refreshStale);
$("#export-timelines").replaceChildren(...exportLinks(() => state.projectId));
$("#export-bundle").addEventListener("click", () => startExport(state.projectId, soon));
$("#director-form").addEventListener("submit", askDirector);
$("#director-input").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey) { event.preventDefault(); $("#director-form").requestSubmit(); }
});
for (const link of document.querySelectorAll("[data-nav]")) {
  link.addEventListener("click", (event) => { event.preventDefault(); goTo(link.dataset.nav); });
}
const initial = Number(new URLSearchParams(location.search).get("project")) || null;
selectProject(initial);
pagesReady.then(() => { document.body.dataset.directorPages = "ready"; });
