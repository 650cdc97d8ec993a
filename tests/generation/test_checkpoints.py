"""The storyboard checkpoint: with `storyboard` on, the pipeline stops once every keyframe is
ready, asks for no clip, and goes on to the film only when the producer approves."""

import pytest
from django.core.exceptions import ValidationError
from django.db import transaction

from filmstudio.exceptions import ConflictError
from generation import services
from generation.models import GenerationJob
from generation.providers.local import LocalVideo
from projects.models import Frame, Project, Video
from tests.factories import FrameFactory, ProjectFactory, SceneFactory
from tests.pipeline import drain

pytestmark = pytest.mark.django_db(transaction=True)
Job = GenerationJob
AWAITING = Project.Status.AWAITING_STORYBOARD_APPROVAL


@pytest.fixture(autouse=True)
def offline(settings):
    settings.TEXT_PROVIDER = settings.IMAGE_PROVIDER = settings.VIDEO_PROVIDER = "local"


@pytest.fixture
def clips_asked(monkeypatch) -> list[int]:
    """The seeds of every clip the (local) video provider was asked for."""
    asked: list[int] = []
    submit = LocalVideo.submit

    def counting(self, **kwargs):
        asked.append(kwargs["seed"])
        return submit(self, **kwargs)

    monkeypatch.setattr(LocalVideo, "submit", counting)
    return asked


