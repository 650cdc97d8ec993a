"""PATCH /api/scenes/{id} and /api/frames/{id}: the producer edits text, cast and speaker."""

import json

import pytest
from django_eventstream.models import Event

from filmstudio import eventstore
from generation.jobs import LockNote
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

pytestmark = pytest.mark.django_db

Job = GenerationJob
APPROVED = Character.Status.APPROVED


def work_after_commit(callbacks: list) -> list:
    """What an edit left to do after its commit, but the note that it held the project's row
    lock (`generation.jobs.LockNote`, which does nothing)."""
    return [c for c in callbacks if not isinstance(c, LockNote)]


@pytest.fixture
def project(user):
    return ProjectFactory(owner=user, status=Project.Status.COMPLETE)


@pytest.fixture
def mara(project):
    return CharacterFactory(project=project, name="Mara", status=APPROVED)


@pytest.fixture
def ines(project):
    return CharacterFactory(project=project, name="Ines", status=APPROVED)


@pytest.fixture
def scene(project, mara):
    scene = SceneFactory(project=project, title="The storm", order=1)
    scene.characters.add(mara)
    return scene


@pytest.fixture
def frame(scene):
    frame = FrameFactory(scene=scene, order=1, image="projects/1/frame.png")
    VideoFactory(frame=frame)
    return frame


def published(project, event_type: str) -> list[dict]:
    eventstore.flush()  # the replay log is written in batches (a task's or a request's end)
    stored = Event.objects.filter(channel=f"project-{project.pk}", type=event_type)
    return [json.loads(json.loads(e.data)) for e in stored]  # the storage encodes twice


# --- scenes --------------------------------------------------------------------------------


def test_it_edits_every_text_field_of_a_scene(api, scene):
    edit = {
        "title": "The calm",
        "concise_plot": "The sea goes quiet.",
        "detailed_plot": "Mara waits on the rocks as the storm passes.",
        "dialogue": "MARA: Is it over?",
        "location": "The lighthouse",
        "mood": "uneasy",
    }
    response = api.patch(f"/api/scenes/{scene.pk}", edit, format="json")
    assert response.status_code == 200
    body = response.json()
    assert {k: body[k] for k in edit} == edit
    assert set(body) == {
        "id",
        "order",
        "status",
        "character_ids",
        "object_ids",
        "cast_fallback",
        "frames",
        *edit,
    }
    scene.refresh_from_db()
    assert {k: getattr(scene, k) for k in edit} == edit


def test_it_answers_the_scene_as_in_the_project_json(api, project, scene, frame):
    response = api.patch(f"/api/scenes/{scene.pk}", {"mood": "grim"}, format="json")
    in_project = api.get(f"/api/projects/{project.pk}").json()["scenes"][0]
    assert response.json() == in_project


def test_it_sets_a_scenes_cast(api, scene, mara, ines):
    response = api.patch(f"/api/scenes/{scene.pk}", {"character_ids": [ines.pk]}, format="json")
    assert response.status_code == 200
    assert response.json()["character_ids"] == [ines.pk]
    assert list(scene.characters.all()) == [ines]


def test_a_scene_may_have_no_characters(api, scene):
    response = api.patch(f"/api/scenes/{scene.pk}", {"character_ids": []}, format="json")
    assert response.status_code == 200
    assert not scene.characters.exists()


def test_a_character_of_another_project_is_refused(api, user, scene, mara):
    stranger = CharacterFactory(project=ProjectFactory(owner=user), status=APPROVED)
    body = {"character_ids": [mara.pk, stranger.pk], "title": "Not saved"}
    response = api.patch(f"/api/scenes/{scene.pk}", body, format="json")
    assert response.status_code == 400
    assert str(stranger.pk) in response.json()["character_ids"][0]
    scene.refresh_from_db()
    assert scene.title == "The storm"
    assert list(scene.characters.all()) == [mara]


@pytest.mark.parametrize("status", ["rejected", "pending", "generating", "failed"])
def test_a_character_that_is_not_approved_is_refused(api, project, scene, mara, status):
    doubtful = CharacterFactory(project=project, name="Tomas", status=status)
    body = {"character_ids": [doubtful.pk]}
    response = api.patch(f"/api/scenes/{scene.pk}", body, format="json")
    assert response.status_code == 400
    assert f"Tomas ({status})" in response.json()["character_ids"][0]
    assert list(scene.characters.all()) == [mara]


@pytest.mark.parametrize(
    "body",
    [
        {"status": "ready"},
        {"order": 4},
        {"frames": []},
        {"plot": "x"},
        {"title": 5},
        {"title": "x" * 201},
        {"mood": "x" * 101},
        {"character_ids": "1"},
        {"character_ids": [True]},
        {"character_ids": [0]},
        {"character_ids": [2**63]},
        ["title"],
    ],
)
def test_bad_scene_input_is_400(api, scene, body):
    response = api.patch(f"/api/scenes/{scene.pk}", body, format="json")
    assert response.status_code == 400, response.content
    scene.refresh_from_db()
    assert (scene.title, scene.status, scene.order) == ("The storm", "ready", 1)


