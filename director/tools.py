"""The director's tools: thin wrappers over the same selectors and services as the API.

Two kinds:
- UI tools (navigate, highlight, open_modal) are carried out by the client: the server only
  checks their arguments, and their result is None (`function_call {result: null}`).
- Action tools run here, as the calling user. Every object is looked up through the owner-scoped
  `*_for_user` selectors, so a tool can never reach another user's objects; refusals
  (Http404, ConflictError, invalid arguments) come back as `{"error": "..."}` for the model to
  explain, never as a crash of the turn.

Action tools that spend money or replace content (`Tool.propose`) do not act on the first
call: `execute` checks the arguments and the objects, and answers with a `Proposal` (what would
happen, what it would cost) instead; the turn turns it into a `confirm` event and a single-use
token, and the call runs only when the person confirms it (`execute(..., agreed=proposal)`).
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from django.http import Http404
from rest_framework import serializers

from director.pages import PAGES, Page
from director.selectors import (
    character_brief,
    frame_brief,
    job_brief,
    project_summary,
    scene_brief,
    take_brief,
)
from filmstudio.exceptions import ConflictError
from generation import services as generation
from generation.models import GenerationJob
from generation.pipeline import cast_problem, keyframes_problem, stitch_problem
from generation.providers import speech_choice
from generation.selectors import job_for_user, job_quote, project_stale_report
from generation.serializers import (
    CharacterJobRequest,
    KeyframeJobRequest,
    PortraitJobRequest,
    VideoJobRequest,
)
from generation.voices import offered as voices_offered
from generation.voices import voice_for
from projects import selectors
from projects.models import Character, Frame, Project, Scene, Take
from projects.serializers import (
    FrameUpdateSerializer,
    ProjectSerializer,
    RejectSerializer,
    SceneUpdateSerializer,
)
from projects.sound import spoken_text
from projects.takes import current_take_ids, wanted_lines, with_line_inputs

Type, Target = GenerationJob.Type, GenerationJob.TargetType

logger = logging.getLogger(__name__)

Result = dict[str, Any]
TOOL_KINDS = ("ui", "action")


class ToolError(Exception):
    """A call the tool refuses; the message goes back to the model."""


@dataclass(frozen=True)
class ToolContext:
    user: Any
    project_id: int | None
    page: Page


@dataclass(frozen=True)
class Proposal:
    """What a call needing confirmation would do, for the person to decide on."""

    summary: str
    # The paid calls and their price, e.g. {"images": 1, "total_usd": 0.039}; `total_usd` is the
    # same quote as a job request's dry run.
    estimate: dict


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    parameters: dict  # JSON Schema of the arguments (Gemini function declaration)
    kind: Literal["ui", "action"]
    # UI tools: check the arguments (raise ToolError); action tools: do it and return a result.
    run: Callable[[ToolContext, dict], Result | None]
    # Tools that spend or replace: check the call and say what it would do (None: nothing to
    # confirm, e.g. selecting the take that is already current); it runs once confirmed.
    propose: Callable[[ToolContext, dict], Proposal | None] | None = None


CONFIRMATION_NOTE = (
    "Nothing has been done yet: this spends money or replaces content, so the app shows the "
    "person a confirm button with this summary. Tell them what it will do and ask them to "
    "confirm there; do not call the tool again."
)


@dataclass(frozen=True)
class ToolOutcome:
    name: str
    args: dict
    result: Result | None
    proposal: Proposal | None = None  # set when the call waits for the person's confirmation

    def as_call(self) -> dict:
        return {"name": self.name, "args": self.args, "result": self.result}


def _object(properties: dict, required: tuple[str, ...] = ()) -> dict:
    return {"type": "object", "properties": properties, "required": list(required)}


_ID = {"type": "integer", "minimum": 1}
_PROJECT_ID = {**_ID, "description": "Defaults to the project the person has open."}
_INSTRUCTIONS = {
    "type": "string",
    "maxLength": 2000,
    "description": "What to change, in the person's words (added to the prompt).",
}


# ------------------------------------------------------------------ argument helpers


def normalized(args: Any) -> dict:
    """JSON from the model may carry 3.0 for 3: make integral floats ints (not an object: no
    arguments)."""
    if not isinstance(args, dict):
        return {}
    return {
        key: int(value) if isinstance(value, float) and value.is_integer() else value
        for key, value in args.items()
    }


def _int_arg(args: dict, name: str) -> int:
    value = args.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ToolError(f"{name} must be a positive integer id.")
    return value


def _validated(serializer_class, data: dict) -> dict:
    """The API's own request serializers check tool arguments too."""
    serializer = serializer_class(data=data)
    if not serializer.is_valid():
        raise ToolError(_error_text(serializer.errors))
    return dict(serializer.validated_data)


def _error_text(detail: Any) -> str:
    if isinstance(detail, dict):
        return "; ".join(
            f"{key}: {_error_text(value)}" if key != "non_field_errors" else _error_text(value)
            for key, value in detail.items()
        )
    if isinstance(detail, list):
        return " ".join(_error_text(item) for item in detail)
    return str(detail)


def _project(ctx: ToolContext, args: dict) -> Project:
    project_id = args.get("project_id") or ctx.project_id
    if project_id is None:
        raise ToolError("No project is open: open a project first or give project_id.")
    return selectors.project_for_user(ctx.user, _int_arg({"project_id": project_id}, "project_id"))


