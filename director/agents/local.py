"""The local director: rule-based, offline, deterministic. A stand-in for demos and tests.

It behaves like a model in the runner's loop: each step reads the user's message and the tool
results of this turn so far, streams a little text word by word, and asks for tool calls (only
the page's tools). "approve Mara" thus takes three steps: read the cast (get_project_status),
approve the character whose name matches, then say what happened.
"""

import re
import time
from collections.abc import Callable
from dataclasses import dataclass

from director.agents.base import Call, Step, TurnInput
from director.pages import PAGES

PAGE_WORDS = {
    "dashboard": "dashboard",
    "home": "dashboard",
    "projects": "dashboard",
    "project": "project",
    "idea": "project",
    "characters": "characters",
    "character": "characters",
    "cast": "characters",
    "scenes": "scenes",
    "scene": "scenes",
    "script": "scenes",
    "storyboard": "storyboard",
    "frames": "storyboard",
    "keyframes": "storyboard",
    "videos": "videos",
    "video": "videos",
    "clips": "videos",
    "film": "videos",
}
KIND_WORDS = {
    "character": "characters",
    "cast": "characters",
    "scene": "scenes",
    "frame": "frames",
    "keyframe": "frames",
    "storyboard": "frames",
    "video": "videos",
    "clip": "videos",
}
FILLER = re.compile(
    r"\b(?:please|now|too|also|as well|for me|thanks|thank you|the character)\b", re.I
)
STEP_NAMES = {
    "characters": "character generation",
    "scenes": "scene writing",
    "frames": "keyframe generation",
    "videos": "video generation",
}
WHAT = {
    "navigate": "take you to other pages",
    "highlight": "point things out",
    "open_modal": "open dialogs",
    "list_projects": "list your projects",
    "get_project_status": "sum up where the project stands",
    "update_project": "edit the project",
    "approve_character": "approve characters",
    "reject_character": "reject characters",
    "start_generation": "start a generation step",
    "retry_job": "retry failed jobs",
    "cancel_job": "cancel running jobs",
}
EXAMPLES = {
    "navigate": '"go to scenes"',
    "highlight": '"highlight approve-button"',
    "get_project_status": '"status"',
    "approve_character": '"approve Mara", "approve all"',
    "reject_character": '"reject Elias because he is too young"',
    "start_generation": '"generate scenes"',
    "retry_job": '"retry"',
    "update_project": '"rename it to The Keeper"',
}


@dataclass(frozen=True)
class Intent:
    kind: str
    value: str = ""
    extra: str = ""


def _page_word(text: str) -> str | None:
    word = text.lower().strip(" .!?")
    return PAGE_WORDS.get(word) or PAGE_WORDS.get(word.removesuffix(" page"))


def _generate_kind(text: str) -> str | None:
    match = re.search(
        r"\b(?:generate|create|make|start|render|write|draw|produce)\b.*?"
        r"\b(characters?|cast|scenes?|frames?|keyframes?|storyboard|videos?|clips?)\b",
        text,
    )
    return KIND_WORDS[match.group(1).rstrip("s")] if match else None


_RULES: list[tuple[str, str]] = [
    ("highlight", r"\bhighlight\s+(?:the\s+)?(.+?)[.!?]*$"),
    ("new_project", r"\b(?:new|create\s+a|start\s+a(?:\s+new)?)\s+project\b"),
    (
        "approve_all",
        r"\bapprove\s+(?:them\s+)?(?:all|everyone|everybody|every\s+character|the\s+(?:whole\s+)?cast)\b",
    ),
    ("approve", r"\bapprove\s+(.+?)[.!?]*$"),
    ("reject", r"\breject\s+(.+?)(?:\s+(?:because|since|as|for)\s+(.+?))?[.!?]*$"),
    ("retry", r"\bretry\b(?:\D*(\d+))?"),
    ("cancel", r"\bcancel\b(?:\D*(\d+))?"),
    ("stitch", r"\b(?:stitch|assemble)\b"),
    (
        "rename",
        r"\b(?:rename\s+(?:it\s+|the\s+(?:project|film)\s+)?to|set\s+the\s+title\s+to|"
        r"call\s+(?:it|the\s+(?:project|film)))\s+[\"“']?(.+?)[\"”']?[.!]*$",
    ),
    ("list_projects", r"\b(?:list|show|which)\b.*\bprojects\b|\bmy projects\b"),
    (
        "status",
        r"\b(?:status|progress|where\s+are\s+we|how(?:'s|\s+is)\s+it\s+going|"
        r"what(?:'s|\s+is)\s+next|next\s+step|summary|overview)\b",
    ),
]


