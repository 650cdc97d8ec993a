"""The one table of job types. Everything that differs between types is a field of its row:
adding a type is adding a row here (and its step module), with no `if type == ...` elsewhere.

Behaviour is named by dotted path and imported on first use: the step and hook modules sit
above this table (they create, finish and cancel jobs), and the table must not import them."""

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

from django.utils.module_loading import import_string

from generation.models import GenerationJob
from projects.models import Project

Type = GenerationJob.Type
Target = GenerationJob.TargetType
Status = Project.Status


@dataclass(frozen=True)
class JobType:
    name: str
    step: str  # "module.function": run(job) does the work
    targets: tuple[str, ...]  # what `target_type` may be
    # The project's status while a job of this type runs; "" leaves it as it is (one unit
    # redone in a finished project does not put the whole project back to "generating").
    project_status: str
    mark_failed: str  # "module.function": (job) -> None, marks its units failed
    after: str  # "module.function": (job, locked project) -> None, fires successors
    urgent: bool = False  # front of the queue (the remote video service is the long pole)
    # Waits on a remote request (`provider_request_ids`) that the poller follows and that is
    # cancelled at the provider when the job is.
    polls_remote: bool = False
    # Runs again when its children have all finished (a refresh goes stage by stage), instead
    # of finishing with them like a plain container.
    resumes_after_children: bool = False
    # Waits for its project instead (`jobs.job_wait_for_project`): goes on when no other job
    # of the project is queued, running or waiting, and is not itself counted as the project's
    # work (an agent run watching its pipeline must not block the edits it makes).
    waits_for_project: bool = False
    # "module.function": (project, target type, target id, params) -> estimate items of one
    # job of this type, its children included (generation.estimates).
    estimate: str = "generation.estimates.free"
    # "module.function": (job, locked project) -> None; ConflictError when a retry of the job
    # would be refused as its start is (what it needs is missing, or the same work is running).
    retry_check: str = "generation.pipeline.retry_unless_twin"
    # "module.function": (job) -> None, told (project row locked) that the job was cancelled.
    cancelled: str = "generation.pipeline.nothing_to_mark"

    def run(self, job: GenerationJob) -> None:
        _resolve(self.step)(job)

    def fail_units(self, job: GenerationJob) -> None:
        _resolve(self.mark_failed)(job)

    def fire_successors(self, job: GenerationJob, project: Project) -> None:
        _resolve(self.after)(job, project)

    def check_retry(self, job: GenerationJob, project: Project) -> None:
        _resolve(self.retry_check)(job, project)

    def was_cancelled(self, job: GenerationJob) -> None:
        _resolve(self.cancelled)(job)

    def estimate_items(self, project: Project, target_type: str, target_id: int, params: dict):
        return _resolve(self.estimate)(project, target_type, target_id, params)


@cache
def _resolve(path: str) -> Callable[..., Any]:
    return import_string(path)


_PIPELINE = "generation.pipeline"
_ESTIMATES = "generation.estimates"