# ------------------------------------------------------------------ action tools


def get_project_status(ctx: ToolContext, args: dict) -> Result:
    return project_summary(ctx.user, _project(ctx, args).pk)


def list_projects(ctx: ToolContext, args: dict) -> Result:
    projects_ = selectors.projects_for_user(ctx.user).order_by("-updated_at")[:20]
    return {
        "projects": [
            {"id": p.pk, "title": p.title, "status": p.status, "progress": p.progress}
            for p in projects_
        ]
    }


def update_project(ctx: ToolContext, args: dict) -> Result:
    project = _project(ctx, args)
    fields = {key: value for key, value in args.items() if key != "project_id"}
    if not fields:
        raise ToolError("Give at least one field to change.")
    serializer = ProjectSerializer(project, data=fields, partial=True)
    if not serializer.is_valid():
        raise ToolError(_error_text(serializer.errors))
    project = generation.project_update(project=project, **serializer.validated_data)
    return {"project": {key: getattr(project, key) for key in ("id", "title", *fields)}}


def approve_character(ctx: ToolContext, args: dict) -> Result:
    character = selectors.character_for_user(ctx.user, _int_arg(args, "character_id"))
    return {"character": character_brief(generation.character_approve(character=character))}


def reject_character(ctx: ToolContext, args: dict) -> Result:
    character = selectors.character_for_user(ctx.user, _int_arg(args, "character_id"))
    reason = _validated(RejectSerializer, {"reason": args.get("reason", "")})
    character = generation.character_reject(character=character, reason=reason.get("reason", ""))
    return {"character": character_brief(character)}


def _start_characters(ctx: ToolContext, args: dict) -> GenerationJob:
    project = _project(ctx, args)
    options = {key: args[key] for key in ("count", "instructions") if key in args}
    data = _validated(CharacterJobRequest, {"project_id": project.pk, **options})
    return generation.start_character_generation(
        project=project, count=data["count"], instructions=data["instructions"]
    )


def _start_frames(ctx: ToolContext, args: dict) -> GenerationJob:
    if "scene_id" in args:
        scene = selectors.scene_for_user(ctx.user, _int_arg(args, "scene_id"))
        return generation.start_frame_generation(project=scene.project, scene=scene)
    return generation.start_frame_generation(project=_project(ctx, args))


def _start_videos(ctx: ToolContext, args: dict) -> GenerationJob:
    if "frame_id" in args:
        frame = selectors.frame_for_user(ctx.user, _int_arg(args, "frame_id"))
        return generation.start_video_generation(project=frame.scene.project, frame=frame)
    return generation.start_video_generation(project=_project(ctx, args))


_STARTERS: dict[str, Callable[[ToolContext, dict], GenerationJob]] = {
    "characters": _start_characters,
    "scenes": lambda ctx, args: generation.start_scene_generation(project=_project(ctx, args)),
    "frames": _start_frames,
    "videos": _start_videos,
    "stitch": lambda ctx, args: generation.start_stitching(project=_project(ctx, args)),
}


def start_generation(ctx: ToolContext, args: dict) -> Result:
    starter = _STARTERS.get(args.get("kind", ""))
    if starter is None:
        raise ToolError(f"kind must be one of {', '.join(_STARTERS)}.")
    return {"job": job_brief(starter(ctx, args))}


def retry_job(ctx: ToolContext, args: dict) -> Result:
    job = job_for_user(ctx.user, _int_arg(args, "job_id"))
    return {"job": job_brief(generation.job_retry(job=job))}


def cancel_job(ctx: ToolContext, args: dict) -> Result:
    job = job_for_user(ctx.user, _int_arg(args, "job_id"))
    return {"job": job_brief(generation.job_cancel(job=job))}


def retry_job_proposal(ctx: ToolContext, args: dict) -> Proposal:
    job = job_for_user(ctx.user, _int_arg(args, "job_id"))
    return Proposal(
        f"Retry job #{job.pk} ({job.type}): its paid calls are made again.",
        _priced({"jobs": 1}, job.project, job.type, job.target_type, job.target_id, job.params),
    )


# ------------------------------------------------------------------ what a start would cost


def _priced(counts: dict, project: Project, type: str, target_type: str, ids, params=None) -> dict:
    """The paid calls a person is asked to agree to, and their price (the same quote as a job
    request's dry run; summed over `ids`, the units it is asked for)."""
    ids = ids if isinstance(ids, list | tuple) else [ids]
    total = sum(
        (
            Decimal(str(job_quote(project, type, target_type, pk, params)["total_usd"]))
            for pk in ids
        ),
        Decimal(0),
    )
    return {**counts, "total_usd": float(total)}


def _frames_of(project: Project) -> int:
    return Frame.objects.filter(scene__project=project).count()


def _clips_after_keyframes(project: Project, frames: int) -> dict:
    # With the storyboard checkpoint no clip is made before the producer approves.
    return {} if "storyboard" in (project.checkpoints or []) else {"clips": frames}


