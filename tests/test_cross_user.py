"""User B walks every /api/ endpoint with user A's ids: always 404, and nothing of A's changes."""

import re

import pytest
from django.forms.models import model_to_dict
from drf_spectacular.generators import SchemaGenerator

from director.models import AgentRun, DirectorSession, DirectorTurn
from generation.models import GenerationJob
from projects.models import Character, Frame, Project, ProjectObject, Scene, Take, Video
from tests.factories import (
    CharacterFactory,
    FrameFactory,
    JobFactory,
    ProjectFactory,
    SceneFactory,
    VideoFactory,
)

pytestmark = pytest.mark.django_db

# Endpoints that name objects in the body rather than the path: the bodies B sends.
BODY_IDS = {
    ("post", "/api/jobs/character-generation"): [["project_id"]],
    ("post", "/api/jobs/scene-generation"): [["project_id"]],
    ("post", "/api/jobs/frame-generation"): [["project_id"], ["scene_id"]],
    ("post", "/api/jobs/video-generation"): [["project_id"], ["frame_id"]],
    ("post", "/api/jobs/video-stitching"): [["project_id"]],
    ("post", "/api/jobs/export"): [["project_id"]],
    ("post", "/api/jobs/portrait-generation"): [["character_id"]],
    ("post", "/api/jobs/keyframe-generation"): [["frame_id"]],
    ("post", "/api/jobs/image-edit"): [["character_id"], ["frame_id"], ["object_id"]],
    ("post", "/api/jobs/reference-generation"): [["object_id"]],
    ("post", "/api/jobs/audio-generation"): [["project_id"], ["frame_id"]],
    ("post", "/api/director/stream"): [["project_id"], ["session_id"]],
    ("post", "/api/director/confirm"): [["session_id"]],
}
# What else those bodies need to be valid, so that only the ids can be refused.
BODY_EXTRA = {
    ("post", "/api/jobs/image-edit"): {"instruction": "paint it blue"},
    ("post", "/api/director/stream"): {"message": "approve all", "page": "characters"},
    ("post", "/api/director/confirm"): {"token": "a-token-of-that-session"},
    ("patch", "/api/scenes/{scene_id}"): {"title": "B was here", "character_ids": []},
    ("post", "/api/projects/{project_id}/objects"): {"name": "B's lamp"},
    ("patch", "/api/objects/{object_id}"): {"name": "B was here"},
    ("patch", "/api/frames/{frame_id}"): {"prompt": "B was here", "speaker_id": None},
    ("post", "/api/projects/{project_id}/agent-runs"): {"goal": "B's film on A's project"},
    ("post", "/api/agent-runs/{run_id}/decide"): {"decision": "approve"},
}
# Endpoints that never take an id and are safe for anyone (checked elsewhere).
PUBLIC = {("post", "/api/auth/token")}
# Collection endpoints: B gets a list that must not contain A's objects.
COLLECTIONS = {
    ("get", "/api/projects"),
    ("post", "/api/projects"),
    ("get", "/api/jobs"),
    ("get", "/api/queues/status"),
    ("get", "/api/director/pages"),
    ("get", "/api/rates"),  # the same public price list for everyone
    ("get", "/api/voices"),  # the speech provider's voices, the same for everyone
    ("get", "/api/voices/{voice_id}/sample"),
}


@pytest.fixture
def a_world(user):
    project = ProjectFactory(owner=user, status="awaiting_approval")
    character = CharacterFactory(project=project)
    scene = SceneFactory(project=project)
    scene.characters.add(character)
    frame = FrameFactory(scene=scene, speaker=character)
    VideoFactory(frame=frame)
    take = Take.objects.create(project=project, kind="keyframe", frame=frame, file="x.png")
    job = JobFactory(project=project, status="failed")
    session = DirectorSession.objects.create(user=user, project=project, page="characters")
    obj = ProjectObject.objects.create(project=project, name="Lamp", image="x.png")
    scene.project_objects.add(obj)
    run = AgentRun.objects.create(
        project=project,
        user=user,
        goal="A film",
        status="awaiting_decision",
        checkpoint_kind="cast",
    )
    return {
        "run_id": run.pk,
        "object_id": obj.pk,
        "project_id": project.pk,
        "character_id": character.pk,
        "scene_id": scene.pk,
        "frame_id": frame.pk,
        "job_id": job.pk,
        "session_id": session.pk,
        "take_id": take.pk,
    }


