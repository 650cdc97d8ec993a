"""Takes, their inputs and staleness.

Each kind of take has an inputs document: the canonical JSON of everything that shapes it (texts,
the ids of the parent takes it was made from, format settings). A take stores the document it was
made from and its hash; a unit is stale when the hash of its document *now* differs from its
current take's. Reasons come from diffing the two documents, so they name what changed. Never
timestamps: writing the same text back makes nothing stale."""

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, NamedTuple

from django.core.exceptions import ImproperlyConfigured
from django.db import models

from filmstudio.queries import CompiledQuery
from projects.cast import shot_cast
from projects.events import publish_entity
from projects.models import Character, Frame, Project, ProjectObject, Take, Video
from projects.sound import spoken_text

Kind = Take.Kind


# `json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)`, with one
# encoder for every call (a project document hashes one inputs document per take).
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def inputs_hash(document: dict[str, Any]) -> str:
    return hashlib.sha256(_CANONICAL.encode(document).encode()).hexdigest()


# --- inputs documents ----------------------------------------------------------------------


def portrait_inputs(character: Character) -> dict[str, Any]:
    project = character.project
    return {
        "character": {
            "name": character.name,
            "role": character.role,
            "description": character.description,
            "appearance": character.appearance,
        },
        "style": project.style,
    }


def reference_inputs(obj: ProjectObject) -> dict[str, Any]:
    return {
        "object": {"name": obj.name, "description": obj.description},
        "style": obj.project.style,
    }


def _portraits_of(frame: Frame) -> dict[str, dict[str, Any]]:
    return {str(c.pk): {"name": c.name, "take": c.take_id} for c in shot_cast(frame)}


def keyframe_inputs(frame: Frame) -> dict[str, Any]:
    scene, project = frame.scene, frame.scene.project
    document: dict[str, Any] = {
        "frame": {"prompt": frame.prompt, "camera": frame.camera},
        "scene": {
            "title": scene.title,
            "concise_plot": scene.concise_plot,
            "location": scene.location,
            "mood": scene.mood,
        },
        "project": {"style": project.style, "aspect_ratio": project.aspect_ratio},
        "portraits": _portraits_of(frame),
    }
    # The scene's props and places drawn so far (only when it has any: older takes keep
    # their hash).
    things = {
        str(o.pk): {"name": o.name, "take": o.take_id}
        for o in frame.scene.project_objects.all()
        if o.take_id
    }
    if things:
        document["objects"] = things
    return document


def clip_inputs(frame: Frame) -> dict[str, Any]:
    return {
        "keyframe": frame.keyframe_take_id,
        "frame": {"prompt": frame.prompt, "camera": frame.camera, "dialogue": frame.dialogue},
        "clip_seconds": frame.scene.project.clip_seconds,
    }


# Which speech provider and model speak lines now: `generation` registers its choice
# (generation.providers.speech_choice) from its ready(), so this module knows no provider.
_speech_choice: list[Callable[[], tuple[str, str]]] = []


def register_speech_choice(choice: Callable[[], tuple[str, str]]) -> None:
    _speech_choice[:] = [choice]


# And which voice a character's lines are spoken in (generation.voices.voice_for): the one
# stored, or when the provider does not offer it one picked from what the rest of the cast
# (`cast`: the project's characters, else read) leaves.
VoiceLookup = Callable[[Character, "list[Character] | None"], str]
_voice_lookup: list[VoiceLookup] = []


def register_voice_lookup(lookup: VoiceLookup) -> None:
    _voice_lookup[:] = [lookup]


def spoken_voice(character: Character, cast: list[Character] | None = None) -> str:
    if not _voice_lookup:
        raise ImproperlyConfigured("No voice lookup registered (is `generation` installed?)")
    return _voice_lookup[0](character, cast)


def speech_now() -> dict[str, str]:
    if not _speech_choice:
        raise ImproperlyConfigured("No speech choice registered (is `generation` installed?)")
    provider, model = _speech_choice[0]()
    return {"provider": provider, "model": model}