def start_generation_proposal(ctx: ToolContext, args: dict) -> Proposal:
    kind = args.get("kind", "")
    if kind not in _STARTERS:
        raise ToolError(f"kind must be one of {', '.join(_STARTERS)}.")
    if kind == "frames" and "scene_id" in args:
        scene = selectors.scene_for_user(ctx.user, _int_arg(args, "scene_id"))
        shots = scene.project.frames_per_scene
        return Proposal(
            f"Rewrite the shot list of scene {scene.order} ({scene.title}) and draw its "
            f"{shots} keyframes: its current shots and clips are replaced.",
            _priced(
                {"text_calls": 1, "images": shots, **_clips_after_keyframes(scene.project, shots)},
                scene.project, Type.FRAMES, Target.SCENE, scene.pk,
            ),
        )  # fmt: skip
    if kind == "videos" and "frame_id" in args:
        frame = selectors.frame_for_user(ctx.user, _int_arg(args, "frame_id"))
        return Proposal(
            f"Make the clip of {_frame_label(frame)} again.",
            _priced({"clips": 1}, frame.scene.project, Type.VIDEOS, Target.FRAME, frame.pk),
        )
    project = _project(ctx, args)
    scenes, shots = project.num_scenes, project.frames_per_scene
    if kind == "characters":
        data = _validated(
            CharacterJobRequest,
            {
                "project_id": project.pk,
                **{k: args[k] for k in ("count", "instructions") if k in args},
            },
        )
        return Proposal(
            f"Generate {data['count']} characters with portraits for “{project.title}”.",
            _priced(
                {"text_calls": 1, "images": data["count"]},
                project, Type.CHARACTERS, Target.PROJECT, project.pk,
                {"count": data["count"], "instructions": data["instructions"]},
            ),
        )  # fmt: skip
    if kind == "scenes":
        if problem := cast_problem(project):
            raise ToolError(f"Cannot generate scenes: {problem}")
        replaced = (
            " Every current scene, shot and clip is replaced." if project.scenes.exists() else ""
        )
        return Proposal(
            f"Write the {scenes} scenes of “{project.title}”, then their shots and keyframes."
            + replaced,
            _priced(
                {
                    "text_calls": 1 + scenes,
                    "images": scenes * shots,
                    **_clips_after_keyframes(project, scenes * shots),
                },
                project, Type.SCENES, Target.PROJECT, project.pk,
            ),
        )  # fmt: skip
    if kind == "frames":
        count = project.scenes.count()
        if not count:
            raise ToolError("Cannot generate frames: the project has no scenes yet.")
        return Proposal(
            f"Rewrite the shot lists of all {count} scenes and draw every keyframe: every "
            "current shot and clip is replaced.",
            _priced(
                {
                    "text_calls": count,
                    "images": count * shots,
                    **_clips_after_keyframes(project, count * shots),
                },
                project, Type.FRAMES, Target.PROJECT, project.pk,
            ),
        )  # fmt: skip
    if kind == "videos":
        frames = _frames_of(project)
        if not frames:
            raise ToolError("Cannot generate videos: the project has no frames yet.")
        return Proposal(
            f"Make the clips of all {frames} frames.",
            _priced({"clips": frames}, project, Type.VIDEOS, Target.PROJECT, project.pk),
        )
    if problem := stitch_problem(project):
        raise ToolError(f"Cannot stitch: {problem}")
    return Proposal(f"Stitch the final film of “{project.title}”.", {"stitches": 1})


# ------------------------------------------------------------------ one unit: edits


def _frame_label(frame: Frame) -> str:
    return f"frame {frame.order} of scene {frame.scene.order}"


def _fields(args: dict, id_name: str) -> dict:
    fields = {key: value for key, value in args.items() if key != id_name}
    if not fields:
        raise ToolError("Give at least one field to change.")
    return fields


def edit_scene(ctx: ToolContext, args: dict) -> Result:
    scene = selectors.scene_for_user(ctx.user, _int_arg(args, "scene_id"))
    data = _validated_partial(SceneUpdateSerializer, _fields(args, "scene_id"))
    return {"scene": scene_brief(generation.scene_update(scene=scene, **data))}


def edit_frame(ctx: ToolContext, args: dict) -> Result:
    frame = selectors.frame_for_user(ctx.user, _int_arg(args, "frame_id"))
    data = _validated_partial(FrameUpdateSerializer, _fields(args, "frame_id"))
    return {"frame": frame_brief(generation.frame_update(frame=frame, **data))}


def _validated_partial(serializer_class, data: dict) -> dict:
    serializer = serializer_class(data=data, partial=True)
    if not serializer.is_valid():
        raise ToolError(_error_text(serializer.errors))
    return dict(serializer.validated_data)


# ------------------------------------------------------------------ one unit: regenerations


def _with(instructions: str) -> str:
    return f" ({instructions.strip()})" if instructions.strip() else ""


def _portrait_call(ctx: ToolContext, args: dict) -> tuple[Character, str]:
    data = _validated(PortraitJobRequest, args)
    return selectors.character_for_user(ctx.user, data["character_id"]), data["instructions"]


def regenerate_portrait(ctx: ToolContext, args: dict) -> Result:
    character, instructions = _portrait_call(ctx, args)
    job = generation.start_portrait_generation(character=character, instructions=instructions)
    return {"job": job_brief(job)}


