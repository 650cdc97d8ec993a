"""The generation layer's actions: finishing, failing, retrying, cancelling and resuming jobs,
and the project and cast changes that depend on the pipeline's state. API, admin, dashboards,
the director and the steps all use these (and the job and stage functions re-exported below).

Split along its seams: `queue` (RQ delivery), `jobs` (a job row's life), `pipeline` (the stages,
what each needs and what follows it), `jobtypes` (the table of types)."""

import functools
import logging
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction

from filmstudio.exceptions import ConflictError
from filmstudio.services import model_update
from generation import costs, estimates, events, queue
from generation.costs import limits_changed
from generation.jobs import (
    ACTIVE,
    active,
    hold_project_lock,
    job_claim,
    job_create,
    job_end_quietly,
    job_finish,
    job_poll_later,
    job_progress,
    job_requeue,
    job_still_active,
    job_superseded,
    job_wait,
    job_wait_for_project,
    jobs_cancel,
    lock_project,
    refuse_while_busy,
    settle_container,
    started_by,
    wake_project_waiters,
)
from generation.jobtypes import generating_statuses, job_type
from generation.models import GenerationJob
from generation.pipeline import (
    admit_scenes,
    admit_start,
    cast_decided,
    cast_would_open,
    keyframes_problem,
    project_has_active_jobs,
    project_standing,
    scene_generation_started,
    set_status,
    speak_project,
    start_approved_video_generation,
    start_audio_generation,
    start_character_generation,
    start_export,
    start_frame_generation,
    start_image_edit,
    start_keyframe_generation,
    start_portrait_generation,
    start_reference_generation,
    start_scene_generation,
    start_stitching,
    start_video_generation,
    status_while_running,
)
from generation.voices import check_voice
from media.storage import delete_name, delete_project_files
from projects import services as project_services
from projects.events import publish_entity
from projects.models import Character, Frame, Project, ProjectObject, Scene, Take
from projects.services import (
    FRAME_FIELDS,
    PROJECT_FIELDS,
    PROJECT_SHAPE_FIELDS,
    SCENE_FIELDS,
    checkpoints_clean,
)
from projects.takes import make_current, project_stale_units, take_is_current

__all__ = [
    "cast_decided",
    "character_approve",
    "character_reject",
    "character_update",
    "frame_update",
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
    "job_superseded",
    "job_wait",
    "job_wait_for_project",
    "limits_changed",
    "object_create",
    "object_delete",
    "object_update",
    "project_delete",
    "project_has_active_jobs",
    "project_jobs_cancel",
    "project_refresh",
    "project_update",
    "publish_entity",
    "refresh_start",
    "scene_generation_started",
    "scene_update",
    "start_audio_generation",
    "start_character_generation",
    "start_export",
    "start_frame_generation",
    "start_image_edit",
    "start_keyframe_generation",
    "start_portrait_generation",
    "start_reference_generation",
    "start_scene_generation",
    "start_stitching",
    "start_video_generation",
    "storyboard_approve",
    "take_select",
]

logger = logging.getLogger(__name__)

Job = GenerationJob


# --- finishing -----------------------------------------------------------------------------


def job_succeed(job: Job, result: dict | None = None, *, attempt: int | None = None) -> bool:
    """Mark success and fire the successors, in one transaction. False if cancelled meanwhile
    (or, given `attempt`, queued again since: see `job_finish`)."""
    with transaction.atomic(savepoint=False):  # inside the step's own: no savepoint round trips
        # job_finish takes the project's row lock first; read again after it (its reservation).
        done = job_finish(
            job, Job.Status.SUCCEEDED, wake=False, attempt=attempt, progress=100,
            result=result or {},
        )  # fmt: skip
        if not done:
            logger.info("job %s finished but was no longer active: no successors", job.pk)
            return False
        project = lock_project(job.project_id)
        with started_by(job.pk):
            job_type(job.type).fire_successors(job, project)
        project_refresh(job.project_id)
        wake_project_waiters(job.project_id)  # after its successors: none at a stage boundary
    return True