@pytest.mark.parametrize("status", ["queued", "running", "waiting"])
@pytest.mark.parametrize("kind", ["frames of the scene", "scenes of the project"])
def test_a_scene_is_not_edited_while_a_job_works_on_it(api, project, scene, status, kind):
    if kind == "frames of the scene":
        JobFactory(
            project=project,
            type=Job.Type.FRAMES,
            target_type=Job.TargetType.SCENE,
            target_id=scene.pk,
            status=status,
        )
    else:
        JobFactory(project=project, type=Job.Type.SCENES, status=status)
    response = api.patch(f"/api/scenes/{scene.pk}", {"title": "Too late"}, format="json")
    assert response.status_code == 409
    assert status in response.json()["detail"]
    scene.refresh_from_db()
    assert scene.title == "The storm"


def test_a_scene_is_edited_while_other_work_goes_on(api, project, scene, frame):
    other = SceneFactory(project=project, order=2)
    frames_of_other = {"type": Job.Type.FRAMES, "target_type": "scene", "target_id": other.pk}
    JobFactory(project=project, status="running", **frames_of_other)
    JobFactory(project=project, status="failed", type=Job.Type.FRAMES, target_id=scene.pk)
    JobFactory(project=project, status="succeeded", type=Job.Type.SCENES)
    clip = {"type": Job.Type.VIDEOS, "target_type": "frame", "target_id": frame.pk}
    JobFactory(project=project, status="waiting", **clip)
    response = api.patch(f"/api/scenes/{scene.pk}", {"title": "Edited"}, format="json")
    assert response.status_code == 200


def test_editing_a_scene_deletes_nothing(api, scene, frame):
    api.patch(f"/api/scenes/{scene.pk}", {"detailed_plot": "Rewritten"}, format="json")
    frame.refresh_from_db()
    assert frame.image == "projects/1/frame.png"
    assert frame.video.status == "ready"


