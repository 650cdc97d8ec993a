"""State changes of the creative hierarchy. API, admin, dashboards and director all call these."""

import logging

from django.db import transaction

from filmstudio.exceptions import ConflictError
from generation import services as generation
from media.storage import delete_project_files
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


def project_update(*, project: Project, **fields) -> Project:
    changed = [k for k in PROJECT_FIELDS if k in fields and getattr(project, k) != fields[k]]
    if not changed:
        return project
    with transaction.atomic():
        project = Project.objects.select_for_update().get(pk=project.pk)
        shape = [k for k in changed if k in PROJECT_SHAPE_FIELDS]
        if shape and generation.project_has_active_jobs(project):
            raise ConflictError(
                f"Cannot change {', '.join(shape)} while a generation job of this project is "
                "queued, running or waiting; cancel it or wait for it to finish."
            )
        for key in changed:
            setattr(project, key, fields[key])
        project.full_clean()
        project.save(update_fields=[*changed, "updated_at"])
    generation.publish_entity(project)
    return project


def project_delete(*, project: Project) -> None:
    project_id = project.pk
    generation.project_jobs_cancel(project=project, reason="project deleted")
    project.delete()
    # Files go after the rows: a failure here leaves orphans for `sweep_media`, never dangling rows.
    transaction.on_commit(lambda: delete_project_files(project_id))
    logger.info("project %s deleted", project_id)


def character_update(*, character: Character, **fields) -> Character:
    if character.status == Character.Status.GENERATING:
        raise ConflictError("This character is still being generated; edit it once it is ready.")
    changed = [k for k in CHARACTER_FIELDS if k in fields and getattr(character, k) != fields[k]]
    if changed:
        for key in changed:
            setattr(character, key, fields[key])
        character.full_clean()
        character.save(update_fields=[*changed, "updated_at"])
        generation.publish_entity(character)
    return character


def _decide(character: Character, status: str, reason: str = "") -> Character:
    with transaction.atomic():
        project = Project.objects.select_for_update().get(pk=character.project_id)
        character = Character.objects.select_for_update().get(pk=character.pk)
        if generation.scene_generation_started(project):
            raise ConflictError("Scene generation has started: the cast can no longer be changed.")
        if project.status != Project.Status.AWAITING_APPROVAL:
            raise ConflictError(
                f"Characters can be approved or rejected only while the project is awaiting "
                f"approval (it is {project.status})."
            )
        if character.status in (Character.Status.GENERATING, Character.Status.FAILED):
            raise ConflictError(
                f"This character is {character.status}; only a generated character can be decided."
            )
        character.status = status
        character.rejection_reason = reason
        character.save(update_fields=["status", "rejection_reason", "updated_at"])
        generation.publish_entity(character)
        generation.cast_decided(project=project)
    logger.info("character %s %s", character.pk, status)
    return character


def character_approve(*, character: Character) -> Character:
    return _decide(character, Character.Status.APPROVED)


def character_reject(*, character: Character, reason: str = "") -> Character:
    return _decide(character, Character.Status.REJECTED, reason)