def regenerate_portrait_proposal(ctx: ToolContext, args: dict) -> Proposal:
    character, instructions = _portrait_call(ctx, args)
    return Proposal(
        f"Draw the portrait of {character.name} again{_with(instructions)}; the current one "
        "stays as an older take.",
        _priced({"images": 1}, character.project, Type.PORTRAIT, Target.CHARACTER, character.pk),
    )


def _keyframe_call(ctx: ToolContext, args: dict) -> tuple[Frame, str]:
    data = _validated(KeyframeJobRequest, args)
    return selectors.frame_for_user(ctx.user, data["frame_id"]), data["instructions"]


def regenerate_keyframe(ctx: ToolContext, args: dict) -> Result:
    frame, instructions = _keyframe_call(ctx, args)
    return {
        "job": job_brief(
            generation.start_keyframe_generation(frame=frame, instructions=instructions)
        )
    }


def regenerate_keyframe_proposal(ctx: ToolContext, args: dict) -> Proposal:
    frame, instructions = _keyframe_call(ctx, args)
    if not frame.prompt:
        raise ToolError(f"{_frame_label(frame).capitalize()} has no shot text yet.")
    return Proposal(
        f"Draw the keyframe of {_frame_label(frame)} again{_with(instructions)}; its shot text "
        "stays and the current image stays as an older take.",
        _priced({"images": 1}, frame.scene.project, Type.KEYFRAME, Target.FRAME, frame.pk),
    )


def _clip_call(ctx: ToolContext, args: dict) -> tuple[Frame, str]:
    _int_arg(args, "frame_id")  # one clip: a project_id would mean all of them
    data = _validated(VideoJobRequest, args)
    return selectors.frame_for_user(ctx.user, data["frame_id"]), data["instructions"]


def _rest(args: dict, *names: str) -> dict:
    return {key: value for key, value in args.items() if key not in names}


def regenerate_clip(ctx: ToolContext, args: dict) -> Result:
    frame, instructions = _clip_call(ctx, args)
    job = generation.start_video_generation(
        project=frame.scene.project, frame=frame, instructions=instructions
    )
    return {"job": job_brief(job)}


def regenerate_clip_proposal(ctx: ToolContext, args: dict) -> Proposal:
    frame, instructions = _clip_call(ctx, args)
    if not frame.image:
        raise ToolError(f"{_frame_label(frame).capitalize()} has no keyframe yet.")
    return Proposal(
        f"Make the clip of {_frame_label(frame)} again{_with(instructions)}; the current clip "
        "stays as an older take.",
        _priced({"clips": 1}, frame.scene.project, Type.VIDEOS, Target.FRAME, frame.pk),
    )


SCENE_REDO_KINDS = ("keyframes", "clips")


def _scene_call(ctx: ToolContext, args: dict) -> tuple[Scene, list[Frame], str, str]:
    scene = selectors.scene_for_user(ctx.user, _int_arg(args, "scene_id"))
    kind = args.get("kind", "keyframes")
    if kind not in SCENE_REDO_KINDS:
        raise ToolError(f"kind must be one of {', '.join(SCENE_REDO_KINDS)}.")
    extra = _rest(args, "scene_id", "kind")
    frames = list(scene.frames.select_related("scene__project").order_by("order"))
    if not frames:
        raise ToolError(
            f"Scene {scene.order} has no shots yet: write them with start_generation "
            f"kind=frames scene_id={scene.pk}."
        )
    # The API's own request checks the instructions (and refuses unknown arguments).
    data = _validated(KeyframeJobRequest, {"frame_id": frames[0].pk, **extra})
    return scene, frames, kind, data["instructions"]


def regenerate_scene(ctx: ToolContext, args: dict) -> Result:
    scene, frames, kind, instructions = _scene_call(ctx, args)
    with transaction.atomic():  # every frame's job, or none
        if kind == "keyframes":
            jobs = [
                generation.start_keyframe_generation(frame=frame, instructions=instructions)
                for frame in frames
            ]
        else:
            jobs = [
                generation.start_video_generation(
                    project=scene.project, frame=frame, instructions=instructions
                )
                for frame in frames
            ]
    return {"jobs": [job_brief(job) for job in jobs]}


def regenerate_scene_proposal(ctx: ToolContext, args: dict) -> Proposal:
    scene, frames, kind, instructions = _scene_call(ctx, args)
    if kind == "keyframes":
        return Proposal(
            f"Draw the {len(frames)} keyframes of scene {scene.order} ({scene.title}) again"
            f"{_with(instructions)}; the shot text stays and the current images stay as older "
            "takes.",
            _priced(
                {"images": len(frames)},
                scene.project, Type.KEYFRAME, Target.FRAME, [f.pk for f in frames],
            ),
        )  # fmt: skip
    missing = [f.order for f in frames if not f.image]
    if missing:
        raise ToolError(f"Frame(s) {missing} of scene {scene.order} have no keyframe yet.")
    return Proposal(
        f"Make the {len(frames)} clips of scene {scene.order} ({scene.title}) again"
        f"{_with(instructions)}; the current clips stay as older takes.",
        _priced(
            {"clips": len(frames)}, scene.project, Type.VIDEOS, Target.FRAME, [f.pk for f in frames]
        ),
    )


# ------------------------------------------------------------------ takes, refresh, storyboard


