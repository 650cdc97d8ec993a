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
    "edit_scene": "edit a scene",
    "edit_frame": "edit a shot",
    "regenerate_portrait": "redo one portrait",
    "regenerate_keyframe": "redo one keyframe",
    "regenerate_clip": "redo one clip",
    "regenerate_scene": "redo one scene's keyframes or clips",
    "list_takes": "list the takes of a unit",
    "select_take": "bring back an older take",
    "refresh_stale": "update what is stale",
    "approve_storyboard": "approve the storyboard",
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
    "list_voices": "list the voices",
    "set_voice": "give a character another voice",
    "generate_lines": "speak the lines",
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
    "regenerate_keyframe": '"make frame 2 of scene 2 darker"',
    "regenerate_portrait": '"redo Mara\'s portrait"',
    "refresh_stale": '"update stale"',
    "list_voices": '"list voices"',
    "set_voice": '"give Mira a deeper voice"',
    "generate_lines": '"speak the lines of scene 2"',
}


@dataclass(frozen=True)
class UnitRequest:
    """A request about one unit, by the numbers a person uses (scene 2, its third shot).

    `action`: keyframe, clip, portrait (one unit redone); scene_keyframes, scene_clips (each
    of one scene's); shots (one scene's shot list rewritten); edit_frame, edit_scene (`field`
    set to `value`, then the keyframe redrawn if `then_redo`); take (`take`: an id or
    "previous", of `kind`); point (highlight it); which (it is unclear which unit)."""

    action: str
    scene: int | None = None  # by order, from 1; -1 is the last
    frame: int | None = None
    character: str = ""
    instructions: str = ""
    field: str = ""
    value: str = ""
    take: str = ""
    kind: str = ""
    then_redo: bool = False


@dataclass(frozen=True)
class Intent:
    kind: str
    value: str = ""
    extra: str = ""
    unit: UnitRequest | None = None


def _page_word(text: str) -> str | None:
    word = text.lower().strip(" .!?")
    return PAGE_WORDS.get(word) or PAGE_WORDS.get(word.removesuffix(" page"))


def _generate_kind(text: str) -> str | None:
    """A project-wide step. Redoing verbs count only with all/every/whole: "regenerate its
    frames" names no step of the whole project."""
    nouns = r"\b(characters?|cast|scenes?|frames?|keyframes?|storyboard|videos?|clips?)\b"
    match = re.search(
        r"\b(?:generate|create|make|start|render|write|draw|produce)\b.*?" + nouns, text
    ) or re.search(
        r"\b(?:re-?generate|redo|re-?draw|re-?make|re-?render|re-?write)\b.*?"
        r"\b(?:all|every|whole|entire)\b.*?" + nouns,
        text,
    )
    return KIND_WORDS[match.group(1).rstrip("s")] if match else None


