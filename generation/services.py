"""Pipeline state changes: starting, finishing, retrying and cancelling jobs; the approval gate;
fan-in; project status and progress. API, admin, dashboards, director and steps all use these."""

import logging
import uuid
from datetime import timedelta

import django_rq
from django.conf import settings
from django.db import transaction
from django.db.models import Count, F, Q
from django.utils import timezone

from filmstudio.exceptions import ConflictError
from generation import events
from generation.models import GenerationJob
from projects.models import Character, Frame, Project, Scene, Video

logger = logging.getLogger(__name__)

Job = GenerationJob
ACTIVE = GenerationJob.ACTIVE
STATUS_FOR_TYPE = {
    Job.Type.CHARACTERS: Project.Status.GENERATING_CHARACTERS,
    Job.Type.SCENES: Project.Status.GENERATING_SCENES,
    Job.Type.FRAMES: Project.Status.GENERATING_FRAMES,
    Job.Type.VIDEOS: Project.Status.GENERATING_VIDEOS,
    Job.Type.STITCH: Project.Status.STITCHING,
}

publish_entity = events.publish_entity


# --- queueing ------------------------------------------------------------------------------


def enqueue(
    job_id: int, *, delay: float = 0, task: str = "generation.tasks.run_job", urgent: bool = False
) -> str:
    """Hand a job row to RQ. Called after commit, so a worker always finds the row.

    `urgent` work goes to the front of the queue: clip submissions, so the remote video service
    (the long pole) starts as early as possible. Polls stay in line: at the front, dozens of
    clips in flight would poll ahead of the submissions still waiting (`make bench`, bench 2)."""
    queue = django_rq.get_queue("default")
    rq_id = f"job-{job_id}-{uuid.uuid4().hex[:8]}"
    if delay > 0:
        queue.enqueue_in(timedelta(seconds=delay), task, job_id, job_id=rq_id, at_front=urgent)
    else:
        queue.enqueue(task, job_id, job_id=rq_id, at_front=urgent)
    Job.objects.filter(pk=job_id).update(rq_job_id=rq_id)
    return rq_id


def _enqueue_on_commit(job_id: int, *, urgent: bool = False) -> None:
    transaction.on_commit(lambda: enqueue(job_id, urgent=urgent))


def _rq_cancel(rq_job_id: str) -> None:
    if not rq_job_id:
        return
    from rq.job import Job as RQJob

    try:
        RQJob.fetch(rq_job_id, connection=django_rq.get_connection("default")).cancel()
    except Exception:  # already gone, running, or finished: the row's status decides anyway
        logger.debug("rq job %s not cancelled", rq_job_id)


# --- creating jobs -------------------------------------------------------------------------


def _active(queryset) -> bool:
    return queryset.filter(status__in=ACTIVE).exists()


def job_create(
    *,
    project: Project,
    type: str,
    target_type: str,
    target_id: int,
    parent: Job | None = None,
    params: dict | None = None,
    container: bool = False,
) -> Job:
    """A job row; queued for a worker after commit, or a running container of child jobs."""
    job = Job.objects.create(
        project=project,
        type=type,
        target_type=target_type,
        target_id=target_id,
        parent=parent,
        params=params or {},
        attempts=1,
        status=Job.Status.RUNNING if container else Job.Status.QUEUED,
        started_at=timezone.now() if container else None,
    )
    if not container:
        _enqueue_on_commit(job.pk, urgent=type == Job.Type.VIDEOS)
    events.publish_job(job)
    return job


def _lock_project(project: Project) -> Project:
    return Project.objects.select_for_update().get(pk=project.pk)


def _set_status(project: Project, status: str) -> None:
    if project.status != status:
        project.status = status
        project.save(update_fields=["status", "updated_at"])
        events.publish_entity(project)


def start_character_generation(*, project: Project, count: int = 4, instructions: str = "") -> Job:
    with transaction.atomic():
        project = _lock_project(project)
        if scene_generation_started(project):
            raise ConflictError("Scene generation has started: the cast can no longer change.")
        if _active(project.jobs.filter(type=Job.Type.CHARACTERS)):
            raise ConflictError("Character generation is already queued or running.")
        job = job_create(
            project=project,
            type=Job.Type.CHARACTERS,
            target_type=Job.TargetType.PROJECT,
            target_id=project.pk,
            params={"count": count, "instructions": instructions},
        )
        _set_status(project, Project.Status.GENERATING_CHARACTERS)
    return job