def list_takes(ctx: ToolContext, args: dict) -> Result:
    if ("character_id" in args) == ("frame_id" in args):
        raise ToolError("Give exactly one of character_id or frame_id.")
    if "character_id" in args:
        takes = selectors.character_for_user(ctx.user, _int_arg(args, "character_id")).takes
        kinds = [Take.Kind.PORTRAIT]
    else:
        takes = selectors.frame_for_user(ctx.user, _int_arg(args, "frame_id")).takes
        kind = args.get("kind", Take.Kind.KEYFRAME)
        if kind not in (Take.Kind.KEYFRAME, Take.Kind.CLIP):
            raise ToolError("kind must be keyframe or clip.")
        kinds = [kind]
    found = list(takes.filter(kind__in=kinds).order_by("-created_at", "-id")[:20])
    current = current_take_ids(found)
    return {"takes": [take_brief(take, current=take.pk in current) for take in found]}


def select_take(ctx: ToolContext, args: dict) -> Result:
    take = selectors.take_for_user(ctx.user, _int_arg(args, "take_id"))
    take = generation.take_select(take=take)
    return {"take": take_brief(take, current=True)}


def _take_unit(take: Take) -> str:
    if take.character_id:
        return f"the portrait of {take.character.name}"
    if take.frame_id:
        return f"the {take.kind} of {_frame_label(take.frame)}"
    return "the final film"


def select_take_proposal(ctx: ToolContext, args: dict) -> Proposal | None:
    take = selectors.take_for_user(ctx.user, _int_arg(args, "take_id"))
    if take.pk in current_take_ids([take]):
        return None  # already current: selecting it changes nothing
    return Proposal(
        f"Show take #{take.pk} as {_take_unit(take)}, replacing the current one (which stays "
        "as an older take); what depends on it becomes stale. Nothing is regenerated.",
        {},
    )


def refresh_stale(ctx: ToolContext, args: dict) -> Result:
    return {"job": job_brief(generation.refresh_start(project=_project(ctx, args)))}


def _unit_label(unit: dict) -> str:
    return f"{unit['type']} #{unit['id']} ({'; '.join(unit['reasons'])})"


def refresh_stale_proposal(ctx: ToolContext, args: dict) -> Proposal:
    report = project_stale_report(_project(ctx, args))
    units = report["units"]
    if not units:
        raise ToolError("Nothing is stale: every take matches its inputs.")
    return Proposal(
        f"Regenerate the {len(units)} stale unit(s), then re-cut the film: "
        + ", ".join(_unit_label(unit) for unit in units)
        + ".",
        report["estimate"],
    )


def approve_storyboard(ctx: ToolContext, args: dict) -> Result:
    return {"job": job_brief(generation.storyboard_approve(project=_project(ctx, args)))}


def approve_storyboard_proposal(ctx: ToolContext, args: dict) -> Proposal:
    project = _project(ctx, args)
    if project.status != Project.Status.AWAITING_STORYBOARD_APPROVAL:
        raise ToolError(
            "The storyboard can be approved only while the project is awaiting storyboard "
            f"approval (it is {project.status})."
        )
    if problem := keyframes_problem(project):
        raise ToolError(f"Cannot approve the storyboard: {problem}")
    frames = _frames_of(project)
    return Proposal(
        f"Approve the storyboard of “{project.title}” and make the clips of all {frames} frames.",
        _priced({"clips": frames}, project, Type.VIDEOS, Target.PROJECT, project.pk),
    )


# ------------------------------------------------------------------ sound: voices and lines


def _cast(project: Project) -> list[Character]:
    return list(project.characters.exclude(status=Character.Status.REJECTED).order_by("pk"))


def list_voices(ctx: ToolContext, args: dict) -> Result:
    """The speech provider's voices (with the traits a choice goes by) and, with a project
    open, which voice each of its characters speaks in."""
    provider, model = speech_choice()
    result: Result = {
        "speech": {"provider": provider, "model": model},
        "voices": [
            {**voice.as_dict(), "traits": sorted(voice.traits)} for voice in voices_offered()
        ],
    }
    if args.get("project_id") or ctx.project_id:
        project = _project(ctx, args)
        result["cast"] = [
            {"id": c.pk, "name": c.name, "status": c.status, "voice": voice_for(c)}
            for c in _cast(project)
        ]
    return result


def _stale_lines_of(character: Character) -> list[int]:
    """The frames whose current line, spoken by `character`, no longer matches its inputs."""
    frames = Frame.objects.filter(speaker=character, line_take__isnull=False)
    return [f.pk for f in wanted_lines(with_line_inputs(frames).order_by("scene__order", "order"))]


def set_voice(ctx: ToolContext, args: dict) -> Result:
    character = selectors.character_for_user(ctx.user, _int_arg(args, "character_id"))
    voice = args.get("voice")
    if not isinstance(voice, str) or not voice.strip():
        raise ToolError("voice must be a voice id from list_voices.")
    # A voice's name ("Gus") stands for its id ("espeak-gus"); anything else is refused.
    by_name = {v.name.lower(): v.id for v in voices_offered()}
    voice = by_name.get(voice.strip().lower(), voice.strip())
    before = character.voice
    character = generation.character_update(character=character, voice=voice)
    changed = before != character.voice
    stale = _stale_lines_of(character) if changed else []  # none made stale by this call
    if not changed:
        done = f"{character.name} already speaks in {character.voice}: nothing changed."
    else:
        done = f"{character.name} now speaks in {character.voice} (was {before or 'none'})."
    if stale:
        done += (
            f" {len(stale)} spoken line(s) of {character.name} are stale now; nothing is "
            "spoken again until you ask (generate_lines, or refresh_stale)."
        )
    return {
        "character": {**character_brief(character), "voice": character.voice},
        "stale_line_frame_ids": stale,
        "done": done,
    }


