"""The generation layer's actions: finishing, failing, retrying, cancelling and resuming jobs,
and the project and cast changes that depend on the pipeline's state. API, admin, dashboards,
the director and the steps all use these (and the job and stage functions re-exported below).

Split along its seams: `queue` (RQ delivery), `jobs` (a job row's life), `pipeline` (the stages,
what each needs and what follows it), `jobtypes` (the table of types)."""

import logging

from django.conf import settings
from django.db import transaction

from filmstudio.exceptions import ConflictError
from filmstudio.services import model_update
from generation import events, queue
from generation.jobs import (
    ACTIVE,
    job_claim,
    job_create,
    job_end_quietly,
    job_finish,
    job_poll_later,
    job_progress,
    job_requeue,
    job_still_active,
    job_wait,
    jobs_cancel,
)
from generation.jobtypes import generating_statuses, job_type
from generation.models import GenerationJob
from generation.pipeline import (
    cast_decided,
    lock_project,
    project_has_active_jobs,
    project_progress,
    scene_generation_started,
    set_status,
    start_character_generation,
    start_frame_generation,
    start_scene_generation,
    start_stitching,
    start_video_generation,
)
from media.storage import delete_project_files
from projects.events import publish_entity
from projects.models import Character, Project
from projects.services import PROJECT_FIELDS, PROJECT_SHAPE_FIELDS

__all__ = [
    "cast_decided",
    "character_approve",
    "character_reject",
    "job_cancel",
    "job_claim",
    "job_create",
    "job_end_quietly",
    "job_fail",
    "job_poll_later",
    "job_progress",
    "job_requeue",
    "job_resume_lost",
    "job_retry",
    "job_still_active",
    "job_succeed",
    "job_wait",
    "project_delete",
    "project_has_active_jobs",
    "project_jobs_cancel",
    "project_refresh",
    "project_update",
    "publish_entity",
    "scene_generation_started",
    "start_character_generation",
    "start_frame_generation",
    "start_scene_generation",
    "start_stitching",
    "start_video_generation",
]

logger = logging.getLogger(__name__)

Job = GenerationJob


# --- finishing -----------------------------------------------------------------------------


def job_succeed(job: Job, result: dict | None = None) -> bool:
    """Mark success and fire the successors, in one transaction. False if cancelled meanwhile."""
    with transaction.atomic():
        if not job_finish(job, Job.Status.SUCCEEDED, progress=100, result=result or {}):
            logger.info("job %s finished but was no longer active: no successors", job.pk)
            return False
        job_type(job.type).fire_successors(job, lock_project(job.project_id))
        project_refresh(job.project_id)
    return True


def job_fail(job: Job, message: str, traceback: str = "") -> bool:
    with transaction.atomic():
        if not job_finish(
            job, Job.Status.FAILED, error=message[:4000], traceback=traceback[-20000:]
        ):
            return False
        job_type(job.type).fail_units(job)
        project_refresh(job.project_id)
    logger.warning("job %s (%s) failed: %s", job.pk, job.type, message)
    return True


def project_refresh(project_id: int) -> None:
    """Recompute progress; a pipeline that stopped on a failure says so in its status."""
    project = lock_project(project_id)
    fields = []
    progress = project_progress(project)
    if project.progress != progress:
        project.progress = progress
        fields.append("progress")
    if project.status in generating_statuses() and not project_has_active_jobs(project):
        if project.jobs.filter(status=Job.Status.FAILED).exists():
            project.status = Project.Status.FAILED
            fields.append("status")
    if fields:
        project.save(update_fields=[*fields, "updated_at"])
        events.publish_entity(project)


# --- retry, cancel, resume -----------------------------------------------------------------

RETRY_FIELDS = [
    "status",
    "attempts",
    "error",
    "traceback",
    "finished_at",
    "progress",
    "params",
    "provider_request_ids",
    "updated_at",
]


def _requeue_for_retry(job: Job, *, save: bool = True) -> None:
    job.status, job.finished_at, job.progress = Job.Status.QUEUED, None, 0
    if job.provider_request_ids:
        # A retry asks the provider again; the failed remote requests stay on record.
        previous = job.params.get("previous_request_ids", [])
        job.params = {**job.params, "previous_request_ids": previous + job.provider_request_ids}
        job.provider_request_ids = []
    job.traceback = ""
    if save:
        job.attempts += 1
        job.error = ""
        job.save(update_fields=RETRY_FIELDS)
        events.publish_job(job)
    queue.enqueue(job.pk, urgent=job_type(job.type).urgent)