def test_a_scene_edit_is_published(api, project, scene, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        api.patch(f"/api/scenes/{scene.pk}", {"title": "The calm"}, format="json")
    assert [e["title"] for e in published(project, "scene")] == ["The calm"]


def test_a_cast_change_alone_is_published(
    api, project, scene, ines, django_capture_on_commit_callbacks
):
    before = scene.updated_at
    with django_capture_on_commit_callbacks(execute=True):
        api.patch(f"/api/scenes/{scene.pk}", {"character_ids": [ines.pk]}, format="json")
    assert len(published(project, "scene")) == 1
    scene.refresh_from_db()
    assert scene.updated_at > before


def test_a_no_op_scene_edit_changes_and_publishes_nothing(
    api, project, scene, mara, django_capture_on_commit_callbacks
):
    before = scene.updated_at
    same = {"title": scene.title, "mood": scene.mood, "character_ids": [mara.pk, mara.pk]}
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = api.patch(f"/api/scenes/{scene.pk}", same, format="json")
    assert response.status_code == 200
    assert work_after_commit(callbacks) == []
    assert published(project, "scene") == []
    scene.refresh_from_db()
    assert scene.updated_at == before


def test_another_users_scene_is_404_and_unchanged(other_api, scene):
    response = other_api.patch(f"/api/scenes/{scene.pk}", {"title": "Mine"}, format="json")
    assert response.status_code == 404
    scene.refresh_from_db()
    assert scene.title == "The storm"


def test_both_slash_forms_edit_a_scene(api, scene):
    assert api.patch(f"/api/scenes/{scene.pk}/", {"mood": "a"}, format="json").status_code == 200
    assert api.patch(f"/api/scenes/{scene.pk}", {"mood": "b"}, format="json").status_code == 200


# --- frames --------------------------------------------------------------------------------


def test_it_edits_every_field_of_a_frame(api, frame, mara):
    edit = {
        "prompt": "Mara climbs the stairs",
        "camera": "low angle, slow push in",
        "dialogue": "Nearly there.",
        "speaker_id": mara.pk,
    }
    response = api.patch(f"/api/frames/{frame.pk}", edit, format="json")
    assert response.status_code == 200
    body = response.json()
    assert {k: body[k] for k in edit} == edit
    frame.refresh_from_db()
    assert (frame.prompt, frame.camera, frame.dialogue) == (
        edit["prompt"],
        edit["camera"],
        edit["dialogue"],
    )
    assert frame.speaker == mara


def test_it_answers_the_frame_as_in_the_project_json(api, project, frame):
    response = api.patch(f"/api/frames/{frame.pk}", {"camera": "wide"}, format="json")
    in_project = api.get(f"/api/projects/{project.pk}").json()["scenes"][0]["frames"][0]
    assert response.json() == in_project
    assert in_project["speaker_id"] is None


def test_a_null_speaker_is_the_narrator(api, frame, mara):
    frame.speaker = mara
    frame.save()
    response = api.patch(f"/api/frames/{frame.pk}", {"speaker_id": None}, format="json")
    assert response.status_code == 200
    assert response.json()["speaker_id"] is None
    frame.refresh_from_db()
    assert frame.speaker is None


def test_a_speaker_who_is_not_in_the_scene_is_refused(api, user, frame, ines):
    stranger = CharacterFactory(project=ProjectFactory(owner=user), status=APPROVED)
    for speaker in (ines, stranger):  # ines is of the project, not of this scene
        body = {"speaker_id": speaker.pk, "prompt": "Not saved"}
        response = api.patch(f"/api/frames/{frame.pk}", body, format="json")
        assert response.status_code == 400
        assert "speaker" in response.json()["speaker_id"][0]
    frame.refresh_from_db()
    assert (frame.speaker, frame.prompt) == (None, "Waves crash on the rocks")


def test_a_speaker_of_the_scene_who_is_not_approved_is_refused(api, project, scene, frame):
    rejected = CharacterFactory(project=project, status=Character.Status.REJECTED)
    scene.characters.add(rejected)
    response = api.patch(f"/api/frames/{frame.pk}", {"speaker_id": rejected.pk}, format="json")
    assert response.status_code == 400


@pytest.mark.parametrize(
    "body",
    [
        {"status": "ready"},
        {"duration": 3},
        {"image_url": "x"},
        {"speaker": 1},
        {"prompt": None},
        {"camera": "x" * 201},
        {"speaker_id": "1"},
        {"speaker_id": 1.5},
        {"speaker_id": 2**63},
    ],
)
def test_bad_frame_input_is_400(api, frame, body):
    response = api.patch(f"/api/frames/{frame.pk}", body, format="json")
    assert response.status_code == 400, response.content
    frame.refresh_from_db()
    assert (frame.prompt, frame.status, frame.speaker) == (
        "Waves crash on the rocks",
        "ready",
        None,
    )


@pytest.mark.parametrize("status", ["queued", "running", "waiting"])
@pytest.mark.parametrize(
    "job_type,target",
    [
        (Job.Type.FRAMES, "scene"),
        (Job.Type.VIDEOS, "frame"),
        ("keyframe-generation", "frame"),
    ],
)
def test_a_frame_is_not_edited_while_a_job_works_on_it(
    api, project, frame, status, job_type, target
):
    target_id = frame.scene_id if target == "scene" else frame.pk
    JobFactory(
        project=project, type=job_type, target_type=target, target_id=target_id, status=status
    )
    response = api.patch(f"/api/frames/{frame.pk}", {"prompt": "Too late"}, format="json")
    assert response.status_code == 409
    assert job_type in response.json()["detail"]
    frame.refresh_from_db()
    assert frame.prompt == "Waves crash on the rocks"


def test_a_frame_is_edited_while_other_work_goes_on(api, project, scene, frame):
    neighbour = FrameFactory(scene=scene, order=2)
    other_scene = SceneFactory(project=project, order=2)
    JobFactory(
        project=project,
        status="running",
        type=Job.Type.VIDEOS,
        target_type="frame",
        target_id=neighbour.pk,
    )
    JobFactory(
        project=project,
        status="queued",
        type=Job.Type.FRAMES,
        target_type="scene",
        target_id=other_scene.pk,
    )
    JobFactory(
        project=project,
        status="cancelled",
        type=Job.Type.VIDEOS,
        target_type="frame",
        target_id=frame.pk,
    )
    response = api.patch(f"/api/frames/{frame.pk}", {"prompt": "Edited"}, format="json")
    assert response.status_code == 200


def test_editing_a_frame_deletes_nothing(api, frame):
    api.patch(f"/api/frames/{frame.pk}", {"prompt": "Another shot"}, format="json")
    frame.refresh_from_db()
    assert frame.image == "projects/1/frame.png"
    assert frame.video.status == "ready"


def test_a_frame_edit_is_published(api, project, frame, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        api.patch(f"/api/frames/{frame.pk}", {"prompt": "Another shot"}, format="json")
    assert [e["prompt"] for e in published(project, "frame")] == ["Another shot"]


def test_a_no_op_frame_edit_changes_and_publishes_nothing(
    api, project, frame, django_capture_on_commit_callbacks
):
    before = frame.updated_at
    same = {"prompt": frame.prompt, "camera": frame.camera, "speaker_id": None}
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = api.patch(f"/api/frames/{frame.pk}", same, format="json")
    assert response.status_code == 200
    assert work_after_commit(callbacks) == []
    assert published(project, "frame") == []
    frame.refresh_from_db()
    assert frame.updated_at == before


def test_another_users_frame_is_404_and_unchanged(other_api, frame):
    response = other_api.patch(f"/api/frames/{frame.pk}", {"prompt": "Mine"}, format="json")
    assert response.status_code == 404
    frame.refresh_from_db()
    assert frame.prompt == "Waves crash on the rocks"


def test_both_slash_forms_edit_a_frame(api, frame):
    assert api.patch(f"/api/frames/{frame.pk}/", {"camera": "a"}, format="json").status_code == 200
    assert api.patch(f"/api/frames/{frame.pk}", {"camera": "b"}, format="json").status_code == 200


def test_the_edits_are_in_the_openapi_schema(api):
    paths = api.get("/api/schema?format=json").json()["paths"]
    assert "patch" in paths["/api/scenes/{scene_id}"]
    assert "patch" in paths["/api/frames/{frame_id}"]