def line_inputs(
    frame: Frame, speech: dict[str, str] | None = None, cast: list[Character] | None = None
) -> dict[str, Any]:
    """A spoken line: its text, who says it, in which voice (the one spoken, which is the
    stored one while the provider offers it: `spoken_voice`; the narrator's has none here: it
    is the provider's, `generation.voices.narrator_voice`) and which provider and model speak
    it (`speech`: `speech_now()` unless given), so switching them makes the lines stale.
    `cast`: all of the project's characters, when at hand."""
    speaker = frame.speaker
    return {
        "line": {"dialogue": frame.dialogue, "speaker": frame.speaker_id},
        "voice": spoken_voice(speaker, cast) if speaker is not None else "",
        "speech": speech if speech is not None else speech_now(),
    }


def line_wanted(frame: Frame, speech: dict[str, str]) -> bool:
    """A frame with words to say whose line is missing or made from other inputs (its text,
    speaker, voice, or the speech provider and model: `speech`). `frame` with its speaker,
    line take and scene's characters."""
    if not spoken_text(frame):
        return False
    take = frame.line_take
    return take is None or staleness(take, line_inputs(frame, speech)).stale


def wanted_lines(frames: Iterable[Frame]) -> list[Frame]:
    """The frames whose line a project or scene audio job speaks (`line_wanted` with the
    speech provider and model now). Frames with their speaker, line take and scene's
    characters (`with_line_inputs`)."""
    speech = speech_now()
    return [f for f in frames if line_wanted(f, speech)]


def with_line_inputs(frames: models.QuerySet[Frame]) -> models.QuerySet[Frame]:
    """What `line_inputs` and `spoken_text` read of each frame, fetched with it."""
    return frames.select_related("speaker", "line_take").prefetch_related("scene__characters")


def film_inputs(project: Project, frames: list[Frame]) -> dict[str, Any]:
    clips = []
    for frame in frames:
        video = getattr(frame, "video", None)
        clips.append([frame.pk, video.take_id if video is not None else None])
    document: dict[str, Any] = {"clips": clips}
    # Sound joins the document only once there is some: a silent film cut before sound
    # existed stays fresh.
    lines = [[f.pk, f.line_take_id] for f in frames if f.line_take_id and f.dialogue.strip()]
    if lines:
        document["lines"] = lines
    if project.music != Project.Music.NONE:
        document["music"] = [project.music, project.music_file]
    if project.burn_subtitles:
        document["burn_subtitles"] = True
    return document


# --- reasons -------------------------------------------------------------------------------

_LABELS = {
    ("character", None): "character description edited",
    ("style", None): "project style changed",
    ("frame", "prompt"): "frame prompt edited",
    ("frame", "camera"): "camera edited",
    ("frame", "dialogue"): "dialogue edited",
    ("scene", None): "scene text edited",
    ("project", "style"): "project style changed",
    ("project", "aspect_ratio"): "aspect ratio changed",
    ("keyframe", None): "keyframe changed",
    ("objects", None): "the scene's objects changed",
    ("object", "name"): "name changed",
    ("object", "description"): "description changed",
    ("clip_seconds", None): "clip length changed",
    ("line", "dialogue"): "dialogue edited",
    ("line", "speaker"): "speaker changed",
    ("voice", None): "voice changed",
    ("lines", None): "a spoken line changed",
    ("music", None): "music changed",
    ("burn_subtitles", None): "subtitle burn-in changed",
}


def _portrait_reasons(old: dict, new: dict) -> list[str]:
    reasons = []
    for pk in sorted(set(old) | set(new), key=int):
        was, now = old.get(pk), new.get(pk)
        if was == now:
            continue
        name = (now or was or {}).get("name", f"character {pk}")
        if was is None:
            reasons.append(f"{name} joined the scene")
        elif now is None:
            reasons.append(f"{name} left the scene")
        else:
            reasons.append(f"portrait of {name} changed")
    return reasons


