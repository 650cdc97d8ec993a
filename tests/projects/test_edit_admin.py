"""Scene and frame pages in the admin: their text is edited through the API's services."""

import pytest
from django.contrib.auth import get_user_model

from generation.models import GenerationJob
from tests.factories import FrameFactory, JobFactory, ProjectFactory, SceneFactory, VideoFactory

pytestmark = pytest.mark.django_db

Job = GenerationJob


@pytest.fixture
def admin_client(client):
    admin = get_user_model().objects.create_superuser("boss", password="pw-for-tests-only")
    client.force_login(admin)
    return client


@pytest.fixture
def frame():
    scene = SceneFactory(project=ProjectFactory(), title="The storm", mood="grim")
    return FrameFactory(scene=scene, prompt="Waves crash", camera="wide")


def scene_form(scene, **changes) -> dict:
    return {
        "title": scene.title,
        "concise_plot": scene.concise_plot,
        "detailed_plot": scene.detailed_plot,
        "dialogue": scene.dialogue,
        "location": scene.location,
        "mood": scene.mood,
        "frames-TOTAL_FORMS": 0,
        "frames-INITIAL_FORMS": 0,
        **changes,
    }


def frame_form(frame, **changes) -> dict:
    return {
        "prompt": frame.prompt,
        "camera": frame.camera,
        "dialogue": frame.dialogue,
        "video-TOTAL_FORMS": 0,
        "video-INITIAL_FORMS": 0,
        "takes-TOTAL_FORMS": 0,  # the frame's takes, shown read-only
        "takes-INITIAL_FORMS": 0,
        **changes,
    }


def test_it_edits_a_scene(admin_client, frame):
    scene = frame.scene
    url = f"/admin/projects/scene/{scene.pk}/change/"
    response = admin_client.post(url, scene_form(scene, title="The calm"), follow=True)
    assert "was changed successfully" in response.content.decode()
    scene.refresh_from_db()
    assert (scene.title, scene.mood) == ("The calm", "grim")


def test_a_scene_edit_refused_by_the_service_saves_nothing(admin_client, frame):
    scene = frame.scene
    JobFactory(
        project=scene.project,
        type=Job.Type.FRAMES,
        target_type=Job.TargetType.SCENE,
        target_id=scene.pk,
        status="running",
    )
    url = f"/admin/projects/scene/{scene.pk}/change/"
    page = admin_client.post(url, scene_form(scene, title="Too late"), follow=True)
    assert "while job #" in page.content.decode()
    assert "was changed successfully" not in page.content.decode()
    scene.refresh_from_db()
    assert scene.title == "The storm"


def test_it_edits_a_frame(admin_client, frame):
    url = f"/admin/projects/frame/{frame.pk}/change/"
    response = admin_client.post(url, frame_form(frame, camera="close-up"), follow=True)
    assert "was changed successfully" in response.content.decode()
    frame.refresh_from_db()
    assert (frame.camera, frame.prompt) == ("close-up", "Waves crash")


def test_a_frame_edit_refused_by_the_service_saves_nothing(admin_client, frame):
    VideoFactory(frame=frame, status="generating")
    JobFactory(
        project=frame.scene.project,
        type=Job.Type.VIDEOS,
        target_type=Job.TargetType.FRAME,
        target_id=frame.pk,
        status="waiting",
    )
    url = f"/admin/projects/frame/{frame.pk}/change/"
    form = frame_form(frame, prompt="Too late")
    form.update({"video-TOTAL_FORMS": 1, "video-INITIAL_FORMS": 1, "video-0-id": frame.video.pk})
    form["video-0-frame"] = frame.pk
    page = admin_client.post(url, form, follow=True).content.decode()
    assert "while job #" in page and "waiting" in page
    frame.refresh_from_db()
    assert frame.prompt == "Waves crash"


def test_scenes_and_frames_are_neither_added_nor_deleted_in_the_admin(admin_client, frame):
    for model, obj in (("scene", frame.scene), ("frame", frame)):
        base = f"/admin/projects/{model}/"
        assert admin_client.get(f"{base}add/").status_code == 403
        assert admin_client.post(f"{base}{obj.pk}/delete/", {"post": "yes"}).status_code == 403
        form = {"action": "delete_selected", "_selected_action": [obj.pk], "post": "yes"}
        admin_client.post(base, form)
        assert type(obj).objects.filter(pk=obj.pk).exists()


def test_the_frames_on_a_scene_page_stay_read_only(admin_client, frame):
    scene = frame.scene
    url = f"/admin/projects/scene/{scene.pk}/change/"
    form = scene_form(
        scene,
        **{
            "frames-TOTAL_FORMS": 1,
            "frames-INITIAL_FORMS": 1,
            "frames-0-id": frame.pk,
            "frames-0-scene": scene.pk,
            "frames-0-prompt": "Edited around the service",
            "frames-0-DELETE": "on",
        },
    )
    admin_client.post(url, form, follow=True)
    frame.refresh_from_db()
    assert frame.prompt == "Waves crash"