# Whose voice: a name, or the narrator (never an article or a pronoun read as a name).
_WHO = r"((?:the\s+)?narrator|(?!(?:the|a|an|his|her|their|its|my|our)\b)[A-Za-z][\w-]*)"
_RULES: list[tuple[str, str]] = [
    ("highlight", r"\bhighlight\s+(?:the\s+)?(.+?)[.!?]*$"),
    ("new_project", r"\b(?:new|create\s+a|start\s+a(?:\s+new)?)\s+project\b"),
    (
        "approve_storyboard",
        r"\bapprove\s+(?:the\s+)?(?:storyboard|keyframes)\b|"
        r"\bstoryboard\s+(?:is\s+|looks\s+)?(?:good|fine|great|ok(?:ay)?|approved)\b",
    ),
    (
        "approve_all",
        r"\bapprove\s+(?:them\s+)?(?:all|everyone|everybody|every\s+character|the\s+(?:whole\s+)?cast)\b",
    ),
    ("approve", r"\bapprove\s+(.+?)[.!?]*$"),
    ("reject", r"\breject\s+(.+?)(?:\s+(?:because|since|as|for)\s+(.+?))?[.!?]*$"),
    ("list_voices", r"\b(?:list|show|which|what)\b.*\bvoices?\b|^\W*voices\W*$"),
    # set_voice: (the character's name or "the narrator", what the voice should be)
    ("set_voice", rf"\bgive\s+{_WHO}\s+(.*\bvoice\b.*?)[.!?]*$"),
    (
        "set_voice",
        rf"\bmake\s+{_WHO}(?:(?:'|\u2019)s\s+voice(?:\s+sound)?|\s+sound)\s+(.+?)[.!?]*$",
    ),
    (
        "set_voice",
        rf"\b(?:change|set|switch)\s+{_WHO}(?:'|\u2019)s\s+voice\s+(?:to|into)\s+(.+?)[.!?]*$",
    ),
    (
        "set_voice",
        rf"\b(?:change|set|switch)\s+the\s+voice\s+of\s+{_WHO}\s+(?:to|into)\s+(.+?)[.!?]*$",
    ),
    ("set_voice", rf"\b{_WHO}\s+should\s+sound\s+(.+?)[.!?]*$"),
    # Paid: only a sentence that opens with the verb and asks nothing ("what does Mira say in
    # her lines?" and "read me the dialogue" are questions about the text).
    (
        "speak_lines",
        r"^\W*(?:(?:please|now|ok(?:ay)?|so|and|then|also)\W+)*(?!.*\?\W*$)(?:"
        r"(?:speak|say|voice|record|narrate|read\s+(?:out|aloud))\b.*\b(?:lines?|dialogue)\b|"
        r"(?:generate|create|redo)\b.*\b(?:lines|spoken\s+lines|audio|speech)\b|speak\b)",
    ),
    ("unit", ""),  # a request about one unit (parse_unit), before the generic rules
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
        "refresh",
        r"\b(?:stale|out[- ]of[- ]date|outdated)\b|^\W*(?:please\s+)?refresh\b|"
        r"\brefresh\s+(?:it|them|the\s+(?:project|film)|everything)\b",
    ),
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
        if kind == "unit":
            unit = parse_unit(text)
            if unit is not None:
                return Intent("unit", unit=unit)
            continue
        match = re.search(pattern, text, flags=re.IGNORECASE)
        if match:
            groups = [g or "" for g in match.groups()]
            return Intent(kind, *(g.strip() for g in groups[:2]))
    unit = parse_unit(text, bare=True)
    if unit is not None:
        return Intent("unit", unit=unit)
    kind = _generate_kind(lowered)
    return Intent("generate", kind) if kind else Intent("help")


# ------------------------------------------------------------------ requests about one unit

