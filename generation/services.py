"""Pipeline state changes: jobs, the approval gate, cancellation."""

import logging

from django.db import transaction
from django.utils import timezone

from generation.models import GenerationJob
from projects.models import Character, Project

logger = logging.getLogger(__name__)


def project_has_active_jobs(project: Project) -> bool:
    return project.jobs.filter(status__in=GenerationJob.ACTIVE).exists()


def scene_generation_started(project: Project) -> bool:
    return (
        project.scenes.exists()
        or project.jobs.filter(type=GenerationJob.Type.SCENES)
        .exclude(status=GenerationJob.Status.CANCELLED)
        .exists()
    )


def project_jobs_cancel(*, project: Project, reason: str) -> int:
    now = timezone.now()
    count = project.jobs.filter(status__in=GenerationJob.ACTIVE).update(
        status=GenerationJob.Status.CANCELLED, error=reason, finished_at=now, updated_at=now
    )
    logger.info("cancelled %s jobs of project %s: %s", count, project.pk, reason)
    return count


def cast_decided(*, project: Project) -> None:
    """Called under the project's row lock after every approve/reject."""
    cast = project.characters.values_list("status", flat=True)
    undecided = {Character.Status.PENDING, Character.Status.GENERATING}
    if any(s in undecided for s in cast) or Character.Status.APPROVED not in cast:
        return
    logger.info("cast of project %s approved", project.pk)


def publish_entity(instance) -> None:
    transaction.on_commit(lambda: None)