def _lines_call(ctx: ToolContext, args: dict) -> tuple[Project, list[Frame], str]:
    """What generate_lines would speak: (the project, the frames, what it is), or ToolError."""
    given = [name for name in ("frame_id", "scene_id") if name in args]
    if len(given) > 1 or (given and "project_id" in args):
        raise ToolError("Give one of frame_id, scene_id or project_id.")
    if "frame_id" in args:
        frame = selectors.frame_for_user(ctx.user, _int_arg(args, "frame_id"))
        shots, what = Frame.objects.filter(pk=frame.pk), f"the line of {_frame_label(frame)}"
        project = frame.scene.project
    elif "scene_id" in args:
        scene = selectors.scene_for_user(ctx.user, _int_arg(args, "scene_id"))
        shots = Frame.objects.filter(scene=scene)
        project, what = scene.project, f"the lines of scene {scene.order} ({scene.title})"
    else:
        project = _project(ctx, args)
        shots = Frame.objects.filter(scene__project=project)
        what = f"every missing or stale line of “{project.title}”"
    shots = with_line_inputs(shots.exclude(dialogue="").select_related("scene__project"))
    frames = [f for f in shots.order_by("scene__order", "order") if spoken_text(f)]
    if not frames:
        raise ToolError(f"Nothing to speak: {what.removeprefix('every ')} has no dialogue.")
    if "frame_id" not in args and "scene_id" not in args:  # the project's: what is not current
        frames = wanted_lines(frames)
        if not frames:
            raise ToolError("Nothing to speak: every line is spoken and up to date.")
    return project, frames, what


def generate_lines(ctx: ToolContext, args: dict) -> Result:
    project, frames, _ = _lines_call(ctx, args)
    if "frame_id" not in args and "scene_id" not in args:
        return {"job": job_brief(generation.start_audio_generation(project=project))}
    with transaction.atomic():  # every line's job, or none
        jobs = [generation.start_audio_generation(project=project, frame=f) for f in frames]
    return {"jobs": [job_brief(job) for job in jobs]}


def generate_lines_proposal(ctx: ToolContext, args: dict) -> Proposal:
    project, frames, what = _lines_call(ctx, args)
    provider, model = speech_choice()
    if "frame_id" not in args and "scene_id" not in args:
        return Proposal(
            f"Speak {what} ({len(frames)} line(s)) with {provider} {model}.",
            _priced({"lines": len(frames)}, project, Type.AUDIO, Target.PROJECT, project.pk),
        )
    speakers = sorted({f.speaker.name if f.speaker else "the narrator" for f in frames})
    return Proposal(
        f"Speak {what} again with {provider} {model} ({len(frames)} line(s), by "
        f"{', '.join(speakers)}); the current lines stay as older takes.",
        _priced({"lines": len(frames)}, project, Type.AUDIO, Target.FRAME, [f.pk for f in frames]),
    )


# ------------------------------------------------------------------ UI tools (checked only)


MODALS = ("new-project", "edit-project", "character", "reject-character", "job", "film")


def _check_navigate(ctx: ToolContext, args: dict) -> None:
    if args.get("page") not in PAGES:
        raise ToolError(f"page must be one of {', '.join(PAGES)}.")
    if "project_id" in args:
        selectors.project_for_user(ctx.user, _int_arg(args, "project_id"))


def _check_highlight(ctx: ToolContext, args: dict) -> None:
    target = args.get("target")
    if not isinstance(target, str) or not target.strip() or len(target) > 200:
        raise ToolError("target must be a short element name, such as approve-button.")


def _check_open_modal(ctx: ToolContext, args: dict) -> None:
    if args.get("modal") not in MODALS:
        raise ToolError(f"modal must be one of {', '.join(MODALS)}.")


# ------------------------------------------------------------------ the registry


_PROJECT_FIELDS = {
    "project_id": _PROJECT_ID,
    "title": {"type": "string", "maxLength": 200},
    "logline": {"type": "string", "maxLength": 2000},
    "synopsis": {"type": "string", "maxLength": 20000},
    "genre": {"type": "string", "maxLength": 100},
    "style": {"type": "string", "maxLength": 200},
    "num_scenes": {"type": "integer", "minimum": 1, "maximum": 30},
    "frames_per_scene": {"type": "integer", "minimum": 1, "maximum": 12},
    "clip_seconds": {"type": "integer", "minimum": 2, "maximum": 10},
    "aspect_ratio": {"type": "string", "enum": [c.value for c in Project.AspectRatio]},
}