NUMBER_WORDS = {
    word: n
    for n, word in enumerate(
        "one two three four five six seven eight nine ten eleven twelve".split(), start=1
    )
}
ORDINAL_WORDS = {
    word: n
    for n, word in enumerate(
        "first second third fourth fifth sixth seventh eighth ninth tenth eleventh twelfth".split(),
        start=1,
    )
} | {"last": -1}
_NUM = r"(\d+|" + "|".join(NUMBER_WORDS) + r")"
_ORD = r"(\d+(?:st|nd|rd|th)|" + "|".join(ORDINAL_WORDS) + r")"
_FRAME_NOUN = r"(?:key\s?frame|frame|shot|image|picture|panel|clip|video)"
_NUMBERED = r"\s+(?:#|no\.?\s*|number\s+)?"
SCENE_REF = re.compile(rf"\bscene{_NUMBERED}{_NUM}\b|\b(?:the\s+)?{_ORD}\s+scene\b", re.IGNORECASE)
FRAME_REF = re.compile(
    rf"\b{_FRAME_NOUN}{_NUMBERED}{_NUM}\b|\b(?:the\s+)?{_ORD}\s+{_FRAME_NOUN}\b", re.IGNORECASE
)
_NAME = r"([A-Za-z][\w-]*)"
_NOT_NAMES = {"his", "her", "their", "its", "the", "this", "that", "a", "an", "my", "our", "every"}
PORTRAIT_REFS = [
    re.compile(rf"\b(?:portrait|picture|headshot|image|face)\s+of\s+{_NAME}", re.IGNORECASE),
    re.compile(
        rf"\b{_NAME}(?:'|\u2019)s\s+(?:portrait|picture|headshot|face|look)\b", re.IGNORECASE
    ),
]
# The same references with the whole of a name of several words ("Elias Lindqvist's
# portrait", "portrait of Elias Lindqvist"): taken out of the instructions.
_CAPITALIZED = r"(?-i:[A-Z])[\w-]*"
PORTRAIT_SPANS = [
    re.compile(
        rf"\b(?:portrait|picture|headshot|image|face)\s+of\s+[A-Za-z][\w-]*(?:\s+{_CAPITALIZED})*",
        re.IGNORECASE,
    ),
    re.compile(
        rf"(?:\b{_CAPITALIZED}\s+)*\b[A-Za-z][\w-]*(?:'|\u2019)s\s+"
        r"(?:portrait|picture|headshot|face|look)\b",
        re.IGNORECASE,
    ),
]
CLIP_WORDS = re.compile(r"\b(?:clips?|videos?|animation|motion|movement)\b", re.IGNORECASE)
SHOT_LIST_WORDS = re.compile(
    r"\bshot\s*list\b|\b(?:new|rewrite|re-write|write)\b.*\bshots\b", re.IGNORECASE
)
REDO_VERBS = re.compile(
    r"\b(?:re-?generate|regen|redo|re-?draw|re-?render|re-?make|re-?shoot|re-?animate|"
    r"again|make|render|draw|generate|create|give|fix|improve|tweak|adjust|try)\b",
    re.IGNORECASE,
)
# Words of other requests: leftover text beside them is no instruction to redo anything.
CONTROL_WORDS = re.compile(
    r"\b(?:cancel|retry|stop|abort|delete|remove|approve|reject|status|progress)\b", re.I
)
POINT_WORDS = re.compile(r"\b(?:show|where|find|point|look\s+at|see)\b", re.IGNORECASE)
TAKE_VERBS = re.compile(
    r"\b(?:select|choose|pick|use|restore|revert|roll\s*back|go\s+back|undo|bring\s+back|"
    r"switch\s+back|put\s+back)\b",
    re.IGNORECASE,
)
TAKE_ID = re.compile(r"\btake\s*#?\s*(\d+)\b", re.IGNORECASE)
PREVIOUS_WORDS = re.compile(
    r"\b(?:previous|older|earlier|old|original|prior|before|revert|roll\s*back|undo|go\s+back)\b",
    re.IGNORECASE,
)
PRONOUN_REDO = re.compile(
    r"\b(?:re-?generate|redo|re-?draw|re-?make|re-?render)\b.*\b(?:its|their|it|them|this|that)\b",
    re.IGNORECASE,
)
FRAME_FIELDS = {
    "prompt": "prompt",
    "description": "prompt",
    "action": "prompt",
    "camera": "camera",
    "angle": "camera",
    "dialogue": "dialogue",
    "line": "dialogue",
    "lines": "dialogue",
    "speaker": "speaker",
}
SCENE_FIELDS = {
    "title": "title",
    "name": "title",
    "mood": "mood",
    "tone": "mood",
    "location": "location",
    "setting": "location",
    "place": "location",
    "plot": "concise_plot",
    "summary": "concise_plot",
    "dialogue": "dialogue",
}
EDIT = re.compile(
    r"\b(?:set|change|update|edit|make|switch|rename)\b.*?\b("
    + "|".join(sorted({*FRAME_FIELDS, *SCENE_FIELDS}, key=len, reverse=True))
    + r")\b.*?\s(?:to|into|:)\s+(.+?)$",
    re.IGNORECASE,
)
RENAME_SCENE = re.compile(r"\brename\b.*?\bscene\b.*?\bto\s+(.+?)$", re.IGNORECASE)
MAKE_SPEAKER = re.compile(rf"\bmake\s+{_NAME}\s+(?:the\s+)?speaker\b", re.IGNORECASE)
THEN_REDO = re.compile(
    r"\s*(?:,|;)?\s*\b(?:and|then)\s+(?:then\s+)?(?:re-?generate|redo|re-?draw|re-?make|"
    r"re-?render|make|draw|render)\b(?:\s+(?:its|their|the|all|it|them|again))*"
    r"(?:\s+(?:key\s?frames?|frames?|shots?|images?|clips?|videos?|portrait|pictures?))?"
    r"(?:\s+again)?",
    re.IGNORECASE,
)
_OBJECT_WORDS = re.compile(
    r"(?:'|\u2019)s|\b(?:key\s?frames?|frames?|shots?|images?|pictures?|clips?|videos?|portraits?|"
    r"headshots?|again|please|for\s+me|thanks|thank\s+you)\b",
    re.IGNORECASE,
)
_LEADING_VERB = re.compile(
    r"^\s*(?:(?:can|could|would)\s+you\s+|please\s+|i\s+want\s+(?:you\s+)?to\s+)*"
    r"(?:re-?generate|regen|redo|re-?draw|re-?render|re-?make|re-?shoot|re-?animate|make|"
    r"render|draw|generate|create|give|fix|improve|tweak|adjust|try)\b",
    re.IGNORECASE,
)
_EDGE_WORDS = {
    "the", "of", "in", "from", "for", "on", "at", "and", "then", "so", "that", "it", "is",
    "looks", "look", "be", "to", "me", "us", "them", "its", "their", "but", "one", "ones",
}  # fmt: skip


