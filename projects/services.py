"""State changes of the creative hierarchy that need nothing of the pipeline. Changes that do
(edits refused while a job works, deletes that cancel jobs, cast decisions that open the gate)
live in `generation.services`, one layer up."""

import logging
from collections.abc import Iterable

from django.core.exceptions import ValidationError

from filmstudio.exceptions import ConflictError
from filmstudio.services import model_update
from projects.events import publish_entity
from projects.models import CHECKPOINTS, Character, Project

logger = logging.getLogger(__name__)

PROJECT_FIELDS = (
    "title",
    "logline",
    "synopsis",
    "genre",
    "style",
    "num_scenes",
    "frames_per_scene",
    "clip_seconds",
    "aspect_ratio",
    "checkpoints",
    "budget_usd",
    "music",
    "burn_subtitles",
    "min_consistency",
)
# Changing these while the pipeline works would leave half-built content of the old shape.
PROJECT_SHAPE_FIELDS = ("num_scenes", "frames_per_scene", "clip_seconds", "aspect_ratio")
CHARACTER_FIELDS = ("name", "role", "description", "appearance", "personality")
# The text a producer may edit; a scene's cast and a frame's speaker are checked on top.
SCENE_FIELDS = ("title", "concise_plot", "detailed_plot", "dialogue", "location", "mood")
FRAME_FIELDS = ("prompt", "camera", "dialogue")


def checkpoints_clean(values: Iterable[str] | None) -> list[str]:
    """Known, unique values in pipeline order; `cast` is always on, so it is added if left out."""
    if values is None:
        values = []
    if not isinstance(values, list | tuple):
        raise ValidationError({"checkpoints": ["Must be a list of checkpoint names."]})
    unknown = sorted({str(v) for v in values} - set(CHECKPOINTS))
    if unknown:
        raise ValidationError(
            {"checkpoints": [f"Unknown checkpoint(s) {unknown}: choose from {list(CHECKPOINTS)}."]}
        )
    if len(set(values)) != len(values):
        raise ValidationError({"checkpoints": ["Each checkpoint may appear only once."]})
    return [c for c in CHECKPOINTS if c == "cast" or c in values]


def music_clean(project: Project, music: str) -> str:
    """`upload` only once a track is uploaded (`POST /api/projects/{id}/music` sets it)."""
    if music == Project.Music.UPLOAD and not project.music_file:
        raise ValidationError(
            {"music": ["No track is uploaded yet: POST /api/projects/{id}/music sets one."]}
        )
    return music


def project_create(*, owner, **fields) -> Project:
    fields = {k: v for k, v in fields.items() if k in PROJECT_FIELDS}
    if "checkpoints" in fields:
        fields["checkpoints"] = checkpoints_clean(fields["checkpoints"])
    if "music" in fields:
        music_clean(Project(), fields["music"])
    project = Project(owner=owner, **fields)
    project.full_clean()
    project.save()
    logger.info("project %s created by user %s", project.pk, owner.pk)
    return project


def character_update(*, character: Character, **fields) -> Character:
    if character.status == Character.Status.GENERATING:
        raise ConflictError("This character is still being generated; edit it once it is ready.")
    # `voice` is checked against the speech provider's voices one layer up
    # (`generation.services.character_update`).
    character, updated = model_update(
        instance=character, fields=[*CHARACTER_FIELDS, "voice"], data=fields
    )
    if updated:
        publish_entity(character)
    return character
