"""The director's tools: thin wrappers over the same selectors and services as the API.

Two kinds:
- UI tools (navigate, highlight, open_modal) are carried out by the client: the server only
  checks their arguments, and their result is None (`function_call {result: null}`).
- Action tools run here, as the calling user. Every object is looked up through the owner-scoped
  `*_for_user` selectors, so a tool can never reach another user's objects; refusals
  (Http404, ConflictError, invalid arguments) come back as `{"error": "..."}` for the model to
  explain, never as a crash of the turn.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import serializers

from director.pages import PAGES, Page
from director.selectors import character_brief, job_brief, project_summary
from filmstudio.exceptions import ConflictError
from generation import services as generation
from generation.models import GenerationJob
from generation.selectors import job_for_user
from generation.serializers import CharacterJobRequest
from projects import selectors
from projects.models import Project
from projects.serializers import ProjectSerializer, RejectSerializer

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
class Tool:
    name: str
    description: str
    parameters: dict  # JSON Schema of the arguments (Gemini function declaration)
    kind: Literal["ui", "action"]
    # UI tools: check the arguments (raise ToolError); action tools: do it and return a result.
    run: Callable[[ToolContext, dict], Result | None]


@dataclass(frozen=True)
class ToolOutcome:
    name: str
    args: dict
    result: Result | None

    def as_call(self) -> dict:
        return {"name": self.name, "args": self.args, "result": self.result}


def _object(properties: dict, required: tuple[str, ...] = ()) -> dict:
    return {"type": "object", "properties": properties, "required": list(required)}


_ID = {"type": "integer", "minimum": 1}
_PROJECT_ID = {**_ID, "description": "Defaults to the project the person has open."}


# ------------------------------------------------------------------ argument helpers


def _normalized(args: dict) -> dict:
    """JSON from the model may carry 3.0 for 3: make integral floats ints."""
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
            "(all, or one scene_id), videos (all, or one frame_id), or stitch the final film.",
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
        ),
        Tool(
            "retry_job",
            "Retry a failed or cancelled job (by id from get_project_status).",
            _object({"job_id": _ID}, ("job_id",)),
            "action",
            retry_job,
        ),
        Tool(
            "cancel_job",
            "Cancel a queued, running or waiting job and its children.",
            _object({"job_id": _ID}, ("job_id",)),
            "action",
            cancel_job,
        ),
    )
}


def page_tools(page: Page) -> list[Tool]:
    return [TOOLS[name] for name in page.tools]


def execute(ctx: ToolContext, name: str, args: Any) -> ToolOutcome:
    """Run one call as ctx.user. Never raises: a refusal is a result `{"error": ...}`."""
    args = _normalized(args) if isinstance(args, dict) else {}
    tool = TOOLS.get(name)
    if tool is None or name not in ctx.page.tools:
        return ToolOutcome(name, args, {"error": f"No tool {name!r} on the {ctx.page.id} page."})
    try:
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
    return ToolOutcome(name, args, result)