def _number(word: str) -> int:
    word = word.lower()
    if word in NUMBER_WORDS:
        return NUMBER_WORDS[word]
    if word in ORDINAL_WORDS:
        return ORDINAL_WORDS[word]
    return int(re.sub(r"\D", "", word))


def _ref_number(match: re.Match | None) -> int | None:
    if match is None:
        return None
    return _number(next(g for g in match.groups() if g))


def _portrait_name(text: str) -> str:
    for pattern in PORTRAIT_REFS:
        for match in pattern.finditer(text):
            if match.group(1).lower() not in _NOT_NAMES:
                return match.group(1)
    return ""


def _instructions(text: str) -> str:
    """What is left of the request once the unit, the verbs and the nouns are taken out:
    "make the second scene more tense and regenerate its frames" → "more tense"; "redo
    Elias Lindqvist's portrait: older, in a raincoat" → "older, in a raincoat"."""
    for pattern in (SCENE_REF, FRAME_REF, *PORTRAIT_SPANS, THEN_REDO):
        text = pattern.sub(" ", text)
    text = _OBJECT_WORDS.sub(" ", text)
    text = _LEADING_VERB.sub(" ", text)
    words = text.replace(",", " , ").replace(":", " : ").split()
    strip = _EDGE_WORDS | {",", ":", "-", "—", ";"}
    while words and words[0].lower().strip(".!?") in strip:
        words.pop(0)
    while words and words[-1].lower().strip(".!?") in strip:
        words.pop()
    joined = re.sub(r"\s+([,;:.!?])", r"\1", " ".join(words))  # "older , in" → "older, in"
    return joined.strip(" .!?,;:")[:2000]


def _edit_value(value: str) -> tuple[str, bool]:
    """ "a close-up and regenerate it" → ("a close-up", True)."""
    redo = THEN_REDO.search(value)
    if redo:
        value = value[: redo.start()]
    return value.strip().strip("\"“”'").strip(" .!") or "", redo is not None


def _edit_request(text: str, scene: int | None, frame: int | None) -> UnitRequest | None:
    speaker = MAKE_SPEAKER.search(text)
    if speaker and frame is not None:
        return UnitRequest(
            "edit_frame", scene=scene, frame=frame, field="speaker", value=speaker.group(1)
        )
    rename = RENAME_SCENE.search(text)
    if rename and scene is not None and frame is None:
        return UnitRequest(
            "edit_scene", scene=scene, field="title", value=_edit_value(rename.group(1))[0]
        )
    edit = EDIT.search(text)
    if edit and (scene is not None or frame is not None):
        field = edit.group(1).lower()
        value, redo = _edit_value(edit.group(2))
        if frame is not None and field in FRAME_FIELDS:
            return UnitRequest(
                "edit_frame",
                scene=scene,
                frame=frame,
                field=FRAME_FIELDS[field],
                value=value,
                then_redo=redo,
            )
        if frame is None and field in SCENE_FIELDS:
            return UnitRequest("edit_scene", scene=scene, field=SCENE_FIELDS[field], value=value)

    return None


