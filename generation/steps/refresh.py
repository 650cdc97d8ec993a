"""Refresh: regenerate exactly the stale units, stage by stage in dependency order (portraits,
objects' reference images, then keyframes, then clips, then spoken lines), then re-cut the
film. The job runs once per stage: it starts that stage's unit jobs as its children, waits (no
worker held), and runs again when they are done."""

from django.db import transaction

from generation import services
from generation.jobs import job_create, job_wait_for_children
from generation.models import GenerationJob
from generation.providers.base import PermanentProviderError
from projects.takes import project_stale_units

Job = GenerationJob

# Stale unit type → (job type, target type): the order is the order of the stages.
STAGES = (
    ("portrait", Job.Type.PORTRAIT, Job.TargetType.CHARACTER),
    ("reference", Job.Type.REFERENCE, Job.TargetType.OBJECT),
    ("keyframe", Job.Type.KEYFRAME, Job.TargetType.FRAME),
    ("clip", Job.Type.VIDEOS, Job.TargetType.FRAME),
    ("line", Job.Type.AUDIO, Job.TargetType.FRAME),
    ("film", Job.Type.STITCH, Job.TargetType.PROJECT),
)


def run(job: Job) -> None:
    done = job.result or {}  # units redone per stage, and the jobs of the stage in flight
    stage = job.children.filter(pk__in=done.pop("stage_jobs", []))
    failed = stage.exclude(status=Job.Status.SUCCEEDED).count()
    if failed:
        raise PermanentProviderError(f"{failed} unit(s) of the last refresh stage did not succeed.")
    units = project_stale_units(job.project)
    for unit_type, job_type, target_type in STAGES:
        todo = [u for u in units if u["type"] == unit_type]
        if not todo:
            continue
        with transaction.atomic():
            jobs = [
                job_create(
                    project=job.project,
                    type=job_type,
                    target_type=target_type,
                    target_id=unit["id"],
                    parent=job,
                )
                for unit in todo
            ]
            done[unit_type] = done.get(unit_type, 0) + len(todo)
            Job.objects.filter(pk=job.pk).update(
                result={**done, "stage_jobs": [j.pk for j in jobs]}
            )
            job_wait_for_children(job)
        return
    services.job_succeed(job, {**done, "stale_left": 0})