def job_retry(*, job: Job) -> Job:
    with transaction.atomic():
        job = Job.objects.select_for_update().get(pk=job.pk)
        if job.status not in (Job.Status.FAILED, Job.Status.CANCELLED):
            raise ConflictError(
                f"Only a failed or cancelled job can be retried; this one is {job.status}."
            )
        project = lock_project(job.project_id)
        if job.children.exists():
            for child in job.children.filter(status__in=[Job.Status.FAILED, Job.Status.CANCELLED]):
                _requeue_for_retry(child)
            job.status, job.finished_at = Job.Status.RUNNING, None
        else:
            _requeue_for_retry(job, save=False)
        job.attempts += 1
        job.error = ""
        job.save(update_fields=RETRY_FIELDS)
        events.publish_job(job)
        set_status(project, job_type(job.type).project_status)
    return job


def job_cancel(*, job: Job, set_project_status: bool = True) -> Job:
    """Cancel a job and its children (the remote requests in flight too)."""
    with transaction.atomic():
        job = Job.objects.select_for_update().get(pk=job.pk)
        if job.status not in ACTIVE:
            raise ConflictError(
                f"Only a queued, running or waiting job can be cancelled; this one is {job.status}."
            )
        project = lock_project(job.project_id)
        jobs_cancel(Job.objects.filter(pk=job.pk), "Cancelled.")
        job.refresh_from_db()
        if set_project_status:
            set_status(project, Project.Status.CANCELLED)
    return job


def project_jobs_cancel(*, project: Project, reason: str) -> int:
    return len(jobs_cancel(project.jobs.all(), reason))


def job_resume_lost(*, job: Job, poll: bool = False, stale_before=None) -> bool:
    """Hand work whose delivery was lost (worker killed, Redis flushed) to RQ again.

    A running job whose worker died counts an attempt; after `JOB_MAX_ATTEMPTS` it fails with a
    message instead of crashing workers for ever. Returns False if the job moved meanwhile (or,
    given `stale_before`, its heartbeat is newer than that)."""
    with transaction.atomic():
        job = Job.objects.select_for_update().filter(pk=job.pk, status__in=ACTIVE).first()
        if job is None:
            return False
        if stale_before and job.status == Job.Status.RUNNING and job.heartbeat_at >= stale_before:
            return False  # its worker beat meanwhile: not lost after all
        if job.status == Job.Status.RUNNING:
            if job.attempts >= settings.JOB_MAX_ATTEMPTS:
                job_fail(
                    job,
                    f"Stopped after {job.attempts} attempts: the worker running this job was "
                    "lost each time (a crash or a kill). Retry it once the cause is fixed.",
                )
                return True
            job.status, job.attempts = Job.Status.QUEUED, job.attempts + 1
            job.save(update_fields=["status", "attempts", "updated_at"])
            events.publish_job(job)
        task = queue.POLL_TASK if poll else queue.RUN_TASK
        queue.enqueue(job.pk, task=task, urgent=job_type(job.type).urgent and not poll)
    return True


# --- projects and the cast (they depend on the pipeline's state) ---------------------------


def project_update(*, project: Project, **fields) -> Project:
    """Edit a project; its shape cannot change while a job of it works (`ConflictError`)."""
    with transaction.atomic():
        project = lock_project(project)
        changed = [k for k in PROJECT_FIELDS if k in fields and getattr(project, k) != fields[k]]
        shape = [k for k in changed if k in PROJECT_SHAPE_FIELDS]
        if shape and project_has_active_jobs(project):
            raise ConflictError(
                f"Cannot change {', '.join(shape)} while a generation job of this project is "
                "queued, running or waiting; cancel it or wait for it to finish."
            )
        project, updated = model_update(instance=project, fields=PROJECT_FIELDS, data=fields)
        if updated:
            publish_entity(project)
    return project


def project_delete(*, project: Project) -> None:
    """Cancel its jobs (at the provider too), remove its rows, then its files."""
    project_id = project.pk
    with transaction.atomic():
        project_jobs_cancel(project=project, reason="project deleted")
        project.delete()
        # Files go after the rows: a failure leaves orphans for `sweep_media`, never dangling rows.
        transaction.on_commit(lambda: delete_project_files(project_id))
    logger.info("project %s deleted", project_id)


def _decide(character: Character, status: str, reason: str = "") -> Character:
    with transaction.atomic():
        project = lock_project(character.project_id)
        character = Character.objects.select_for_update().get(pk=character.pk)
        if scene_generation_started(project):
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
        publish_entity(character)
        cast_decided(project=project)
    logger.info("character %s %s", character.pk, status)
    return character


def character_approve(*, character: Character) -> Character:
    return _decide(character, Character.Status.APPROVED)


def character_reject(*, character: Character, reason: str = "") -> Character:
    return _decide(character, Character.Status.REJECTED, reason)