def parse_unit(message: str, *, bare: bool = False) -> UnitRequest | None:
    """A request about one scene, frame, clip or portrait, or None.

    With `bare`, a mere reference ("the third shot of scene 1") points at the unit; without,
    only requests that do something to one are taken (so "cancel ..." stays a cancel)."""
    text = " ".join(message.split())
    scene = _ref_number(SCENE_REF.search(text))
    frame = _ref_number(FRAME_REF.search(text))
    name = _portrait_name(text)
    clip = bool(CLIP_WORDS.search(text))
    kind = "portrait" if name else "clip" if clip else "keyframe"
    unit = {"scene": scene, "frame": frame, "character": name}

    take_id = TAKE_ID.search(text)
    if take_id and TAKE_VERBS.search(text):
        return UnitRequest("take", take=take_id.group(1))
    if (scene or frame or name) and TAKE_VERBS.search(text) and PREVIOUS_WORDS.search(text):
        return UnitRequest("take", **unit, take="previous", kind=kind)

    edit = _edit_request(text, scene, frame)
    if edit is not None:
        return edit
    if not (scene or frame or name):
        if PRONOUN_REDO.search(text) and not re.search(r"\b(?:all|every|whole)\b", text, re.I):
            return UnitRequest("which")
        return None
    instructions = _instructions(text)
    if CONTROL_WORDS.search(text) and not REDO_VERBS.search(text):
        return None
    acting = bool(REDO_VERBS.search(text)) or (bool(instructions) and not POINT_WORDS.search(text))
    if not acting:
        return UnitRequest("point", **unit) if bare else None
    if name:
        return UnitRequest("portrait", character=name, instructions=instructions)
    if frame is not None:
        return UnitRequest(kind, scene=scene, frame=frame, instructions=instructions)
    if SHOT_LIST_WORDS.search(text):
        return UnitRequest("shots", scene=scene)
    action = "scene_clips" if clip else "scene_keyframes"
    return UnitRequest(action, scene=scene, instructions=instructions)


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
            elif o.result.get("confirmation_required"):
                lines.append(
                    f"This needs your go-ahead: {o.result['summary']} Press Confirm to do it."
                )
            elif "character" in o.result:
                c = o.result["character"]
                lines.append(f"{c['name']} is now {c['status']}.")
            elif "job" in o.result:
                job = o.result["job"]
                lines.append(f"Job #{job['id']} ({job['type']}) is {job['status']}.")
            elif "jobs" in o.result:
                listed = ", ".join(f"#{job['id']} ({job['type']})" for job in o.result["jobs"])
                lines.append(f"Started jobs {listed}.")
            elif "project" in o.result:
                lines.append(f"Done: “{o.result['project'].get('title', '')}” is updated.")
            elif "scene" in o.result:
                lines.append(f"Scene {o.result['scene']['order']} is updated.")
            elif "frame" in o.result:
                lines.append(f"Frame {o.result['frame']['order']} is updated.")
            elif "take" in o.result:
                lines.append(f"Take #{o.result['take']['id']} is current now.")
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
    "refresh": "refresh_stale",
    "approve_storyboard": "approve_storyboard",
    "list_voices": "list_voices",
    "set_voice": "set_voice",
    "speak_lines": "generate_lines",
}
_NEEDS_PROJECT = {
    "status",
    "approve_all",
    "approve",
    "reject",
    "generate",
    "stitch",
    "rename",
    "refresh",
    "approve_storyboard",
    "unit",
    "set_voice",
    "speak_lines",
}
# The tool each kind of unit request ends with.
UNIT_TOOL = {
    "keyframe": "regenerate_keyframe",
    "clip": "regenerate_clip",
    "portrait": "regenerate_portrait",
    "scene_keyframes": "regenerate_scene",
    "scene_clips": "regenerate_scene",
    "shots": "start_generation",
    "edit_frame": "edit_frame",
    "edit_scene": "edit_scene",
    "take": "select_take",
    "point": "highlight",
}


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

    # ---------------------------------------------------------- one unit, refresh, storyboard

    def do_refresh(self) -> tuple[str, list[Call]]:
        if self.round:
            return " " + _outcome_lines(self.turn, "refresh_stale", "update it"), []
        return "Let me see what is stale.", [Call("refresh_stale", {})]

    def do_approve_storyboard(self) -> tuple[str, list[Call]]:
        if self.round:
            return " " + _outcome_lines(self.turn, "approve_storyboard", "approve it"), []
        return "Approving the storyboard.", [Call("approve_storyboard", {})]

    # ---------------------------------------------------------- sound: voices and lines

    def _voices(self) -> dict | None:
        found = [r for r in _results(self.turn, "list_voices") if "voices" in r]
        return found[-1] if found else None

    def do_list_voices(self) -> tuple[str, list[Call]]:
        if not self.round:
            return "Let me look at the voices.", [Call("list_voices", {})]
        voices = self._voices()
        if voices is None:
            error = _results(self.turn, "list_voices")[-1].get("error", "")
            return f" I could not read the voices: {error}", []
        return " " + describe_voices(voices), []

    def do_set_voice(self) -> tuple[str, list[Call]]:
        if not self.round:
            return "Let me look at the voices.", [Call("list_voices", {})]
        if self.round > 1:  # the tool says what it did, and what is stale now
            said = [r.get("done") or f"I could not change the voice: {r.get('error')}"
                    for r in _results(self.turn, "set_voice")]  # fmt: skip
            return " " + " ".join(said), []
        voices = self._voices()
        if voices is None:
            return " I could not read the voices.", []
        cast = voices.get("cast", [])
        if self.intent.value.lower().removeprefix("the ").strip() == "narrator":
            return (
                " The narrator is nobody in the cast: lines without a speaker are read in the "
                "speech provider's narrator voice, which is not set per project. Give the line "
                f"a speaker to have it said in their voice. {_cast_line(cast)}",
                [],
            )
        found = _matches(cast, [self.intent.value])
        if not found:
            return f" I found nobody called “{self.intent.value}”. {_cast_line(cast)}", []
        character = found[0]
        voice = voice_asked_for(voices["voices"], character, cast, self.intent.extra)
        if voice is None:
            return (
                f" Which voice for {character['name']}? Say e.g. “a deeper voice”, “warmer”, "
                f"“older” or a voice's name. {describe_voices(voices)}",
                [],
            )
        return f" Giving {character['name']} the voice {voice['name']}.", [
            Call("set_voice", {"character_id": character["id"], "voice": voice["id"]})
        ]

    def do_speak_lines(self) -> tuple[str, list[Call]]:
        text = self.turn.message
        scene = _ref_number(SCENE_REF.search(text))
        frame = _ref_number(FRAME_REF.search(text))
        if scene is None and frame is None:  # the whole project's missing or stale lines
            if self.round:
                return " " + _outcome_lines(self.turn, "generate_lines", "speak them"), []
            return "Speaking the lines.", [Call("generate_lines", {})]
        if not self.round:
            return "Let me find them.", [Call("get_project_status", {})]
        if self.round > 1:
            return " " + _outcome_lines(self.turn, "generate_lines", "speak them"), []
        status = _status(self.turn)
        if status is None:
            return " I could not read the project.", []
        problem, found, frame_id = self._find(UnitRequest("lines", scene, frame), status)
        if problem:
            return " " + problem, []
        assert found is not None
        if frame_id is not None:
            return " Speaking that line.", [Call("generate_lines", {"frame_id": frame_id})]
        return f" Speaking the lines of scene {found['order']}.", [
            Call("generate_lines", {"scene_id": found["id"]})
        ]

    def do_unit(self) -> tuple[str, list[Call]]:
        unit = self.intent.unit
        assert unit is not None
        if unit.action == "which":
            return (
                "Which one? Name the unit, e.g. “scene 2”, “frame 3 of scene 1” or “Mara's "
                "portrait”: I will not redo the whole project for that.",
                [],
            )
        tool = UNIT_TOOL[unit.action]
        if tool not in self.tools:
            return self.elsewhere(tool), []
        if unit.action == "take" and unit.take.isdigit():
            return self._take_by_id(int(unit.take))
        if not self.round:
            return "Let me find it.", [Call("get_project_status", {})]
        status = _status(self.turn)
        if status is None:
            return " I could not read the project.", []
        if self.round == 1:
            return self._act_on_unit(unit, status)
        if unit.action == "take" and self.round == 2:
            return self._select_previous(unit)
        return " " + self._report(), []

    def _take_by_id(self, take_id: int) -> tuple[str, list[Call]]:
        if self.round:
            return " " + self._report(), []
        return f"Bringing back take #{take_id}.", [Call("select_take", {"take_id": take_id})]

    def _report(self) -> str:
        tools = [o.name for r in self.turn.rounds for o in r.outcomes]
        lines = [
            _outcome_lines(self.turn, name, "do that")
            for name in dict.fromkeys(tools)
            if name not in ("get_project_status", "list_takes", "highlight")
        ]
        return " ".join(line for line in lines if line) or "Done."

    def _find(self, unit: UnitRequest, status: dict) -> tuple[str, dict | None, int | None]:
        """(a problem, the scene, the frame id) for the unit's numbers."""
        scenes = status["scenes"]
        if not scenes:
            return "The project has no scenes yet.", None, None
        if unit.scene is None:
            if len(scenes) > 1 and unit.frame is not None:
                return (
                    f"Frame {unit.frame} of which scene? There are {len(scenes)} scenes: say "
                    f"e.g. “frame {unit.frame} of scene 2”.",
                    None,
                    None,
                )
            number = 1
        else:
            number = len(scenes) if unit.scene == -1 else unit.scene
        scene = next((s for s in scenes if s["order"] == number), None)
        if scene is None:
            return f"There is no scene {number}: the project has {len(scenes)}.", None, None
        if unit.frame is None:
            return "", scene, None
        frame_ids = scene["frame_ids"]
        index = len(frame_ids) if unit.frame == -1 else unit.frame
        if not 1 <= index <= len(frame_ids):
            count = len(frame_ids)
            return f"Scene {number} has {count} frame(s), no frame {index}.", scene, None
        return "", scene, frame_ids[index - 1]

    def _character(self, name: str, status: dict) -> dict | None:
        found = _matches(status["characters"], [name])
        return found[0] if found else None

    def _act_on_character(self, unit: UnitRequest, status: dict) -> tuple[str, list[Call]]:
        character = self._character(unit.character, status)
        if character is None:
            cast = _cast_line(status["characters"])
            return f" I found nobody called “{unit.character}”. {cast}", []
        if unit.action == "take":
            return " Looking at the portrait's takes.", [
                Call("list_takes", {"character_id": character["id"]})
            ]
        extra = {"instructions": unit.instructions} if unit.instructions else {}
        return f" I can redo the portrait of {character['name']}.", [
            Call("regenerate_portrait", {"character_id": character["id"], **extra})
        ]

    def _act_on_unit(self, unit: UnitRequest, status: dict) -> tuple[str, list[Call]]:
        if unit.character:
            return self._act_on_character(unit, status)
        extra = {"instructions": unit.instructions} if unit.instructions else {}
        problem, scene, frame_id = self._find(unit, status)
        if problem:
            return " " + problem, []
        assert scene is not None
        label = f"scene {scene['order']}"
        if frame_id is not None:
            label = f"frame {scene['frame_ids'].index(frame_id) + 1} of {label}"
        if unit.action in ("keyframe", "clip", "edit_frame", "take") and frame_id is None:
            return f" Which frame of {label}? It has {scene['frames']}.", []
        if unit.action == "point":
            target = f"frame:{frame_id}" if frame_id else f"scene:{scene['id']}"
            return f" Here is {label}.", [Call("highlight", {"target": target})]
        if unit.action in ("keyframe", "clip"):
            return f" I can redo the {unit.action} of {label}.", [
                Call(UNIT_TOOL[unit.action], {"frame_id": frame_id, **extra})
            ]
        if unit.action == "take":
            kind = "clip" if unit.kind == "clip" else "keyframe"
            return f" Looking at the {kind} takes of {label}.", [
                Call("list_takes", {"frame_id": frame_id, "kind": kind})
            ]
        if unit.action == "edit_frame":
            return self._edit_frame(unit, status, label, frame_id)
        if unit.action == "edit_scene":
            return f" Editing {label}.", [
                Call("edit_scene", {"scene_id": scene["id"], unit.field: unit.value})
            ]
        if unit.action == "shots" or (unit.action == "scene_keyframes" and not scene["frames"]):
            return f" Writing the shots of {label}.", [
                Call("start_generation", {"kind": "frames", "scene_id": scene["id"]})
            ]
        kind = "clips" if unit.action == "scene_clips" else "keyframes"
        return f" I can redo the {kind} of {label}.", [
            Call("regenerate_scene", {"scene_id": scene["id"], "kind": kind, **extra})
        ]

    def _edit_frame(
        self, unit: UnitRequest, status: dict, label: str, frame_id: int | None
    ) -> tuple[str, list[Call]]:
        value: str | int | None = unit.value
        if unit.field == "speaker":
            if unit.value.lower().removeprefix("the ") in ("narrator", "nobody", "none"):
                value = None
            else:
                character = self._character(unit.value, status)
                if character is None:
                    return f" I found nobody called “{unit.value}”.", []
                value = character["id"]
        field = "speaker_id" if unit.field == "speaker" else unit.field
        calls = [Call("edit_frame", {"frame_id": frame_id, field: value})]
        if unit.then_redo and "regenerate_keyframe" in self.tools:
            calls.append(Call("regenerate_keyframe", {"frame_id": frame_id}))
        return f" Editing {label}.", calls

    def _select_previous(self, unit: UnitRequest) -> tuple[str, list[Call]]:
        found = [r for r in _results(self.turn, "list_takes") if "takes" in r]
        takes = found[-1]["takes"] if found else []
        current = next((i for i, t in enumerate(takes) if t["current"]), None)
        older = takes[current + 1 :] if current is not None else takes[1:]
        if not older:
            return " There is no older take to go back to.", []
        take = older[0]
        return f" Bringing back take #{take['id']}.", [Call("select_take", {"take_id": take["id"]})]


