"""State changes of the creative hierarchy that need nothing of the pipeline. Changes that do
(edits refused while a job works, deletes that cancel jobs, cast decisions that open the gate)
live in `generation.services`, one layer up."""

import logging

from filmstudio.exceptions import ConflictError
from filmstudio.services import model_update
from projects.events import publish_entity
from projects.models import Character, Project

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
)
# Changing these while the pipeline works would leave half-built content of the old shape.
PROJECT_SHAPE_FIELDS = ("num_scenes", "frames_per_scene", "clip_seconds", "aspect_ratio")
CHARACTER_FIELDS = ("name", "role", "description", "appearance", "personality")


def project_create(*, owner, **fields) -> Project:
    project = Project(owner=owner, **{k: v for k, v in fields.items() if k in PROJECT_FIELDS})
    project.full_clean()
    project.save()
    logger.info("project %s created by user %s", project.pk, owner.pk)
    return project


def character_update(*, character: Character, **fields) -> Character:
    if character.status == Character.Status.GENERATING:
        raise ConflictError("This character is still being generated; edit it once it is ready.")
    character, updated = model_update(instance=character, fields=CHARACTER_FIELDS, data=fields)
    if updated:
        publish_entity(character)
    return character