def _cast_problem(project: Project) -> str | None:
    counts = project.characters.aggregate(
        approved=Count("id", filter=Q(status=Character.Status.APPROVED)),
        undecided=Count(
            "id", filter=Q(status__in=[Character.Status.PENDING, Character.Status.GENERATING])
        ),
    )
    if counts["undecided"]:
        return f"{counts['undecided']} character(s) still await generation or a decision."
    if not counts["approved"]:
        return "No character is approved yet: approve at least one character first."
    return None


def _start_scenes(project: Project) -> Job:
    job = job_create(
        project=project,
        type=Job.Type.SCENES,
        target_type=Job.TargetType.PROJECT,
        target_id=project.pk,
    )
    _set_status(project, Project.Status.GENERATING_SCENES)
    return job


def start_scene_generation(*, project: Project) -> Job:
    with transaction.atomic():
        project = _lock_project(project)
        problem = _cast_problem(project)
        if problem:
            raise ConflictError(f"Cannot generate scenes: {problem}")
        if _active(project.jobs.filter(type=Job.Type.SCENES)):
            raise ConflictError("Scene generation is already queued or running.")
        return _start_scenes(project)


def cast_decided(*, project: Project) -> Job | None:
    """After every approve/reject (project row locked): open the gate when the cast is settled."""
    if _cast_problem(project) is not None:
        return None
    if _active(project.jobs.filter(type=Job.Type.SCENES)):
        return None
    logger.info("cast of project %s settled: scene generation starts", project.pk)
    return _start_scenes(project)


def _container(project: Project, type: str) -> Job:
    return job_create(
        project=project,
        type=type,
        target_type=Job.TargetType.PROJECT,
        target_id=project.pk,
        container=True,
    )


def _frames_job(project: Project, scene: Scene, parent: Job | None = None) -> Job:
    return job_create(
        project=project,
        type=Job.Type.FRAMES,
        target_type=Job.TargetType.SCENE,
        target_id=scene.pk,
        parent=parent,
    )


def _video_job(project: Project, frame: Frame, parent: Job | None = None) -> Job:
    Video.objects.update_or_create(frame=frame, defaults={"status": Video.Status.QUEUED})
    return job_create(
        project=project,
        type=Job.Type.VIDEOS,
        target_type=Job.TargetType.FRAME,
        target_id=frame.pk,
        parent=parent,
    )


def _busy_targets(project: Project, type: str) -> set[int]:
    return set(
        project.jobs.filter(type=type, status__in=ACTIVE).values_list("target_id", flat=True)
    )


def start_frame_generation(*, project: Project, scene: Scene | None = None) -> Job:
    with transaction.atomic():
        project = _lock_project(project)
        busy = _busy_targets(project, Job.Type.FRAMES)
        if scene is not None:
            if scene.status != Scene.Status.READY:
                raise ConflictError(f"Scene {scene.order} has no content yet ({scene.status}).")
            if scene.pk in busy:
                raise ConflictError(f"Frames of scene {scene.order} are already being generated.")
            job = _frames_job(project, scene)
        else:
            scenes = list(project.scenes.order_by("order"))
            missing = [s.order for s in scenes if s.status != Scene.Status.READY]
            if not scenes or missing:
                raise ConflictError(
                    "Cannot generate frames: the project has no scenes yet."
                    if not scenes
                    else f"Cannot generate frames: scene(s) {missing} have no content yet."
                )
            if busy or _active(project.jobs.filter(type=Job.Type.FRAMES, parent=None)):
                raise ConflictError("Frame generation is already queued or running.")
            job = _container(project, Job.Type.FRAMES)
            for s in scenes:
                _frames_job(project, s, parent=job)
        _set_status(project, Project.Status.GENERATING_FRAMES)
    return job


def start_video_generation(*, project: Project, frame: Frame | None = None) -> Job:
    with transaction.atomic():
        project = _lock_project(project)
        busy = _busy_targets(project, Job.Type.VIDEOS)
        if frame is not None:
            if not frame.image:
                raise ConflictError(f"Frame {frame.pk} has no keyframe yet.")
            if frame.pk in busy:
                raise ConflictError(f"A clip of frame {frame.pk} is already being generated.")
            job = _video_job(project, frame)
        else:
            frames = list(
                Frame.objects.filter(scene__project=project).order_by("scene__order", "order")
            )
            missing = [f.pk for f in frames if not f.image]
            if not frames or missing:
                raise ConflictError(
                    "Cannot generate videos: the project has no frames yet."
                    if not frames
                    else f"Cannot generate videos: frame(s) {missing} have no keyframe yet."
                )
            if busy:
                raise ConflictError("Video generation is already queued or running.")
            job = _container(project, Job.Type.VIDEOS)
            for f in frames:
                _video_job(project, f, parent=job)
        _set_status(project, Project.Status.GENERATING_VIDEOS)
    return job


