"""One cancel for parents and children, cancels that reach the video service, and steps that
check they are still wanted before replacing anything (issue 10, items 3 and 4)."""

import pytest

from generation import services
from generation.inline import work_once
from generation.models import GenerationJob
from generation.providers import local
from generation.steps import characters as characters_step
from generation.steps import scenes as scenes_step
from generation.steps import videos
from projects.models import Character, Frame, Project, Video
from tests.factories import ProjectFactory
from tests.fakes.fal_server import tiny_mp4
from tests.pipeline import drain

pytestmark = pytest.mark.django_db(transaction=True)
Job = GenerationJob


@pytest.fixture
def project(user):
    return ProjectFactory(owner=user, num_scenes=2, frames_per_scene=2, clip_seconds=2)


def approve_cast(api, project) -> None:
    assert (
        api.post(
            "/api/jobs/character-generation", {"project_id": project.pk, "count": 2}, format="json"
        ).status_code
        == 202
    )
    drain()
    for character in project.characters.all():
        assert api.post(f"/api/characters/{character.pk}/approve").status_code == 200


@pytest.fixture
def slow_fal(fal):
    """Clips that take far longer than the test: they stay in flight at fal."""
    fal.latency["run"] = 600.0
    return fal


def run_queued_now() -> None:
    """Run what is queued, without promoting scheduled polls (clips stay in flight)."""
    work_once()


def clips_in_flight(api, project) -> Job:
    """The cast approved, frames drawn, and a project-wide clip run whose clips are at fal."""
    approve_cast(api, project)
    for _ in range(20):
        run_queued_now()
        if Job.objects.filter(type=Job.Type.VIDEOS, status=Job.Status.WAITING).count() == 4:
            break
    assert Job.objects.filter(type=Job.Type.VIDEOS, status=Job.Status.WAITING).count() == 4
    return project


def test_regenerating_a_scenes_frames_cancels_the_clip_children_of_a_project_wide_run(
    api, project, slow_fal
):
    clips_in_flight(api, project)
    scene = project.scenes.order_by("order").first()
    # The scene's clips came from the pipeline's per-scene jobs; start a project-wide run whose
    # children are the ones in flight, as a producer re-running every clip would.
    for job in Job.objects.filter(type=Job.Type.VIDEOS, status=Job.Status.WAITING):
        services.job_cancel(job=job, set_project_status=False)
    container = services.start_video_generation(project=project)
    for _ in range(20):
        run_queued_now()
        if container.children.filter(status=Job.Status.WAITING).count() == 4:
            break
    old_frames = list(scene.frames.values_list("pk", flat=True))
    children_of_scene = container.children.filter(target_id__in=old_frames)
    assert children_of_scene.count() == 2

    response = api.post("/api/jobs/frame-generation", {"scene_id": scene.pk}, format="json")
    assert response.status_code == 202
    run_queued_now()

    # Before the fix these children stayed `waiting` for ever: their Video rows were deleted.
    assert set(children_of_scene.values_list("status", flat=True)) == {Job.Status.CANCELLED}
    old_requests = {r for c in children_of_scene for r in c.provider_request_ids}
    run_queued_now()  # the cancel task
    cancels = {r.path.split("/")[-2] for r in slow_fal.requests if r.kind == "cancel"}
    assert old_requests <= cancels
    other = container.children.exclude(target_id__in=old_frames)
    assert set(other.values_list("status", flat=True)) == {Job.Status.WAITING}


def test_cancelling_a_waiting_clip_cancels_it_at_fal(api, project, slow_fal):
    clips_in_flight(api, project)
    job = Job.objects.filter(type=Job.Type.VIDEOS, status=Job.Status.WAITING).first()
    request_id = job.provider_request_ids[-1]
    assert api.delete(f"/api/jobs/{job.pk}").status_code == 200
    run_queued_now()
    cancelled = [r for r in slow_fal.requests if r.kind == "cancel"]
    assert [r.path.split("/")[-2] for r in cancelled] == [request_id]
    assert slow_fal.jobs[request_id].cancelled


def test_deleting_a_project_cancels_its_clips_at_fal(api, project, slow_fal):
    clips_in_flight(api, project)
    in_flight = {
        r for job in Job.objects.filter(status=Job.Status.WAITING) for r in job.provider_request_ids
    }
    assert api.delete(f"/api/projects/{project.pk}").status_code == 204
    run_queued_now()
    assert {r.path.split("/")[-2] for r in slow_fal.requests if r.kind == "cancel"} == in_flight


def test_a_clip_delivered_after_its_row_vanished_ends_its_job(api, project, slow_fal):
    clips_in_flight(api, project)
    job = Job.objects.filter(type=Job.Type.VIDEOS, status=Job.Status.WAITING).first()
    Video.objects.filter(frame_id=job.target_id).delete()
    assert videos.deliver(job, tiny_mp4()) is False
    job.refresh_from_db()
    assert job.status == Job.Status.CANCELLED  # not `waiting` for ever


class CancelledDuringTheCall:
    """A text model that takes its time: the producer cancels while it writes."""

    def __init__(self, job_type: str):
        self.job_type = job_type
        self.inner = local.LocalText()

    def generate_json(self, **kwargs):
        job = Job.objects.get(type=self.job_type, status=Job.Status.RUNNING)
        services.job_cancel(job=job)
        return self.inner.generate_json(**kwargs)


def test_a_scene_regeneration_cancelled_mid_call_keeps_the_storyboard(api, project, monkeypatch):
    approve_cast(api, project)
    drain()
    project.refresh_from_db()
    assert project.status == Project.Status.COMPLETE
    frames = set(Frame.objects.filter(scene__project=project).values_list("pk", "image"))
    clips = set(Video.objects.filter(frame__scene__project=project).values_list("pk", "file"))
    scenes = set(project.scenes.values_list("pk", "title"))

    monkeypatch.setattr(
        scenes_step, "text_provider", lambda: CancelledDuringTheCall(Job.Type.SCENES)
    )
    assert (
        api.post(
            "/api/jobs/scene-generation", {"project_id": project.pk}, format="json"
        ).status_code
        == 202
    )
    drain()

    job = Job.objects.filter(type=Job.Type.SCENES).latest("pk")
    assert job.status == Job.Status.CANCELLED
    assert set(project.scenes.values_list("pk", "title")) == scenes
    assert set(Frame.objects.filter(scene__project=project).values_list("pk", "image")) == frames
    assert (
        set(Video.objects.filter(frame__scene__project=project).values_list("pk", "file")) == clips
    )
    assert not Job.objects.filter(type=Job.Type.FRAMES, created_at__gt=job.created_at).exists()


def test_character_generation_cancelled_mid_call_adds_no_character(api, project, monkeypatch):
    monkeypatch.setattr(
        characters_step, "text_provider", lambda: CancelledDuringTheCall(Job.Type.CHARACTERS)
    )
    assert (
        api.post(
            "/api/jobs/character-generation", {"project_id": project.pk, "count": 3}, format="json"
        ).status_code
        == 202
    )
    drain()
    assert Job.objects.get(type=Job.Type.CHARACTERS).status == Job.Status.CANCELLED
    assert Character.objects.filter(project=project).count() == 0