def create(api, **fields) -> dict:
    body = {"title": "Storm", "num_scenes": 2, "frames_per_scene": 2, "clip_seconds": 2, **fields}
    response = api.post("/api/projects", body, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def run_to_the_cast_decision(api, project_id: int) -> None:
    body = {"project_id": project_id, "count": 2}
    assert api.post("/api/jobs/character-generation", body, format="json").status_code == 202
    drain()
    for character in Project.objects.get(pk=project_id).characters.all():
        assert api.post(f"/api/characters/{character.pk}/approve").status_code == 200
    drain()


def approve(api, project_id: int, slash: str = ""):
    return api.post(f"/api/projects/{project_id}/storyboard/approve{slash}")


@pytest.fixture
def awaiting(api, clips_asked) -> Project:
    """An offline 2x2 project with the storyboard checkpoint, run until it stops."""
    data = create(api, checkpoints=["cast", "storyboard"])
    run_to_the_cast_decision(api, data["id"])
    project = Project.objects.get(pk=data["id"])
    assert project.status == AWAITING
    return project


def awaiting_world(owner) -> Project:
    """A project stopped at the checkpoint, built directly (no pipeline run)."""
    project = ProjectFactory(owner=owner, status=AWAITING, checkpoints=["cast", "storyboard"])
    scene = SceneFactory(project=project)
    FrameFactory(scene=scene, image="frames/a.png")
    return project


# --- the field -----------------------------------------------------------------------------


def test_the_default_is_the_cast_only(api):
    data = create(api)
    assert data["checkpoints"] == ["cast"]
    assert Project.objects.get(pk=data["id"]).checkpoints == ["cast"]


def test_it_accepts_the_storyboard_checkpoint(api):
    data = create(api, checkpoints=["cast", "storyboard"])
    assert data["checkpoints"] == ["cast", "storyboard"]
    assert api.get(f"/api/projects/{data['id']}").json()["checkpoints"] == ["cast", "storyboard"]


def test_cast_is_always_kept(api):
    data = create(api, checkpoints=["storyboard"])
    assert data["checkpoints"] == ["cast", "storyboard"]
    response = api.patch(f"/api/projects/{data['id']}", {"checkpoints": []}, format="json")
    assert response.status_code == 200
    assert response.json()["checkpoints"] == ["cast"]
    assert Project.objects.get(pk=data["id"]).checkpoints == ["cast"]


def test_patch_turns_the_storyboard_checkpoint_on(api):
    data = create(api)
    body = {"checkpoints": ["storyboard", "cast"]}
    response = api.patch(f"/api/projects/{data['id']}", body, format="json")
    assert response.status_code == 200
    assert response.json()["checkpoints"] == ["cast", "storyboard"]


@pytest.mark.parametrize(
    "value",
    [
        ["cast", "music"],
        ["storyboard", "storyboard"],
        "storyboard",
        [1],
        [True],
        [None],
        [["cast"]],
        {"cast": True},
        None,
    ],
)
def test_bad_checkpoints_are_400(api, user, value):
    response = api.post("/api/projects", {"title": "Bad", "checkpoints": value}, format="json")
    assert response.status_code == 400, response.content
    assert "checkpoints" in response.json()
    assert not Project.objects.exists()
    project = ProjectFactory(owner=user)
    response = api.patch(f"/api/projects/{project.pk}", {"checkpoints": value}, format="json")
    assert response.status_code == 400, response.content
    assert "checkpoints" in response.json()


def test_a_bad_patch_changes_nothing(api, user):
    project = ProjectFactory(owner=user)
    body = {"checkpoints": ["cast", "color-grading"]}
    response = api.patch(f"/api/projects/{project.pk}", body, format="json")
    assert response.status_code == 400
    assert "color-grading" in str(response.json()["checkpoints"])
    project.refresh_from_db()
    assert project.checkpoints == ["cast"]


def test_the_service_refuses_unknown_checkpoints_too(user):
    project = ProjectFactory(owner=user)
    with pytest.raises(ValidationError):
        services.project_update(project=project, checkpoints=["storyboard", "trailer"])


# --- the pipeline stops ---------------------------------------------------------------------


def test_it_stops_at_the_storyboard_and_asks_for_no_clip(api, awaiting, clips_asked):
    frames = Frame.objects.filter(scene__project=awaiting)
    assert frames.count() == 4
    assert all(f.image for f in frames)
    assert clips_asked == []
    assert not Video.objects.exists()
    assert not awaiting.jobs.filter(type=Job.Type.VIDEOS).exists()
    assert not awaiting.jobs.filter(status__in=Job.ACTIVE).exists()
    # Progress and refresh leave the status alone (it is not a "generating" one).
    with transaction.atomic():
        services.project_refresh(awaiting.pk)
    awaiting.refresh_from_db()
    assert awaiting.status == AWAITING
    assert 0 < awaiting.progress < 100


def test_approve_makes_the_film(api, awaiting, clips_asked):
    response = approve(api, awaiting.pk)
    assert response.status_code == 202
    job = response.json()
    assert (job["type"], job["target"]["type"]) == (Job.Type.VIDEOS, "project")
    awaiting.refresh_from_db()
    assert awaiting.status == Project.Status.GENERATING_VIDEOS
    drain()
    awaiting.refresh_from_db()
    assert awaiting.status == Project.Status.COMPLETE
    assert awaiting.final_video
    assert len(clips_asked) == 4
    assert Video.objects.filter(status=Video.Status.READY).count() == 4
    assert Job.objects.get(pk=job["id"]).status == Job.Status.SUCCEEDED


def test_approve_twice_is_409(api, awaiting):
    assert approve(api, awaiting.pk).status_code == 202
    response = approve(api, awaiting.pk, "/")
    assert response.status_code == 409
    assert "generating_videos" in response.json()["detail"]
    assert awaiting.jobs.filter(type=Job.Type.VIDEOS, parent=None).count() == 1
    drain()


def test_approve_when_not_awaiting_is_409(api, user):
    project = ProjectFactory(owner=user, status=Project.Status.AWAITING_APPROVAL)
    response = approve(api, project.pk)
    assert response.status_code == 409
    assert "awaiting_approval" in response.json()["detail"]
    project.refresh_from_db()
    assert project.status == Project.Status.AWAITING_APPROVAL
    assert not project.jobs.exists()


def test_approve_with_a_keyframe_missing_is_409(api, user):
    project = awaiting_world(user)
    FrameFactory(scene=project.scenes.get(), order=2, image="")
    response = approve(api, project.pk)
    assert response.status_code == 409
    assert "1 of 2 keyframes" in response.json()["detail"]
    assert not project.jobs.exists()
    assert not Video.objects.exists()


def test_another_users_approve_is_404_and_starts_nothing(other_api, user):
    project = awaiting_world(user)
    for slash in ("", "/"):
        response = approve(other_api, project.pk, slash)
        assert response.status_code == 404
    project.refresh_from_db()
    assert project.status == AWAITING
    assert not project.jobs.exists()


def test_regenerating_a_scenes_frames_comes_back_to_the_approval(api, awaiting, clips_asked):
    scene = awaiting.scenes.order_by("order").first()
    before = set(Frame.objects.filter(scene=scene).values_list("image", flat=True))
    body = {"scene_id": scene.pk}
    assert api.post("/api/jobs/frame-generation", body, format="json").status_code == 202
    awaiting.refresh_from_db()
    assert awaiting.status == Project.Status.GENERATING_FRAMES
    drain()
    awaiting.refresh_from_db()
    assert awaiting.status == AWAITING
    assert all(Frame.objects.filter(scene=scene).values_list("image", flat=True))
    assert set(Frame.objects.filter(scene=scene).values_list("image", flat=True)) != before
    assert clips_asked == []
    assert not Video.objects.exists()


def test_one_frames_clip_can_be_tried_before_approving(api, awaiting, clips_asked):
    frame = Frame.objects.filter(scene__project=awaiting).order_by("pk").first()
    body = {"frame_id": frame.pk}
    assert api.post("/api/jobs/video-generation", body, format="json").status_code == 202
    drain()
    assert clips_asked == [frame.pk]
    assert Video.objects.get().frame == frame
    assert Video.objects.get().status == Video.Status.READY
    awaiting.refresh_from_db()
    assert awaiting.status == AWAITING
    assert approve(api, awaiting.pk).status_code == 202
    drain()
    awaiting.refresh_from_db()
    assert awaiting.status == Project.Status.COMPLETE


def test_every_frames_clips_are_refused_until_the_storyboard_is_approved(api, user):
    """Whoever asks (the job API, the director's tools, an agent run): only the approval
    starts the clips of every frame."""
    project = awaiting_world(user)
    body = {"project_id": project.pk}
    response = api.post("/api/jobs/video-generation", body, format="json")
    assert response.status_code == 409
    assert f"POST /api/projects/{project.pk}/storyboard/approve" in response.json()["detail"]
    with pytest.raises(ConflictError, match="storyboard awaits approval"):
        services.start_video_generation(project=project)
    project.refresh_from_db()
    assert project.status == AWAITING and not project.jobs.exists()
    response = approve(api, project.pk)  # the approval itself starts them
    assert response.status_code == 202
    job = response.json()
    assert (job["type"], job["target"]["type"]) == (Job.Type.VIDEOS, "project")


def test_the_admin_action_approves_through_the_service(admin_client, api, awaiting):
    changelist = "/admin/projects/project/"
    body = {"action": "approve_storyboard", "_selected_action": [awaiting.pk]}
    response = admin_client.post(changelist, body, follow=True)
    assert response.status_code == 200
    assert "Video generation started for 1 project(s)." in response.content.decode()
    awaiting.refresh_from_db()
    assert awaiting.status == Project.Status.GENERATING_VIDEOS
    response = admin_client.post(changelist, body, follow=True)
    assert "awaiting storyboard approval (it is generating_videos)" in response.content.decode()
    assert awaiting.jobs.filter(type=Job.Type.VIDEOS, parent=None).count() == 1
    drain()


# --- v1 behaviour without the checkpoint ----------------------------------------------------


def test_without_the_checkpoint_the_film_is_made_in_one_go(api, clips_asked):
    data = create(api)
    run_to_the_cast_decision(api, data["id"])
    project = Project.objects.get(pk=data["id"])
    assert project.status == Project.Status.COMPLETE
    assert len(clips_asked) == 4
    assert not project.jobs.filter(type=Job.Type.VIDEOS, target_type="project").exists()
    assert approve(api, project.pk).status_code == 409