def job_fail(job: Job, message: str, traceback: str = "") -> bool:
    with transaction.atomic():
        hold_project_lock(job.project_id)
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
    standing = project_standing(project_id)
    project, fields = standing.project, []
    if project.progress != standing.progress:
        project.progress = standing.progress
        fields.append("progress")
    if project.status in generating_statuses() and not standing.busy and standing.failed:
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
        project = lock_project(job.project_id)
        job = Job.objects.select_for_update().get(pk=job.pk)
        if job.status not in (Job.Status.FAILED, Job.Status.CANCELLED):
            raise ConflictError(
                f"Only a failed or cancelled job can be retried; this one is {job.status}."
            )
        if job.attempts >= settings.JOB_MAX_ATTEMPTS:
            raise ConflictError(
                f"This job has used its {settings.JOB_MAX_ATTEMPTS} attempts "
                "(JOB_MAX_ATTEMPTS); start the work again as a new job."
            )
        job_type(job.type).check_retry(job, project)  # the checks its start makes
        admit_start(project, job.type, job.target_type, job.target_id, job.params, what="the retry")
        if job.children.exists() and not job_type(job.type).resumes_after_children:
            for child in job.children.filter(status__in=[Job.Status.FAILED, Job.Status.CANCELLED]):
                _requeue_for_retry(child)
            job.status, job.finished_at = Job.Status.RUNNING, None
        else:  # one job, or a refresh: it plans its stages again from what is stale now
            _requeue_for_retry(job, save=False)
            job.result = None
        job.attempts += 1
        job.error = ""
        job.save(update_fields=[*RETRY_FIELDS, "result"])
        events.publish_job(job)
        status = status_while_running(job, project)
        if status:
            set_status(project, status)
    return job


def job_cancel(*, job: Job, set_project_status: bool = True) -> Job:
    """Cancel a job and its children (the remote requests in flight too). A pipeline stage
    cancelled marks the project cancelled; a unit redo leaves the project as it is."""
    with transaction.atomic():
        project = lock_project(job.project_id)
        job = Job.objects.select_for_update().get(pk=job.pk)
        if job.status not in ACTIVE:
            raise ConflictError(
                f"Only a queued, running or waiting job can be cancelled; this one is {job.status}."
            )
        jobs_cancel(Job.objects.filter(pk=job.pk), "Cancelled.")
        job.refresh_from_db()
        paused_left = project.jobs.filter(status=Job.Status.PAUSED).exists()
        if project.status == Project.Status.PAUSED_BUDGET and not paused_left:
            # Nothing waits for money any more: the project is what it was before it paused.
            set_status(project, job.params.get("resume_status") or costs.resume_status(project))
        if set_project_status and status_while_running(job, project):
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
        hold_project_lock(job.project_id)
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


def job_resume_children_done(*, job: Job) -> None:
    with transaction.atomic():
        hold_project_lock(job.project_id)
        settle_container(job.pk)


# --- takes and refresh ----------------------------------------------------------------------


def take_select(*, take: Take) -> Take:
    """Make an older take current again (rollback). Nothing is regenerated; what depends on
    the unit becomes stale. Selecting the current take is a no-op."""
    with transaction.atomic():
        project = lock_project(take.project_id)
        take = Take.objects.select_related("character", "frame", "project").get(pk=take.pk)
        if take_is_current(take):
            return take
        refuse_while_busy(
            project,
            f"this {take.kind}",
            character_id=take.character_id,
            scene_id=take.frame.scene_id if take.frame else None,
            frame_id=take.frame_id,
            object_id=take.object_id,
            film=take.kind == Take.Kind.FILM,
        )
        make_current(take)
    logger.info("take %s selected", take.pk)
    return take


def refresh_start(*, project: Project) -> Job:
    """One job that regenerates exactly the stale units, stage by stage, then re-cuts the film."""
    with transaction.atomic():
        project = lock_project(project)
        if active(project.jobs.filter(type=Job.Type.REFRESH)):
            raise ConflictError("A refresh of this project is already running.")
        if project_has_active_jobs(project):
            raise ConflictError("Jobs of this project are still running; refresh once they end.")
        if not project_stale_units(project):
            raise ConflictError("Nothing is stale: every take matches its inputs.")
        quote = estimates.document(project, estimates.refresh(project))
        costs.admit(project, quote, what="the refresh")
        return job_create(
            project=project,
            type=Job.Type.REFRESH,
            target_type=Job.TargetType.PROJECT,
            target_id=project.pk,
        )