TOOLS: dict[str, Tool] = {
    tool.name: tool
    for tool in (
        Tool(
            "navigate",
            "Take the person to a page of the app.",
            _object(
                {"page": {"type": "string", "enum": list(PAGES)}, "project_id": _PROJECT_ID},
                ("page",),
            ),
            "ui",
            _check_navigate,
        ),
        Tool(
            "highlight",
            "Make an element of the current page stand out, e.g. approve-button, "
            "generate-button, character:<id>, scene:<id>, frame:<id>, job:<id>.",
            _object({"target": {"type": "string"}}, ("target",)),
            "ui",
            _check_highlight,
        ),
        Tool(
            "open_modal",
            "Open a dialog of the app (id: the object it is about, when it needs one).",
            _object({"modal": {"type": "string", "enum": list(MODALS)}, "id": _ID}, ("modal",)),
            "ui",
            _check_open_modal,
        ),
        Tool(
            "list_projects",
            "The person's projects, most recently changed first.",
            _object({}),
            "action",
            list_projects,
        ),
        Tool(
            "get_project_status",
            "A project's state: status, progress, characters, scenes with frame and clip "
            "counts, recent jobs (with errors) and the next step.",
            _object({"project_id": _PROJECT_ID}),
            "action",
            get_project_status,
        ),
        Tool(
            "update_project",
            "Change a project's idea or format. Format fields cannot change while a job runs.",
            _object(_PROJECT_FIELDS),
            "action",
            update_project,
        ),
        Tool(
            "approve_character",
            "Approve a generated character (by id from get_project_status).",
            _object({"character_id": _ID}, ("character_id",)),
            "action",
            approve_character,
        ),
        Tool(
            "reject_character",
            "Reject a generated character, with the person's reason.",
            _object(
                {"character_id": _ID, "reason": {"type": "string", "maxLength": 2000}},
                ("character_id",),
            ),
            "action",
            reject_character,
        ),
        Tool(
            "start_generation",
            "Start a pipeline step: characters (count 1-10, instructions), scenes, frames "
            "(rewrite the shot lists: all, or one scene_id), videos (all, or one frame_id), or "
            "stitch the final film. Project-wide steps replace everything downstream: for one "
            "unit use the regenerate_* tools. Asks the person to confirm first.",
            _object(
                {
                    "kind": {"type": "string", "enum": list(_STARTERS)},
                    "project_id": _PROJECT_ID,
                    "count": {"type": "integer", "minimum": 1, "maximum": 10},
                    "instructions": {"type": "string", "maxLength": 2000},
                    "scene_id": _ID,
                    "frame_id": _ID,
                },
                ("kind",),
            ),
            "action",
            start_generation,
            start_generation_proposal,
        ),
        Tool(
            "retry_job",
            "Retry a failed or cancelled job (by id from get_project_status). Asks the person "
            "to confirm first.",
            _object({"job_id": _ID}, ("job_id",)),
            "action",
            retry_job,
            retry_job_proposal,
        ),
        Tool(
            "cancel_job",
            "Cancel a queued, running or waiting job and its children.",
            _object({"job_id": _ID}, ("job_id",)),
            "action",
            cancel_job,
        ),
        Tool(
            "edit_scene",
            "Edit one scene's text or cast (scene_id from get_project_status). Nothing is "
            "regenerated: what depends on it becomes stale.",
            _object(
                {
                    "scene_id": _ID,
                    "title": {"type": "string", "maxLength": 200},
                    "concise_plot": {"type": "string", "maxLength": 5000},
                    "detailed_plot": {"type": "string", "maxLength": 20000},
                    "dialogue": {"type": "string", "maxLength": 20000},
                    "location": {"type": "string", "maxLength": 200},
                    "mood": {"type": "string", "maxLength": 200},
                    "character_ids": {"type": "array", "items": _ID},
                },
                ("scene_id",),
            ),
            "action",
            edit_scene,
        ),
        Tool(
            "edit_frame",
            "Edit one frame's (shot's) text: prompt, camera, dialogue, speaker_id (an approved "
            "character of its scene, or null for the narrator). Nothing is regenerated: its "
            "keyframe and clip become stale.",
            _object(
                {
                    "frame_id": _ID,
                    "prompt": {"type": "string", "maxLength": 5000},
                    "camera": {"type": "string", "maxLength": 200},
                    "dialogue": {"type": "string", "maxLength": 5000},
                    "speaker_id": {"type": ["integer", "null"], "minimum": 1},
                },
                ("frame_id",),
            ),
            "action",
            edit_frame,
        ),
        Tool(
            "regenerate_portrait",
            "Draw one character's portrait again, with the person's instructions (e.g. "
            "'older, in a raincoat'). Asks the person to confirm first.",
            _object({"character_id": _ID, "instructions": _INSTRUCTIONS}, ("character_id",)),
            "action",
            regenerate_portrait,
            regenerate_portrait_proposal,
        ),
        Tool(
            "regenerate_keyframe",
            "Draw one frame's keyframe again from its shot text, with instructions (e.g. "
            "'darker'). Only that frame; the shot list stays. Asks the person to confirm first.",
            _object({"frame_id": _ID, "instructions": _INSTRUCTIONS}, ("frame_id",)),
            "action",
            regenerate_keyframe,
            regenerate_keyframe_proposal,
        ),
        Tool(
            "regenerate_clip",
            "Make one frame's clip again, with instructions (e.g. 'slower camera move'). Only "
            "that clip. Asks the person to confirm first.",
            _object({"frame_id": _ID, "instructions": _INSTRUCTIONS}, ("frame_id",)),
            "action",
            regenerate_clip,
            regenerate_clip_proposal,
        ),
        Tool(
            "regenerate_scene",
            "Redo every keyframe (kind=keyframes) or every clip (kind=clips) of ONE scene, "
            "keeping its shot text, with instructions (e.g. 'more tense'). For requests about "
            "one scene; never use a project-wide step for them. Asks the person to confirm first.",
            _object(
                {
                    "scene_id": _ID,
                    "kind": {"type": "string", "enum": list(SCENE_REDO_KINDS)},
                    "instructions": _INSTRUCTIONS,
                },
                ("scene_id",),
            ),
            "action",
            regenerate_scene,
            regenerate_scene_proposal,
        ),
        Tool(
            "list_takes",
            "The takes (versions) of a portrait (character_id) or of a frame's keyframe or clip "
            "(frame_id, kind), newest first, with which one is current.",
            _object(
                {
                    "character_id": _ID,
                    "frame_id": _ID,
                    "kind": {"type": "string", "enum": [Take.Kind.KEYFRAME, Take.Kind.CLIP]},
                }
            ),
            "action",
            list_takes,
        ),
        Tool(
            "select_take",
            "Make an older take current again (rollback; nothing is regenerated). Asks the "
            "person to confirm first.",
            _object({"take_id": _ID}, ("take_id",)),
            "action",
            select_take,
            select_take_proposal,
        ),
        Tool(
            "refresh_stale",
            "Regenerate exactly the stale units (whose inputs changed), in order, then re-cut "
            "the film. Asks the person to confirm first, listing the units.",
            _object({"project_id": _PROJECT_ID}),
            "action",
            refresh_stale,
            refresh_stale_proposal,
        ),
        Tool(
            "list_voices",
            "The voices the speech provider offers (id, name, description, traits such as "
            "feminine, masculine, low, high, warm, bright, young, mature) and which voice each "
            "character of the open project speaks in.",
            _object({"project_id": _PROJECT_ID}),
            "action",
            list_voices,
        ),
        Tool(
            "set_voice",
            "Give one character another voice (an id from list_voices; e.g. for 'a deeper "
            "voice', one with the low or mature trait). An edit: nothing is spoken again, the "
            "character's spoken lines become stale (say so).",
            _object(
                {"character_id": _ID, "voice": {"type": "string", "maxLength": 100}},
                ("character_id", "voice"),
            ),
            "action",
            set_voice,
        ),
        Tool(
            "generate_lines",
            "Speak dialogue in its speakers' voices: one frame's line again (frame_id), every "
            "line of one scene again (scene_id), or every missing or stale line of the project "
            "(neither). Asks the person to confirm first.",
            _object({"frame_id": _ID, "scene_id": _ID, "project_id": _PROJECT_ID}),
            "action",
            generate_lines,
            generate_lines_proposal,
        ),
        Tool(
            "approve_storyboard",
            "Approve the keyframes of a project awaiting storyboard approval: this starts (and "
            "pays for) every clip. Asks the person to confirm first.",
            _object({"project_id": _PROJECT_ID}),
            "action",
            approve_storyboard,
            approve_storyboard_proposal,
        ),
    )
}