def _clip_reasons(old: list, new: list) -> list[str]:
    reasons = []
    if [f for f, _ in old] != [f for f, _ in new]:
        reasons.append("shots added, removed or reordered")
    old_takes = {frame_id: take_id for frame_id, take_id in old}
    for position, (frame_id, take_id) in enumerate(new, start=1):
        if frame_id in old_takes and old_takes[frame_id] != take_id:
            reasons.append(f"clip of shot {position} changed")
    return reasons


def _speech_reasons(old: dict, new: dict) -> list[str]:
    was = f"{old.get('provider', '?')} ({old.get('model', '?')})"
    now = f"{new.get('provider', '?')} ({new.get('model', '?')})"
    if old.get("provider") != new.get("provider"):
        return [f"speech provider changed from {was} to {now}"]
    return [f"speech model changed from {old.get('model')} to {new.get('model')}"]


def stale_reasons(before: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """Name what changed between the inputs a take was made from and the inputs now."""
    reasons: list[str] = []
    for key in sorted(set(before) | set(now)):
        old, new = before.get(key), now.get(key)
        if old == new:
            continue
        if key == "portraits":
            found = _portrait_reasons(old or {}, new or {})
        elif key == "clips":
            found = _clip_reasons(old or [], new or [])
        elif key == "speech":
            found = _speech_reasons(old or {}, new or {})
        elif key == "voice" and old and new:
            found = [f"voice changed from {old} to {new}"]
        elif isinstance(old, dict) and isinstance(new, dict) and (key, None) not in _LABELS:
            found = [
                _LABELS.get((key, field), f"{key} {field} changed")
                for field in sorted(set(old) | set(new))
                if old.get(field) != new.get(field)
            ]
        else:
            found = [_LABELS.get((key, None), f"{key} changed")]
        reasons += [r for r in found if r not in reasons]
    return reasons


@dataclass(frozen=True)
class Staleness:
    stale: bool
    reasons: list[str]


FRESH = Staleness(False, [])


class Recorded:
    """What staleness reads of a take (fetched as plain values, with the unit's row). `inputs`
    may come as its JSON text, parsed when first read: a fresh take's is not (its hash says)."""

    __slots__ = ("_inputs", "inputs_hash", "kind", "model", "provider")

    def __init__(
        self, kind: str, inputs: dict[str, Any] | str, inputs_hash: str, provider: str, model: str
    ):
        self.kind, self._inputs, self.inputs_hash = kind, inputs, inputs_hash
        self.provider, self.model = provider, model

    @property
    def inputs(self) -> dict[str, Any]:
        if isinstance(self._inputs, str):
            self._inputs = json.loads(self._inputs)
        return self._inputs


RECORDED_FIELDS = ("kind", "inputs", "inputs_hash", "provider", "model")


def _recorded_inputs(take: Take | Recorded, now: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The take's inputs document and hash; a line spoken before its speech provider was part
    of its inputs has the provider and model its take records."""
    if "speech" in now and take.kind == Kind.LINE and "speech" not in take.inputs:
        document = {**take.inputs, "speech": {"provider": take.provider, "model": take.model}}
        return document, inputs_hash(document)
    return take.inputs, take.inputs_hash


def _recorded_hash(take: Take | Recorded, now: dict[str, Any]) -> str:
    """The hash `_recorded_inputs` gives, reading the take's inputs only for a line's."""
    if "speech" in now and take.kind == Kind.LINE:
        return _recorded_inputs(take, now)[1]
    return take.inputs_hash


def staleness(take: Take | Recorded | None, now: dict[str, Any]) -> Staleness:
    """A unit with no take yet is not stale (it is missing); a take made before inputs were
    recorded (upgraded) takes the inputs as they stand as its baseline."""
    if take is None or not take.inputs_hash:
        return FRESH
    if _recorded_hash(take, now) == inputs_hash(now):
        return FRESH
    before = _recorded_inputs(take, now)[0]
    return Staleness(True, stale_reasons(before, now) or ["inputs changed"])


# --- recording and selecting ---------------------------------------------------------------


def _unit_of(take: Take) -> Character | Frame | Video | ProjectObject | Project:
    if take.kind == Kind.PORTRAIT:
        return take.character
    if take.kind == Kind.REFERENCE:
        return take.object
    if take.kind in (Kind.KEYFRAME, Kind.LINE):
        return take.frame
    if take.kind == Kind.CLIP:
        video = Video.objects.get_or_create(frame_id=take.frame_id)[0]
        if Take.frame.is_cached(take):  # its event names the scene and project: not read again
            video.frame = take.frame
        return video
    return take.project


def make_current(take: Take) -> None:
    """Point the unit at `take` (and its file field at the take's file). Nothing else changes:
    dependents become stale, nothing is regenerated."""
    unit = _unit_of(take)
    if isinstance(unit, Character | ProjectObject):
        unit.take, unit.image = take, take.file
        unit.save(update_fields=["take", "image", "updated_at"])
    elif isinstance(unit, Frame) and take.kind == Kind.LINE:
        unit.line_take = take
        unit.save(update_fields=["line_take", "updated_at"])
    elif isinstance(unit, Frame):
        unit.keyframe_take, unit.image = take, take.file
        unit.save(update_fields=["keyframe_take", "image", "updated_at"])
    elif isinstance(unit, Video):
        unit.take, unit.file, unit.duration = take, take.file, take.duration
        unit.status = Video.Status.READY
        unit.save(update_fields=["take", "file", "duration", "status", "updated_at"])
    else:
        unit.film_take, unit.final_video, unit.final_duration = take, take.file, take.duration
        unit.save(update_fields=["film_take", "final_video", "final_duration", "updated_at"])
    publish_entity(unit)


def take_record(
    *,
    project_id: int,
    kind: str,
    file: str,
    inputs: dict[str, Any],
    character: Character | None = None,
    frame: Frame | None = None,
    obj: ProjectObject | None = None,
    duration: float | None = None,
    prompt: str = "",
    instructions: str = "",
    provider: str = "",
    model: str = "",
    seed: int | None = None,
    cost_usd: Decimal | int = 0,
    consistency: dict | None = None,
    source_job_id: int | None = None,
    current: bool = True,
) -> Take:
    """A new take (inside the caller's transaction), current unless told otherwise."""
    take = Take.objects.create(
        project_id=project_id,
        kind=kind,
        character=character,
        frame=frame,
        object=obj,
        file=file,
        duration=duration,
        prompt=prompt,
        instructions=instructions,
        provider=provider,
        model=model,
        seed=seed,
        cost_usd=cost_usd,
        consistency=consistency,
        inputs=inputs,
        inputs_hash=inputs_hash(inputs),
        source_job_id=source_job_id,
    )
    if current:
        make_current(take)
    return take


# Where each kind of unit points at its current take.
_POINTERS = (
    (Character, "take_id"),
    (ProjectObject, "take_id"),
    (Frame, "keyframe_take_id"),
    (Frame, "line_take_id"),
    (Video, "take_id"),
    (Project, "film_take_id"),
)


def current_take_ids(takes) -> set[int]:
    """The current ones among `takes` (a read, one query per kind of unit whatever the count)."""
    ids = {t.pk for t in takes}
    current: set[int] = set()
    for model, pointer in _POINTERS:
        rows = model.objects.filter(**{f"{pointer}__in": ids}).values_list(pointer, flat=True)
        current |= set(rows)
    return current


def take_is_current(take: Take) -> bool:
    return take.pk in current_take_ids([take])


class UnitTakes(NamedTuple):
    """A unit's current take, how many takes it has, and whether its inputs changed since (a
    tuple: a project document makes one per unit)."""

    take_id: int | None
    takes_count: int
    stale: bool
    reasons: list[str]


NO_TAKES = UnitTakes(None, 0, False, [])


# The takes counted by unit, a query compiled once (with a stand-in for the project's id).
_TAKE_COUNTS = CompiledQuery(
    lambda pid: (
        Take.objects.filter(project_id=pid)
        .values_list("kind", "character_id", "frame_id", "object_id")
        .annotate(n=models.Count("id"))
        .values_list("kind", "character_id", "frame_id", "object_id", "n")
    ),
    2**62 + 17,
)


def take_states(
    project: Project,
    characters: list[Character],
    frames: list[Frame],
    objects: list[ProjectObject] | tuple = (),
) -> dict[tuple[str, int], UnitTakes]:
    """The takes of every unit, keyed ("portrait", character id), ("reference", object id),
    ("keyframe", frame id), ("clip", frame id), ("line", frame id: frames with dialogue or a
    line), ("film", project id): two queries, whatever the project's size.

    `frames` come in film order with their scene (its project and characters loaded) and
    video; `characters` and `objects` with their project."""
    videos = {f.pk: getattr(f, "video", None) for f in frames}
    current = {("portrait", c.pk): c.take_id for c in characters}
    current.update({("keyframe", f.pk): f.keyframe_take_id for f in frames})
    current.update({("reference", o.pk): o.take_id for o in objects})
    current.update({("clip", pk): v.take_id if v else None for pk, v in videos.items()})
    current.update({("line", f.pk): f.line_take_id for f in frames if f.line_take_id or f.dialogue})
    current[("film", project.pk)] = project.film_take_id
    recorded = {
        pk: Recorded(*values)
        for pk, *values in Take.objects.filter(
            pk__in=[pk for pk in current.values() if pk]
        ).values_list("id", *RECORDED_FIELDS)
    }
    return unit_states(
        project.pk, current, recorded, InputsNow(project, characters, frames, objects)
    )


def unit_states(
    project_id: int,
    current: dict[tuple[str, int], int | None],
    recorded: dict[int, Recorded],
    inputs_now: Callable[[tuple[str, int]], dict[str, Any]],
    cursor: Any = None,
) -> dict[tuple[str, int], UnitTakes]:
    """`take_states` from what it gathers: each unit's current take id (`current`, keyed as
    there), those takes (`recorded`, by id) and the unit's inputs document now
    (`inputs_now(key)`, asked only of units whose current take recorded inputs: with none a
    unit cannot be stale). One query: the takes counted by unit (on `cursor` if given)."""
    counts: dict[tuple[str, int], int] = {}
    for kind, character_id, frame_id, object_id, n in _TAKE_COUNTS.rows(project_id, cursor=cursor):
        counts[(kind, character_id or frame_id or object_id or project_id)] = n
    states = {}
    for key, take_id in current.items():
        take = recorded.get(take_id) if take_id else None
        if take is None or not take.inputs_hash:
            count = counts.get(key, 0)
            states[key] = UnitTakes(take_id, count, False, []) if take_id or count else NO_TAKES
            continue
        found = staleness(take, inputs_now(key))
        states[key] = UnitTakes(take_id, counts.get(key, 0), found.stale, found.reasons)
    return states


class InputsNow:
    """The inputs document of a unit as it stands, by `take_states` key, built when asked."""

    def __init__(self, project, characters, frames, objects):
        self.project, self.characters, self.frames = project, characters, frames
        self._characters = {c.pk: c for c in characters}
        self._objects = {o.pk: o for o in objects}
        self._frames = {f.pk: f for f in frames}
        self._speech: dict[str, str] | None = None

    def __call__(self, key: tuple[str, int]) -> dict[str, Any]:
        kind, pk = key
        if kind == "portrait":
            return portrait_inputs(self._characters[pk])
        if kind == "reference":
            return reference_inputs(self._objects[pk])
        if kind == "keyframe":
            return keyframe_inputs(self._frames[pk])
        if kind == "clip":
            return clip_inputs(self._frames[pk])
        if kind == "line":
            if self._speech is None:
                self._speech = speech_now()
            return line_inputs(self._frames[pk], self._speech, self.characters or None)
        return film_inputs(self.project, self.frames)


def hierarchy_frames(project: Project) -> list[Frame]:
    return list(
        Frame.objects.filter(scene__project=project)
        .select_related("scene__project", "video", "speaker")
        .prefetch_related("scene__characters", "scene__project_objects", "characters")
        .order_by("scene__order", "order")
    )


STAGE_ORDER = ("portrait", "reference", "keyframe", "clip", "line", "film")


def project_stale_units(project: Project) -> list[dict[str, Any]]:
    """Every unit whose current take was made from inputs that have changed since, in
    dependency order (portraits, objects' reference images, keyframes, clips, lines, the
    film), with the reasons."""
    return _stale(project, hierarchy_frames(project))


def _stale(project: Project, frames: list[Frame]) -> list[dict[str, Any]]:
    characters = list(
        project.characters.filter(status=Character.Status.APPROVED).select_related("project")
    )
    objects = list(project.project_objects.select_related("project").order_by("id"))
    states = take_states(project, characters, frames, objects)
    stale = [(key, state) for key, state in states.items() if state.stale]
    stale.sort(key=lambda item: STAGE_ORDER.index(item[0][0]))  # stable: film order kept
    return [{"type": kind, "id": pk, "reasons": state.reasons} for (kind, pk), state in stale]


def refresh_plan(project: Project) -> list[dict[str, Any]]:
    """What a refresh will redo: the stale units, and the units that will go stale once those
    are redone (`"follows": true`): the keyframes showing a redone portrait or reference image
    (those of the scenes listing the object), the clip of a redone keyframe, the film once any
    clip is redone. In the order the refresh runs."""
    frames = hierarchy_frames(project)
    units = _stale(project, frames)
    planned = {(u["type"], u["id"]) for u in units}

    def follow(kind: str, pk: int, reason: str) -> None:
        if (kind, pk) not in planned:
            planned.add((kind, pk))
            units.append({"type": kind, "id": pk, "reasons": [reason], "follows": True})

    redone_portraits = {pk for kind, pk in planned if kind == "portrait"}
    redone_references = {pk for kind, pk in planned if kind == "reference"}
    for frame in frames:
        if not frame.keyframe_take_id:
            continue
        cast = {c.pk for c in frame.scene.characters.all() if c.status == Character.Status.APPROVED}
        if cast & redone_portraits:
            follow("keyframe", frame.pk, "a portrait it shows is redone")
        elif {o.pk for o in frame.scene.project_objects.all()} & redone_references:
            follow("keyframe", frame.pk, "a reference image it shows is redone")
    for frame in frames:
        video = getattr(frame, "video", None)
        if ("keyframe", frame.pk) in planned and video is not None and video.take_id:
            follow("clip", frame.pk, "its keyframe is redone")
    if project.film_take_id and any(kind == "clip" for kind, _ in planned):
        follow("film", project.pk, "a clip is redone")
    if project.film_take_id and any(kind == "line" for kind, _ in planned):
        follow("film", project.pk, "a spoken line is redone")
    units.sort(key=lambda u: STAGE_ORDER.index(u["type"]))
    return units


def unit_takes(kind: str, unit: Character | ProjectObject | Frame | Video | Project) -> UnitTakes:
    """One unit's `UnitTakes`, for a response about that unit alone (a project document gets
    them all at once from `take_states`)."""
    if isinstance(unit, Character):
        return take_states(unit.project, [unit], []).get((kind, unit.pk), NO_TAKES)
    if isinstance(unit, ProjectObject):
        return take_states(unit.project, [], [], [unit]).get((kind, unit.pk), NO_TAKES)
    if isinstance(unit, Video):
        unit = unit.frame
    if isinstance(unit, Frame):
        frame = (
            Frame.objects.select_related("scene__project", "video", "speaker")
            .prefetch_related("scene__characters", "characters")
            .get(pk=unit.pk)
        )
        return take_states(frame.scene.project, [], [frame]).get((kind, frame.pk), NO_TAKES)
    return take_states(unit, [], hierarchy_frames(unit)).get((kind, unit.pk), NO_TAKES)