# --- projects and the cast (they depend on the pipeline's state) ---------------------------


def project_update(*, project: Project, **fields) -> Project:
    """Edit a project; its shape cannot change while a job of it works (`ConflictError`)."""
    with transaction.atomic():
        project = lock_project(project)
        if "checkpoints" in fields:
            fields["checkpoints"] = checkpoints_clean(fields["checkpoints"])
        if "music" in fields:
            project_services.music_clean(project, fields["music"])
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
        if "budget_usd" in fields:  # unchanged too: paused work tries again (the daily cap)
            costs.budget_changed(project)
            project.refresh_from_db()
    return project


def _scene_cast(scene: Scene, character_ids: list[int]) -> list[Character]:
    ids = list(dict.fromkeys(character_ids))
    found = {c.pk: c for c in Character.objects.filter(project_id=scene.project_id, pk__in=ids)}
    strangers = [i for i in ids if i not in found]
    if strangers:
        raise ValidationError({"character_ids": [f"Not characters of this project: {strangers}."]})
    unapproved = [c for c in found.values() if c.status != Character.Status.APPROVED]
    if unapproved:
        names = ", ".join(f"{c.name} ({c.status})" for c in unapproved)
        raise ValidationError(
            {"character_ids": [f"Only approved characters can be in a scene: {names}."]}
        )
    return [found[i] for i in ids]


OBJECT_FIELDS = ("name", "description")


def _refuse_name_taken(project_id: int, name: Any, pk: int | None = None) -> None:
    """An object's name is its own in the project, case aside (400): the scene plan names
    objects by it (`ProjectObject`'s constraint holds it in the database too)."""
    if not isinstance(name, str):
        return  # full_clean says what is wrong with it
    twins = ProjectObject.objects.filter(project_id=project_id, name__iexact=name.strip())
    if pk is not None:
        twins = twins.exclude(pk=pk)
    if twins.exists():
        raise ValidationError({"name": [f"The project already has an object called {name!r}."]})


def object_create(*, project: Project, **fields: Any) -> ProjectObject:
    """A prop or a place of the project; its reference image is drawn by a job started now
    (refused with the object, 409, when the budget does not allow it)."""
    with transaction.atomic():
        project = lock_project(project.pk)
        obj = ProjectObject(project=project, **{k: fields[k] for k in OBJECT_FIELDS if k in fields})
        _refuse_name_taken(project.pk, obj.name)
        obj.full_clean()
        obj.save()
        start_reference_generation(obj=obj)
        publish_entity(obj)
    logger.info("object %s created in project %s", obj.pk, project.pk)
    return obj


def object_update(*, obj: ProjectObject, **fields: Any) -> ProjectObject:
    """Edit its name or description (the reference image stays: redraw it to match)."""
    with transaction.atomic():
        hold_project_lock(obj.project_id)
        if "name" in fields:
            _refuse_name_taken(obj.project_id, fields["name"], obj.pk)
        obj, updated = model_update(instance=obj, fields=list(OBJECT_FIELDS), data=fields)
        if updated:
            publish_entity(obj)
    return obj


def object_delete(*, obj: ProjectObject) -> None:
    """The object, its takes and files; its scenes no longer list it, and a job drawing it
    stores nothing."""
    with transaction.atomic():
        project = lock_project(obj.project_id)
        jobs = project.jobs.filter(target_type=GenerationJob.TargetType.OBJECT, target_id=obj.pk)
        jobs_cancel(jobs, "The object was deleted.")
        files = [obj.image, *obj.takes.values_list("file", flat=True)]
        obj.delete()
        for name in filter(None, files):
            transaction.on_commit(functools.partial(delete_name, name))


def _scene_objects(scene: Scene, object_ids: list[int]) -> list[ProjectObject]:
    ids = list(dict.fromkeys(object_ids))
    found = {o.pk: o for o in ProjectObject.objects.filter(project_id=scene.project_id, pk__in=ids)}
    strangers = [i for i in ids if i not in found]
    if strangers:
        raise ValidationError({"object_ids": [f"Not objects of this project: {strangers}."]})
    return [found[i] for i in ids]


