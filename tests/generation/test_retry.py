"""POST /api/jobs/{id}/retry answers to the same checks as starting that job: a retry that its
start would refuse is a 409 and changes nothing."""

import pytest

from generation.models import GenerationJob
from projects.models import Character, Project
from tests.factories import (
    CharacterFactory,
    FrameFactory,
    JobFactory,
    ProjectFactory,
    SceneFactory,
    VideoFactory,
)
from tests.pipeline import drain

pytestmark = pytest.mark.django_db
Job = GenerationJob
Type, Target = Job.Type, Job.TargetType


def retry(api, job):
    return api.post(f"/api/jobs/{job.pk}/retry")


def assert_refused(api, job, says: str) -> None:
    before = (job.status, job.attempts)
    response = retry(api, job)
    assert response.status_code == 409, response.content
    assert says in response.json()["detail"]
    job.refresh_from_db()
    assert (job.status, job.attempts) == before


def test_a_cast_job_cannot_be_retried_once_scenes_exist(api, user):
    project = ProjectFactory(owner=user, status=Project.Status.GENERATING_FRAMES)
    CharacterFactory(project=project, status="approved")
    SceneFactory(project=project)
    job = JobFactory(project=project, type=Type.CHARACTERS, status="cancelled")

    assert_refused(api, job, "Scene generation has started: the cast can no longer change.")
    drain()
    assert Character.objects.filter(project=project).count() == 1
    project.refresh_from_db()
    assert project.status == Project.Status.GENERATING_FRAMES


def test_a_scene_job_cannot_be_retried_while_the_cast_is_undecided(api, user):
    project = ProjectFactory(owner=user, status=Project.Status.FAILED)
    CharacterFactory(project=project, status="approved")
    CharacterFactory(project=project, status="pending")
    job = JobFactory(project=project, type=Type.SCENES, status="failed")
    assert_refused(api, job, "Cannot generate scenes: 1 character(s) still await")


def test_a_stitch_cannot_be_retried_with_a_clip_missing(api, user):
    project = ProjectFactory(owner=user, status=Project.Status.FAILED)
    scene = SceneFactory(project=project)
    VideoFactory(frame=FrameFactory(scene=scene, order=1, image="x.png"), status="ready")
    FrameFactory(scene=scene, order=2, image="y.png")
    job = JobFactory(project=project, type=Type.STITCH, status="failed")
    assert_refused(api, job, "Cannot stitch: 1 of 2 clips are not ready.")


def test_a_job_cannot_be_retried_beside_one_doing_the_same_work(api, user):
    project = ProjectFactory(owner=user, status=Project.Status.GENERATING_FRAMES)
    scene = SceneFactory(project=project)
    failed = JobFactory(
        project=project, type=Type.FRAMES, target_type=Target.SCENE, target_id=scene.pk
    )
    Job.objects.filter(pk=failed.pk).update(status="failed")
    failed.refresh_from_db()
    JobFactory(
        project=project, type=Type.FRAMES, target_type=Target.SCENE, target_id=scene.pk
    )  # queued
    assert_refused(api, failed, "is queued")


def test_a_clip_cannot_be_retried_once_its_keyframe_is_gone(api, user):
    project = ProjectFactory(owner=user, status=Project.Status.FAILED)
    frame = FrameFactory(scene=SceneFactory(project=project), image="")
    job = JobFactory(
        project=project,
        type=Type.VIDEOS,
        target_type=Target.FRAME,
        target_id=frame.pk,
        status="failed",
    )
    assert_refused(api, job, f"Frame {frame.pk} has no keyframe yet.")


@pytest.mark.django_db(transaction=True)  # the retry reaches RQ when it commits
def test_a_retry_the_start_would_allow_goes_ahead(api, user):
    project = ProjectFactory(owner=user, status=Project.Status.FAILED)
    job = JobFactory(project=project, type=Type.CHARACTERS, status="failed", params={"count": 2})
    response = retry(api, job)
    assert response.status_code == 202
    drain()
    job.refresh_from_db()
    assert job.status == "succeeded"
    assert Character.objects.filter(project=project).count() == 2