def _stitch_problem(project: Project) -> str | None:
    frames = Frame.objects.filter(scene__project=project)
    total = frames.count()
    if not total:
        return "the project has no frames yet."
    ready = frames.filter(video__status=Video.Status.READY).count()
    if ready < total:
        return f"{total - ready} of {total} clips are not ready."
    return None


def start_stitching(*, project: Project) -> Job:
    with transaction.atomic():
        project = _lock_project(project)
        problem = _stitch_problem(project)
        if problem:
            raise ConflictError(f"Cannot stitch: {problem}")
        if _active(project.jobs.filter(type=Job.Type.STITCH)):
            raise ConflictError("Stitching is already queued or running.")
        return _start_stitch(project)


def _start_stitch(project: Project) -> Job:
    job = job_create(
        project=project,
        type=Job.Type.STITCH,
        target_type=Job.TargetType.PROJECT,
        target_id=project.pk,
    )
    _set_status(project, Project.Status.STITCHING)
    return job


# --- running jobs --------------------------------------------------------------------------


def job_claim(job_id: int) -> Job | None:
    """Atomically take a queued job; None if another delivery took it or it was cancelled."""
    now = timezone.now()
    claimed = Job.objects.filter(pk=job_id, status=Job.Status.QUEUED).update(
        status=Job.Status.RUNNING, started_at=now, heartbeat_at=now, updated_at=now, error=""
    )
    if not claimed:
        return None
    job = Job.objects.select_related("project").get(pk=job_id)
    events.publish_job(job)
    return job


def job_progress(job: Job, progress: int) -> None:
    progress = max(0, min(100, int(progress)))
    now = timezone.now()
    Job.objects.filter(pk=job.pk, status__in=ACTIVE).update(
        progress=progress, heartbeat_at=now, updated_at=now
    )
    job.progress = progress
    events.publish_job(job)


def job_wait(job: Job, *, request_id: str) -> bool:
    """A remote generation is in flight: no worker is held until it reports back."""
    now = timezone.now()
    ids = job.provider_request_ids
    if not ids or ids[-1] != request_id:
        ids = [*ids, request_id]
    moved = Job.objects.filter(pk=job.pk, status=Job.Status.RUNNING).update(
        status=Job.Status.WAITING, provider_request_ids=ids, heartbeat_at=now, updated_at=now
    )
    job.status, job.provider_request_ids = Job.Status.WAITING, ids
    if moved:
        events.publish_job(job)
    return bool(moved)


def job_poll_later(job: Job, *, delay: float | None = None, reason: str = "") -> None:
    """Come back to a waiting job later. Pending clips are checked together by one poller
    (`tasks.poll_waiting`); a transient polling error gets a back-off poll of its own and
    counts as an attempt."""
    fields: dict = {"heartbeat_at": timezone.now()}
    if reason:
        fields.update(attempts=F("attempts") + 1, error=reason[:4000])
    if not Job.objects.filter(pk=job.pk, status=Job.Status.WAITING).update(**fields):
        return
    if reason:
        wait = settings.VIDEO_POLL_INTERVAL if delay is None else delay
        enqueue(job.pk, delay=wait, task="generation.tasks.poll_video")
    else:
        ensure_poller()


POLLER_KEY = "filmstudio:video-poller"


def ensure_poller() -> None:
    """One scheduled poller at a time (a token in Redis; it expires if the poller is lost)."""
    interval = settings.VIDEO_POLL_INTERVAL
    connection = django_rq.get_connection("default")
    if connection.set(POLLER_KEY, "1", nx=True, px=int((4 * interval + 10) * 1000)):
        django_rq.get_queue("default").enqueue_in(
            timedelta(seconds=interval),
            "generation.tasks.poll_waiting",
            job_id=f"poller-{uuid.uuid4().hex[:8]}",
        )


def job_end_quietly(job: Job, reason: str) -> bool:
    """The unit a job worked on is gone (deleted or replaced): nothing to do, nothing failed."""
    return _finish(job, Job.Status.CANCELLED, error=reason[:4000])


def _finish(job: Job, status: str, **fields) -> bool:
    now = timezone.now()
    done = Job.objects.filter(pk=job.pk, status__in=ACTIVE).update(
        status=status, finished_at=now, updated_at=now, **fields
    )
    if done:
        job.refresh_from_db()
        events.publish_job(job)
        if job.parent_id:
            _settle_container(job.parent_id)
    return bool(done)