def parse(message: str) -> Intent:
    text = " ".join(message.split())
    lowered = text.lower()
    go = re.search(
        r"\b(?:go|take\s+me|navigate|switch|jump|back)\s+(?:back\s+)?to\s+(?:the\s+)?(\w+(?:\s+page)?)"
        r"|\b(?:open|show(?:\s+me)?)\s+(?:the\s+)?(\w+(?:\s+page)?)",
        lowered,
    )
    if go and _page_word(go.group(1) or go.group(2)):
        return Intent("navigate", _page_word(go.group(1) or go.group(2)) or "")
    for kind, pattern in _RULES:
        match = re.search(pattern, text, flags=re.IGNORECASE)
        if match:
            groups = [g or "" for g in match.groups()]
            return Intent(kind, *(g.strip() for g in groups[:2]))
    kind = _generate_kind(lowered)
    return Intent("generate", kind) if kind else Intent("help")


# ------------------------------------------------------------------ what each intent does


def _results(turn: TurnInput, name: str) -> list[dict]:
    return [
        o.result for r in turn.rounds for o in r.outcomes if o.name == name and o.result is not None
    ]


def _status(turn: TurnInput) -> dict | None:
    found = [r for r in _results(turn, "get_project_status") if "error" not in r]
    return found[-1] if found else None


def _names(text: str) -> list[str]:
    """ "Mara and Elias please" → ["Mara", "Elias"]."""
    text = FILLER.sub(" ", text)
    return [n.strip() for n in re.split(r",|\band\b|&", text) if n.strip()]


def _matches(characters: list[dict], names: list[str]) -> list[dict]:
    wanted = [n.lower() for n in names]
    return [c for c in characters if any(w in c["name"].lower() for w in wanted)]


def _outcome_lines(turn: TurnInput, name: str, verb: str) -> str:
    lines = []
    for r in turn.rounds:
        for o in r.outcomes:
            if o.name != name or o.result is None:
                continue
            if "error" in o.result:
                lines.append(f"I could not {verb}: {o.result['error']}")
            elif "character" in o.result:
                c = o.result["character"]
                lines.append(f"{c['name']} is now {c['status']}.")
            elif "job" in o.result:
                job = o.result["job"]
                lines.append(f"Job #{job['id']} ({job['type']}) is {job['status']}.")
            elif "project" in o.result:
                lines.append(f"Done: “{o.result['project'].get('title', '')}” is updated.")
    return " ".join(lines)


def _cast_line(characters: list[dict]) -> str:
    if not characters:
        return "There are no characters yet."
    return "The cast: " + ", ".join(f"{c['name']} ({c['status']})" for c in characters) + "."


def describe_status(status: dict) -> str:
    project = status["project"]
    counts: dict[str, int] = {}
    for character in status["characters"]:
        counts[character["status"]] = counts.get(character["status"], 0) + 1
    cast = ", ".join(f"{n} {s}" for s, n in counts.items()) or "none yet"
    scenes = status["scenes"]
    frames = sum(s["frames"] for s in scenes)
    parts = [
        f"“{project['title']}” is {project['status'].replace('_', ' ')} "
        f"({project['progress']}% done).",
        f"Characters: {cast}.",
    ]
    if scenes:
        ready = sum(s["frames_ready"] for s in scenes)
        clips = sum(s["clips_ready"] for s in scenes)
        parts.append(
            f"Scenes: {len(scenes)}; keyframes {ready} of {frames}; clips {clips} of {frames}."
        )
    failed = [j for j in status["recent_jobs"] if j["status"] == "failed"]
    if failed:
        parts.append(f"Job #{failed[0]['id']} ({failed[0]['type']}) failed: {failed[0]['error']}")
    if status["next_step"]:
        parts.append(f"Next: {status['next_step']}")
    return " ".join(parts)