def snapshot() -> list:
    rows = []
    models = (Project, Character, Scene, Frame, Video, Take, GenerationJob, DirectorSession)
    for model in (*models, ProjectObject, AgentRun):
        rows.extend(
            model_to_dict(obj) | {"updated": str(getattr(obj, "updated_at", ""))}
            for obj in model.objects.order_by("pk")
        )
    return rows


def api_operations() -> list[tuple[str, str]]:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    return [
        (method, path)
        for path, item in schema["paths"].items()
        if path.startswith("/api/")
        for method in item
    ]


def test_every_endpoint_is_covered_by_this_walk():
    for method, path in api_operations():
        named_by_path = "{" in path
        assert named_by_path or (method, path) in BODY_IDS.keys() | PUBLIC | COLLECTIONS, (
            f"{method.upper()} {path}: add it to the cross-user walk"
        )


def test_another_user_gets_404_everywhere_and_changes_nothing(a_world, other_api):
    before = snapshot()
    walked = 0
    for method, path in api_operations():
        if (method, path) in PUBLIC | COLLECTIONS:
            continue
        url = re.sub(r"\{(\w+)\}", lambda m: str(a_world[m.group(1)]), path)
        extra = BODY_EXTRA.get((method, path), {})
        bodies = [
            {k: a_world[k] for k in keys} | extra for keys in BODY_IDS.get((method, path), [[]])
        ]
        for body, variant in [(b, u) for b in bodies for u in (url, f"{url}/")]:
            response = getattr(other_api, method)(variant, body or {"reason": "x"}, format="json")
            assert response.status_code == 404, f"{method.upper()} {variant}: {response.content}"
            assert set(response.json()) == {"detail"}
        walked += 1
    assert walked >= 6
    assert snapshot() == before


def test_collections_never_show_another_users_objects(a_world, other_api):
    listed = other_api.get("/api/projects").json()
    assert listed["count"] == 0
    assert other_api.get("/api/jobs").json()["count"] == 0
    assert other_api.get(f"/api/jobs?project_id={a_world['project_id']}").json()["count"] == 0
    created = other_api.post("/api/projects", {"title": "Mine"}, format="json").json()
    assert created["id"] != a_world["project_id"]


def test_ids_that_name_nothing_are_404_too(api):
    assert api.get("/api/projects/999999").status_code == 404
    assert api.patch("/api/characters/999999", {}, format="json").status_code == 404
    assert api.post("/api/characters/999999/approve").status_code == 404


def test_another_users_event_stream_is_404_before_streaming(a_world, other_api):
    response = other_api.get(f"/api/events/projects/{a_world['project_id']}")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}


def test_another_users_director_session_events_are_404_before_streaming(a_world, other_api):
    response = other_api.get(f"/api/director/sessions/{a_world['session_id']}/events")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}


def test_no_director_turn_starts_on_another_users_objects(a_world, other_api):
    for key in ("project_id", "session_id"):
        body = {"message": "approve all", "page": "characters", key: a_world[key]}
        assert other_api.post("/api/director/stream", body, format="json").status_code == 404
    assert not DirectorTurn.objects.exists()


def test_the_walk_includes_the_storyboard_approval():
    assert ("post", "/api/projects/{project_id}/storyboard/approve") in api_operations()


def test_the_walk_includes_both_exports():
    operations = api_operations()
    assert ("get", "/api/projects/{project_id}/export") in operations
    assert ("post", "/api/jobs/export") in operations