def job_succeed(job: Job, result: dict | None = None) -> bool:
    """Mark success and fire the successors, in one transaction. False if cancelled meanwhile."""
    with transaction.atomic():
        if not _finish(job, Job.Status.SUCCEEDED, progress=100, result=result or {}):
            logger.info("job %s finished but was no longer active: no successors", job.pk)
            return False
        _fire_successors(job)
        project_refresh(job.project_id)
    return True


def job_fail(job: Job, message: str, traceback: str = "") -> bool:
    with transaction.atomic():
        if not _finish(job, Job.Status.FAILED, error=message[:4000], traceback=traceback[-20000:]):
            return False
        _mark_units_failed(job)
        project_refresh(job.project_id)
    logger.warning("job %s (%s) failed: %s", job.pk, job.type, message)
    return True


def job_requeue(job: Job, *, delay: float, reason: str) -> bool:
    """A transient failure: try again later, counting an attempt."""
    now = timezone.now()
    moved = Job.objects.filter(
        pk=job.pk, status__in=[Job.Status.RUNNING, Job.Status.WAITING]
    ).update(
        status=Job.Status.QUEUED, attempts=F("attempts") + 1, error=reason[:4000], updated_at=now
    )
    if moved:
        job.refresh_from_db()
        events.publish_job(job)
        enqueue(job.pk, delay=delay)
    return bool(moved)


def _settle_container(parent_id: int) -> None:
    parent = Job.objects.select_for_update().get(pk=parent_id)
    children = list(parent.children.values_list("status", "progress"))
    if not children:
        return
    parent.progress = sum(p for _, p in children) // len(children)
    fields = ["progress", "updated_at"]
    if all(s not in ACTIVE for s, _ in children) and parent.status in ACTIVE:
        failed = sum(1 for s, _ in children if s != Job.Status.SUCCEEDED)
        parent.status = Job.Status.FAILED if failed else Job.Status.SUCCEEDED
        parent.error = f"{failed} of {len(children)} parts did not succeed." if failed else ""
        parent.finished_at = timezone.now()
        fields += ["status", "error", "finished_at"]
    parent.save(update_fields=fields)
    events.publish_job(parent)


def _mark_units_failed(job: Job) -> None:
    if job.type == Job.Type.CHARACTERS:
        units = Character.objects.filter(source_job_id=job.pk, status=Character.Status.GENERATING)
        units.update(status=Character.Status.FAILED)
    elif job.type == Job.Type.SCENES:
        job.project.scenes.filter(status=Scene.Status.GENERATING).update(status=Scene.Status.FAILED)
    elif job.type == Job.Type.FRAMES:
        Scene.objects.filter(pk=job.target_id).update(status=Scene.Status.FAILED)
        Frame.objects.filter(scene_id=job.target_id).exclude(status=Frame.Status.READY).update(
            status=Frame.Status.FAILED
        )
    elif job.type == Job.Type.VIDEOS:
        Video.objects.filter(frame_id=job.target_id).exclude(status=Video.Status.READY).update(
            status=Video.Status.FAILED
        )


def _fire_successors(job: Job) -> None:
    project = _lock_project(job.project)
    if job.type == Job.Type.CHARACTERS:
        if project.status == Project.Status.GENERATING_CHARACTERS:
            _set_status(project, Project.Status.AWAITING_APPROVAL)
        cast_decided(project=project)
    elif job.type == Job.Type.SCENES:
        for scene in project.scenes.order_by("order"):
            _frames_job(project, scene)
        _set_status(project, Project.Status.GENERATING_FRAMES)
    elif job.type == Job.Type.FRAMES:
        for frame in Frame.objects.filter(scene_id=job.target_id).order_by("order"):
            _video_job(project, frame)
        _set_status(project, Project.Status.GENERATING_VIDEOS)
    elif job.type == Job.Type.VIDEOS:
        # Fan-in under the project's row lock: however many clips finish at once, the last
        # one sees every clip ready and no stitch job active, and exactly one stitch starts.
        if _stitch_problem(project) is None and not _active(
            project.jobs.filter(type=Job.Type.STITCH)
        ):
            _start_stitch(project)
    elif job.type == Job.Type.STITCH:
        _set_status(project, Project.Status.COMPLETE)


# --- retry and cancel ----------------------------------------------------------------------