def page_tools(page: Page) -> list[Tool]:
    return [TOOLS[name] for name in page.tools]


def _as_agreed(proposal: Proposal, agreed: Proposal) -> None:
    """None (run it) when the call would do now what the person agreed to; else `ToolError`."""
    if (proposal.summary, proposal.estimate) != (agreed.summary, agreed.estimate):
        raise ToolError(
            "What this would do has changed since it was confirmed (now: "
            f"{proposal.summary} {proposal.estimate}); nothing was done: ask again."
        )


def execute(
    ctx: ToolContext, name: str, args: Any, *, agreed: Proposal | None = None
) -> ToolOutcome:
    """Run one call as ctx.user. Never raises: a refusal is a result `{"error": ...}`.

    A tool that spends or replaces runs only when the person `agreed` to exactly what it
    would do now: its proposal is worked out again (its checks run again) and must match the
    one they confirmed, else nothing runs and they are asked again. Without `agreed`, the call
    is checked and the outcome carries the `proposal` to confirm."""
    args = normalized(args)
    tool = TOOLS.get(name)
    if tool is None or name not in ctx.page.tools:
        return ToolOutcome(name, args, {"error": f"No tool {name!r} on the {ctx.page.id} page."})
    proposal = None
    try:
        if tool.propose is not None:
            proposal = tool.propose(ctx, args)
        if proposal is not None and agreed is not None:
            proposal = _as_agreed(proposal, agreed)
        if proposal is not None:
            result: Result | None = {
                "confirmation_required": True,
                "summary": proposal.summary,
                "estimate": proposal.estimate,
                "note": CONFIRMATION_NOTE,
            }
        else:
            result = tool.run(ctx, args)
    except Http404:
        result = {"error": "Not found."}
    except ConflictError as error:
        result = {"error": error.message}
    except ToolError as error:
        result = {"error": str(error)}
    except DjangoValidationError as error:
        result = {"error": " ".join(error.messages)}
    except serializers.ValidationError as error:
        result = {"error": _error_text(error.detail)}
    except Exception:
        logger.exception("director tool %s failed", name)
        result = {"error": "The tool failed unexpectedly; try again later."}
    if result is not None and "error" in result:
        proposal = None
    return ToolOutcome(name, args, result, proposal)