# What a person asks of a voice, as the traits voices are described by.
VOICE_WORDS = {
    "deep": {"low", "mature"},
    "low": {"low", "mature"},
    "gravelly": {"low"},
    "rough": {"low"},
    "old": {"mature"},
    "mature": {"mature"},
    "young": {"young"},
    "high": {"high", "bright", "young"},
    "light": {"bright", "high"},
    "bright": {"bright"},
    "warm": {"warm"},
    "soft": {"warm"},
    "gentle": {"warm"},
    "calm": {"warm"},
    "male": {"masculine"},
    "man": {"masculine"},
    "masculine": {"masculine"},
    "female": {"feminine"},
    "woman": {"feminine"},
    "feminine": {"feminine"},
}
_GENDERS = {"feminine", "masculine"}


def _voice_word(word: str) -> set[str]:
    """ "deeper" → the traits of "deep"; "warmer" → "warm"; unknown words → nothing."""
    word = word.lower().strip(".,!?\"'“”")
    for form in (word, word.removesuffix("er"), word.removesuffix("r"), word.removesuffix("ish")):
        if form in VOICE_WORDS:
            return VOICE_WORDS[form]
    return set()


def voice_asked_for(
    voices: list[dict], character: dict, cast: list[dict], wanted: str
) -> dict | None:
    """The voice a request asks for: one named in it, else the best fit for the qualities it
    names (keeping the current voice's register unless it asks for another, preferring voices
    nobody else in the cast speaks in); None when it names nothing a voice is described by."""
    words = re.findall(r"[\w-]+", wanted.lower())
    for voice in voices:
        if voice["id"].lower() in words or voice["name"].lower() in words:
            return voice
    traits: set[str] = set().union(*(_voice_word(w) for w in words)) if words else set()
    if not traits:
        return None
    by_id = {v["id"]: v for v in voices}
    current = character.get("voice", "")
    register = set(by_id.get(current, {}).get("traits", [])) & _GENDERS
    keep = register if not traits & _GENDERS else set()
    taken = {c.get("voice") for c in cast if c["id"] != character["id"]}

    def score(voice: dict) -> int:
        has = set(voice.get("traits", []))
        points = 3 * len(traits & has)
        if keep and not keep & has:
            points -= 4
        return points - (1 if voice["id"] in taken else 0)

    choices = [v for v in voices if v["id"] != current and traits & set(v.get("traits", []))]
    if not choices:
        return None
    return max(choices, key=score)  # the first of the best, in the provider's order


def describe_voices(result: dict) -> str:
    voices = result["voices"]
    speech = result.get("speech", {})
    listed = "; ".join(f"{v['name']} ({v['description'].split(' (')[0]})" for v in voices)
    line = f"The {len(voices)} voices of {speech.get('provider', 'the speech provider')}: {listed}."
    names = {v["id"]: v["name"] for v in voices}
    cast = result.get("cast", [])
    if cast:
        speaks = ", ".join(
            f"{c['name']} speaks as {names.get(c['voice'], c['voice'])}" for c in cast
        )
        line += f" {speaks}."
    return line


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