def job_retry(*, job: Job) -> Job:
    with transaction.atomic():
        job = Job.objects.select_for_update().get(pk=job.pk)
        if job.status not in (Job.Status.FAILED, Job.Status.CANCELLED):
            raise ConflictError(
                f"Only a failed or cancelled job can be retried; this one is {job.status}."
            )
        project = _lock_project(job.project)
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
        _set_status(project, STATUS_FOR_TYPE[job.type])
    return job


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
    _enqueue_on_commit(job.pk, urgent=job.type == Job.Type.VIDEOS)


def _cancel_active(jobs, reason: str) -> list[int]:
    """Cancel the active jobs among `jobs` (rows now, their RQ deliveries after commit)."""
    now = timezone.now()
    active = list(jobs.filter(status__in=ACTIVE).values_list("pk", "rq_job_id"))
    Job.objects.filter(pk__in=[pk for pk, _ in active]).update(
        status=Job.Status.CANCELLED, error=reason, finished_at=now, updated_at=now
    )
    for _, rq_id in active:
        transaction.on_commit(lambda rq_id=rq_id: _rq_cancel(rq_id))
    return [pk for pk, _ in active]


def job_cancel(*, job: Job, set_project_status: bool = True) -> Job:
    with transaction.atomic():
        job = Job.objects.select_for_update().get(pk=job.pk)
        if job.status not in ACTIVE:
            raise ConflictError(
                f"Only a queued, running or waiting job can be cancelled; this one is {job.status}."
            )
        project = _lock_project(job.project)
        cancelled = _cancel_active(Job.objects.filter(Q(pk=job.pk) | Q(parent=job)), "Cancelled.")
        for victim in Job.objects.filter(pk__in=cancelled):
            events.publish_job(victim)
        job.refresh_from_db()
        if job.parent_id:
            _settle_container(job.parent_id)
        if set_project_status:
            _set_status(project, Project.Status.CANCELLED)
    return job


def project_has_active_jobs(project: Project) -> bool:
    return _active(project.jobs.all())


def scene_generation_started(project: Project) -> bool:
    return (
        project.scenes.exists()
        or project.jobs.filter(type=Job.Type.SCENES).exclude(status=Job.Status.CANCELLED).exists()
    )


def project_jobs_cancel(*, project: Project, reason: str) -> int:
    count = len(_cancel_active(project.jobs.all(), reason))
    logger.info("cancelled %s jobs of project %s: %s", count, project.pk, reason)
    return count


# --- project status and progress -----------------------------------------------------------

# Share of the whole pipeline each stage stands for (sums to 100).
WEIGHTS = {"cast": 10, "gate": 5, "scenes": 10, "frames": 20, "videos": 45, "film": 10}


def project_progress(project: Project) -> int:
    cast = project.characters.aggregate(
        total=Count("id"),
        settled=Count("id", filter=~Q(status=Character.Status.GENERATING)),
    )
    expected_frames = max(1, project.num_scenes * project.frames_per_scene)
    scenes_ready = project.scenes.filter(status=Scene.Status.READY).count()
    frames = Frame.objects.filter(scene__project=project).aggregate(
        ready=Count("id", filter=Q(status=Frame.Status.READY)),
        clips=Count("id", filter=Q(video__status=Video.Status.READY)),
    )
    score = 0.0
    if cast["total"]:
        score += WEIGHTS["cast"] * cast["settled"] / cast["total"]
    if scene_generation_started(project):
        score += WEIGHTS["gate"]
    score += WEIGHTS["scenes"] * min(1, scenes_ready / max(1, project.num_scenes))
    score += WEIGHTS["frames"] * min(1, frames["ready"] / expected_frames)
    score += WEIGHTS["videos"] * min(1, frames["clips"] / expected_frames)
    if project.status == Project.Status.COMPLETE and project.final_video:
        score += WEIGHTS["film"]
    return max(0, min(100, round(score)))


def project_refresh(project_id: int) -> None:
    """Recompute progress; a pipeline that stopped on a failure says so in its status."""
    project = Project.objects.select_for_update().get(pk=project_id)
    fields = []
    progress = project_progress(project)
    if project.progress != progress:
        project.progress = progress
        fields.append("progress")
    generating = project.status in STATUS_FOR_TYPE.values()
    if generating and not project_has_active_jobs(project):
        if project.jobs.filter(status=Job.Status.FAILED).exists():
            project.status = Project.Status.FAILED
            fields.append("status")
    if fields:
        project.save(update_fields=[*fields, "updated_at"])
        events.publish_entity(project)