def scene_update(*, scene: Scene, **fields: Any) -> Scene:
    """Edit a scene's text and cast (`character_ids`: approved characters of its project).

    Refused (`ConflictError`) while its frames or the project's scenes are being generated."""
    with transaction.atomic():
        project = lock_project(scene.project_id)
        scene = Scene.objects.select_for_update().get(pk=scene.pk)
        # A keyframe being drawn meanwhile is not refused: its take records the inputs it was
        # drawn from, so this edit makes it stale instead of being lost.
        refuse_while_busy(project, f"scene {scene.order}", scene_id=scene.pk)
        cast = None
        if "character_ids" in fields:
            cast = _scene_cast(scene, fields["character_ids"])
        scene, updated = model_update(instance=scene, fields=SCENE_FIELDS, data=fields)
        things = _scene_objects(scene, fields["object_ids"]) if "object_ids" in fields else None
        if things is not None and {o.pk for o in things} != set(
            scene.project_objects.values_list("pk", flat=True)
        ):
            scene.project_objects.set(things)
            updated = True
        if cast is not None and {c.pk for c in cast} != set(
            scene.characters.values_list("pk", flat=True)
        ):
            scene.characters.set(cast)
            scene.cast_fallback = False  # the producer said who is in it
            scene.save(update_fields=["cast_fallback", "updated_at"])
            updated = True
        if updated:
            publish_entity(scene)
            logger.info("scene %s edited", scene.pk)
    return scene


def frame_update(*, frame: Frame, **fields: Any) -> Frame:
    """Edit a frame's text and speaker (`speaker_id`: an approved character of its scene, or
    None for the narrator).

    Refused (`ConflictError`) while its scene's frames, its keyframe or its clip are generated."""
    with transaction.atomic():
        project = lock_project(frame.scene.project_id)
        frame = Frame.objects.select_for_update().get(pk=frame.pk)
        refuse_while_busy(
            project,
            f"frame {frame.order} of scene {frame.scene.order}",
            scene_id=frame.scene_id,
            frame_id=frame.pk,
        )
        data = {k: v for k, v in fields.items() if k in FRAME_FIELDS}
        if "speaker_id" in fields:
            speaker_id = fields["speaker_id"]
            allowed = frame.scene.characters.filter(status=Character.Status.APPROVED)
            if speaker_id is not None and not allowed.filter(pk=speaker_id).exists():
                raise ValidationError(
                    {
                        "speaker_id": [
                            "The speaker must be an approved character of this frame's scene, "
                            "or null for the narrator."
                        ]
                    }
                )
            data["speaker_id"] = speaker_id
        frame, updated = model_update(
            instance=frame, fields=[*FRAME_FIELDS, "speaker_id"], data=data
        )
        if updated:
            publish_entity(frame)
            logger.info("frame %s edited", frame.pk)
    return frame


def storyboard_approve(*, project: Project) -> Job:
    """The producer approved the keyframes: the clips are paid for now (one project-wide job)."""
    with transaction.atomic():
        project = lock_project(project)
        if project.status != Project.Status.AWAITING_STORYBOARD_APPROVAL:
            raise ConflictError(
                "The storyboard can be approved only while the project is awaiting storyboard "
                f"approval (it is {project.status})."
            )
        problem = keyframes_problem(project)
        if problem:
            raise ConflictError(f"Cannot approve the storyboard: {problem}")
        job = start_approved_video_generation(project=project)
        speak_project(project)  # the lines beside the clips
    logger.info("storyboard of project %s approved: video job %s", project.pk, job.pk)
    return job


def project_delete(*, project: Project) -> None:
    """Cancel its jobs (at the provider too), remove its rows, then its files."""
    project_id = project.pk
    with transaction.atomic():
        project = lock_project(project)
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
        if cast_would_open(project):
            admit_scenes(project)  # this decision starts the paid work after the cast
        publish_entity(character)
        cast_decided(project=project)
    logger.info("character %s %s", character.pk, status)
    return character


def character_approve(*, character: Character) -> Character:
    return _decide(character, Character.Status.APPROVED)


def character_reject(*, character: Character, reason: str = "") -> Character:
    return _decide(character, Character.Status.REJECTED, reason)


def character_update(*, character: Character, **fields) -> Character:
    """Edit a character; `voice` must be one the speech provider offers (its lines then become
    stale)."""
    if "voice" in fields:
        check_voice(fields["voice"])
    return project_services.character_update(character=character, **fields)