JOB_TYPES: dict[str, JobType] = {
    jt.name: jt
    for jt in (
        JobType(
            name=Type.CHARACTERS,
            step="generation.steps.characters.run",
            retry_check=f"{_PIPELINE}.retry_characters",
            targets=(Target.PROJECT,),
            project_status=Status.GENERATING_CHARACTERS,
            mark_failed=f"{_PIPELINE}.characters_failed",
            after=f"{_PIPELINE}.after_characters",
            estimate=f"{_ESTIMATES}.characters",
        ),
        JobType(
            name=Type.SCENES,
            step="generation.steps.scenes.run",
            retry_check=f"{_PIPELINE}.retry_scenes",
            targets=(Target.PROJECT,),
            project_status=Status.GENERATING_SCENES,
            mark_failed=f"{_PIPELINE}.scenes_failed",
            after=f"{_PIPELINE}.after_scenes",
            estimate=f"{_ESTIMATES}.scenes",
        ),
        JobType(
            name=Type.FRAMES,
            step="generation.steps.frames.run",
            retry_check=f"{_PIPELINE}.retry_frames",
            targets=(Target.PROJECT, Target.SCENE),
            project_status=Status.GENERATING_FRAMES,
            mark_failed=f"{_PIPELINE}.frames_failed",
            after=f"{_PIPELINE}.after_frames",
            estimate=f"{_ESTIMATES}.frames",
        ),
        JobType(
            name=Type.VIDEOS,
            step="generation.steps.videos.run",
            retry_check=f"{_PIPELINE}.retry_videos",
            targets=(Target.PROJECT, Target.FRAME),
            project_status=Status.GENERATING_VIDEOS,
            mark_failed=f"{_PIPELINE}.video_failed",
            after=f"{_PIPELINE}.after_video",
            urgent=True,
            polls_remote=True,
            estimate=f"{_ESTIMATES}.videos",
        ),
        JobType(
            name=Type.STITCH,
            step="generation.steps.stitch.run",
            retry_check=f"{_PIPELINE}.retry_stitch",
            targets=(Target.PROJECT,),
            project_status=Status.STITCHING,
            mark_failed=f"{_PIPELINE}.nothing_to_mark",
            after=f"{_PIPELINE}.after_stitch",
        ),
        JobType(
            name=Type.PORTRAIT,
            step="generation.steps.characters.portrait_run",
            retry_check=f"{_PIPELINE}.retry_portrait",
            targets=(Target.CHARACTER,),
            project_status="",
            mark_failed=f"{_PIPELINE}.nothing_to_mark",
            after=f"{_PIPELINE}.after_unit",
            estimate=f"{_ESTIMATES}.portrait",
        ),
        JobType(
            name=Type.KEYFRAME,
            step="generation.steps.frames.keyframe_run",
            retry_check=f"{_PIPELINE}.retry_keyframe",
            targets=(Target.FRAME,),
            project_status="",
            mark_failed=f"{_PIPELINE}.nothing_to_mark",
            after=f"{_PIPELINE}.after_unit",
            estimate=f"{_ESTIMATES}.keyframe",
        ),
        JobType(
            name=Type.IMAGE_EDIT,
            step="generation.steps.edit.run",
            retry_check=f"{_PIPELINE}.retry_image_edit",
            targets=(Target.CHARACTER, Target.FRAME, Target.OBJECT),
            project_status="",
            mark_failed=f"{_PIPELINE}.nothing_to_mark",
            after=f"{_PIPELINE}.after_unit",
            estimate=f"{_ESTIMATES}.image_edit",
        ),
        JobType(
            name=Type.REFERENCE,
            step="generation.steps.objects.run",
            retry_check=f"{_PIPELINE}.retry_reference",
            targets=(Target.OBJECT,),
            project_status="",
            mark_failed=f"{_PIPELINE}.nothing_to_mark",
            after=f"{_PIPELINE}.after_unit",
            estimate=f"{_ESTIMATES}.reference",
        ),
        JobType(
            name=Type.REFRESH,
            step="generation.steps.refresh.run",
            retry_check=f"{_PIPELINE}.retry_refresh",
            targets=(Target.PROJECT,),
            project_status="",
            resumes_after_children=True,
            mark_failed=f"{_PIPELINE}.nothing_to_mark",
            after=f"{_PIPELINE}.after_unit",
        ),
        JobType(
            name=Type.AUDIO,
            step="generation.steps.lines.run",
            targets=(Target.PROJECT, Target.SCENE, Target.FRAME),
            project_status="",
            mark_failed=f"{_PIPELINE}.nothing_to_mark",
            after=f"{_PIPELINE}.after_lines",
            estimate=f"{_ESTIMATES}.lines",
        ),
        JobType(
            name=Type.EXPORT,
            step="generation.steps.export.run",
            retry_check=f"{_PIPELINE}.retry_export",
            targets=(Target.PROJECT,),
            project_status="",
            mark_failed=f"{_PIPELINE}.nothing_to_mark",
            after=f"{_PIPELINE}.after_export",
        ),
        JobType(
            name=Type.AGENT_RUN,
            step="director.runs.advance_job",  # the top layer's, named by path (not imported)
            targets=(Target.PROJECT,),
            project_status="",
            waits_for_project=True,
            mark_failed="director.runs.advance_failed",
            cancelled="director.runs.advance_cancelled",
            after=f"{_PIPELINE}.after_unit",
            estimate="director.services.advance_estimate",  # its planner's calls, if it plans
        ),
    )
}


def job_type(name: str) -> JobType:
    return JOB_TYPES[name]


def generating_statuses() -> frozenset[str]:
    """Project statuses that mean "a stage is running"."""
    return frozenset(jt.project_status for jt in JOB_TYPES.values() if jt.project_status)


def load_job_types() -> None:
    """Import every step and hook now (workers, before forking; a test checks every path)."""
    for jt in JOB_TYPES.values():
        for path in (jt.step, jt.mark_failed, jt.after, jt.estimate, jt.retry_check, jt.cancelled):
            if path:
                _resolve(path)


def project_waiter_types() -> list[str]:
    return [jt.name for jt in JOB_TYPES.values() if jt.waits_for_project]


def remote_types() -> list[str]:
    return [jt.name for jt in JOB_TYPES.values() if jt.polls_remote]