# The tool each intent needs (the page must offer it), and the intents that need a project.
_NEEDS = {
    "navigate": "navigate",
    "highlight": "highlight",
    "new_project": "open_modal",
    "list_projects": "list_projects",
    "status": "get_project_status",
    "approve_all": "approve_character",
    "approve": "approve_character",
    "reject": "reject_character",
    "generate": "start_generation",
    "stitch": "start_generation",
    "rename": "update_project",
    "retry": "retry_job",
    "cancel": "cancel_job",
}
_NEEDS_PROJECT = {"status", "approve_all", "approve", "reject", "generate", "stitch", "rename"}


class _Plan:
    """The next step for one intent; each method returns (text, calls)."""

    def __init__(self, turn: TurnInput, intent: Intent):
        self.turn, self.intent = turn, intent
        self.tools = {tool.name for tool in turn.tools}
        self.round = len(turn.rounds)

    def next(self) -> tuple[str, list[Call]]:
        handler: Callable[[], tuple[str, list[Call]]] = getattr(self, f"do_{self.intent.kind}")
        needed = _NEEDS.get(self.intent.kind)
        if needed and needed not in self.tools:
            return self.elsewhere(needed), []
        if self.intent.kind in _NEEDS_PROJECT and self.turn.project_id is None:
            return "Open a project first: I need one to do that.", []
        return handler()

    def elsewhere(self, tool: str) -> str:
        pages = [p.title for p in PAGES.values() if tool in p.tools] or ["Project"]
        return (
            f"I can {WHAT[tool]} from the {' or '.join(pages)} page, not from here. "
            f"Say “go to {pages[0].lower()}” and ask me there."
        )

    def do_help(self) -> tuple[str, list[Call]]:
        page = self.turn.page
        can = [WHAT[t] for t in page.tools if t in WHAT]
        examples = [EXAMPLES[t] for t in page.tools if t in EXAMPLES]
        return (
            f"You are on the {page.title} page: {page.description} Here I can "
            f"{', '.join(can[:-1])} and {can[-1]}. Try {', '.join(examples)}.",
            [],
        )

    def do_navigate(self) -> tuple[str, list[Call]]:
        if self.round:
            return "", []
        args: dict = {"page": self.intent.value}
        if self.turn.project_id and self.intent.value != "dashboard":
            args["project_id"] = self.turn.project_id
        return f"Taking you to the {PAGES[self.intent.value].title} page.", [Call("navigate", args)]

    def do_highlight(self) -> tuple[str, list[Call]]:
        if self.round:
            return "", []
        target = self.intent.value.lower().replace(" ", "-")
        return f"Here: {target}.", [Call("highlight", {"target": target})]

    def do_new_project(self) -> tuple[str, list[Call]]:
        if self.round:
            return "", []
        return "Opening a new project for you.", [Call("open_modal", {"modal": "new-project"})]

    def do_list_projects(self) -> tuple[str, list[Call]]:
        if not self.round:
            return "Let me look at your projects.", [Call("list_projects", {})]
        projects = _results(self.turn, "list_projects")[-1].get("projects", [])
        if not projects:
            return " You have no projects yet: say “new project” to start one.", []
        listed = "; ".join(f"“{p['title']}” ({p['status'].replace('_', ' ')})" for p in projects)
        return f" Your projects: {listed}.", []

    def do_status(self) -> tuple[str, list[Call]]:
        if not self.round:
            return "Let me check the project.", [Call("get_project_status", {})]
        status = _status(self.turn)
        if status is None:
            error = _results(self.turn, "get_project_status")[-1].get("error", "")
            return f" I could not read the project: {error}", []
        return " " + describe_status(status), []

    def _with_cast(self, act: Callable[[list[dict]], tuple[str, list[Call]]]):
        if not self.round:
            return "Let me check the cast.", [Call("get_project_status", {})]
        status = _status(self.turn)
        if status is None:
            return " I could not read the cast.", []
        if self.round == 1:
            return act(status["characters"])
        return "", []

    def do_approve_all(self) -> tuple[str, list[Call]]:
        if self.round == 2:
            return " " + _outcome_lines(self.turn, "approve_character", "approve that"), []

        def act(characters: list[dict]) -> tuple[str, list[Call]]:
            pending = [c for c in characters if c["status"] == "pending"]
            if not pending:
                return " No character is waiting for a decision. " + _cast_line(characters), []
            calls = [Call("approve_character", {"character_id": c["id"]}) for c in pending]
            return f" Approving {len(pending)} character(s).", calls

        return self._with_cast(act)

    def do_approve(self) -> tuple[str, list[Call]]:
        return self._decide("approve_character", "approve", {})

    def do_reject(self) -> tuple[str, list[Call]]:
        extra = {"reason": self.intent.extra} if self.intent.extra else {}
        return self._decide("reject_character", "reject", extra)

    def _decide(self, tool: str, verb: str, extra: dict) -> tuple[str, list[Call]]:
        if self.round == 2:
            return " " + _outcome_lines(self.turn, tool, f"{verb} that"), []

        def act(characters: list[dict]) -> tuple[str, list[Call]]:
            found = _matches(characters, _names(self.intent.value))
            if not found:
                return f" I found nobody called “{self.intent.value}”. {_cast_line(characters)}", []
            calls = [Call(tool, {"character_id": c["id"], **extra}) for c in found]
            return f" {verb.capitalize()} {', '.join(c['name'] for c in found)}.", calls

        return self._with_cast(act)

    def do_generate(self) -> tuple[str, list[Call]]:
        if self.round:
            return " " + _outcome_lines(self.turn, "start_generation", "start it"), []
        kind = self.intent.value
        say = "Stitching the final film." if kind == "stitch" else f"Starting {STEP_NAMES[kind]}."
        return say, [Call("start_generation", {"kind": kind})]

    def do_stitch(self) -> tuple[str, list[Call]]:
        return _Plan(self.turn, Intent("generate", "stitch")).next()

    def do_rename(self) -> tuple[str, list[Call]]:
        if self.round:
            return " " + _outcome_lines(self.turn, "update_project", "rename it"), []
        title = self.intent.value[:200]
        return f"Renaming the project to “{title}”.", [Call("update_project", {"title": title})]

    def do_retry(self) -> tuple[str, list[Call]]:
        return self._job_action("retry_job", "retry", ("failed", "cancelled"))

    def do_cancel(self) -> tuple[str, list[Call]]:
        return self._job_action("cancel_job", "cancel", ("queued", "running", "waiting"))

    def _job_action(self, tool: str, verb: str, statuses: tuple[str, ...]):
        done = _outcome_lines(self.turn, tool, f"{verb} it")
        if done:
            return " " + done, []
        if self.intent.value:
            return f"Trying to {verb} job #{self.intent.value}.", [
                Call(tool, {"job_id": int(self.intent.value)})
            ]
        if not self.round:
            return "Let me look at the jobs.", [Call("get_project_status", {})]
        status = _status(self.turn) or {"recent_jobs": []}
        jobs = [j for j in status["recent_jobs"] if j["status"] in statuses]
        if not jobs:
            return f" There is no job to {verb} right now.", []
        return f" Job #{jobs[0]['id']} ({jobs[0]['type']}): on it.", [
            Call(tool, {"job_id": jobs[0]["id"]})
        ]


class LocalDirector:
    name = "local"

    def __init__(self, *, delay: float = 0.0):
        self.delay = delay  # between words, so a demo reads as streamed

    def step(self, turn: TurnInput, on_delta: Callable[[str], None]) -> Step:
        text, calls = _Plan(turn, parse(turn.message)).next()
        self._speak(text, on_delta)
        return Step(text=text, calls=calls)

    def _speak(self, text: str, on_delta: Callable[[str], None]) -> None:
        for index, word in enumerate(re.findall(r"\s*\S+", text)):
            if index and self.delay:
                time.sleep(self.delay)
            on_delta(word)
