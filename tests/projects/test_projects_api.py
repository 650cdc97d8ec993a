import pytest
from rest_framework.test import APIClient

from generation.models import GenerationJob
from projects.models import Frame, Project, Take
from tests.factories import (
    CharacterFactory,
    FrameFactory,
    JobFactory,
    ProjectFactory,
    SceneFactory,
    VideoFactory,
)

pytestmark = pytest.mark.django_db


def test_it_creates_a_project_with_defaults(api, user):
    response = api.post("/api/projects", {"title": "Storm"}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["title"] == "Storm"
    assert body["num_scenes"] == 3
    assert body["frames_per_scene"] == 3
    assert body["clip_seconds"] == 5
    assert body["aspect_ratio"] == "16:9"
    assert body["status"] == "draft"
    assert body["characters"] == [] and body["scenes"] == []
    assert Project.objects.get(pk=body["id"]).owner == user


def test_it_answers_with_and_without_trailing_slash(api, user):
    assert api.post("/api/projects/", {"title": "A"}, format="json").status_code == 201
    assert api.get("/api/projects/").status_code == 200
    project = ProjectFactory(owner=user)
    assert api.get(f"/api/projects/{project.pk}/").status_code == 200
    assert api.get(f"/api/projects/{project.pk}").status_code == 200


def test_anonymous_gets_401_not_403():
    response = APIClient().get("/api/projects")
    assert response.status_code == 401
    assert "detail" in response.json()


def test_it_lists_only_my_projects_newest_first_paginated(api, user, other_user):
    first = ProjectFactory(owner=user)
    second = ProjectFactory(owner=user)
    ProjectFactory(owner=other_user)
    body = api.get("/api/projects").json()
    assert body["count"] == 2
    assert [p["id"] for p in body["results"]] == [second.pk, first.pk]
    assert "characters" not in body["results"][0]
    page = api.get("/api/projects?page_size=1&page=2").json()
    assert [p["id"] for p in page["results"]] == [first.pk]
    assert page["previous"] is not None and page["next"] is None


@pytest.mark.parametrize(
    "query",
    ["page=0", "page=abc", "page=9", "page_size=0", "page_size=201", "colour=red", "status=nope"],
)
def test_bad_list_queries_are_400_with_a_message(api, user, query):
    ProjectFactory(owner=user)
    response = api.get(f"/api/projects?{query}")
    assert response.status_code == 400
    assert response.json()


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({}, "title"),
        ({"title": ""}, "title"),
        ({"title": "x" * 201}, "title"),
        ({"title": 123}, "title"),
        ({"title": "A", "num_scenes": 0}, "num_scenes"),
        ({"title": "A", "num_scenes": 31}, "num_scenes"),
        ({"title": "A", "num_scenes": "3"}, "num_scenes"),
        ({"title": "A", "num_scenes": True}, "num_scenes"),
        ({"title": "A", "frames_per_scene": 13}, "frames_per_scene"),
        ({"title": "A", "clip_seconds": 1}, "clip_seconds"),
        ({"title": "A", "clip_seconds": 11}, "clip_seconds"),
        ({"title": "A", "aspect_ratio": "4:3"}, "aspect_ratio"),
        ({"title": "A", "status": "complete"}, "status"),
        ({"title": "A", "logline": None}, "logline"),
        ({"title": "A", "colour": "red"}, "colour"),
    ],
)
def test_invalid_project_input_is_400_and_creates_nothing(api, payload, field):
    response = api.post("/api/projects", payload, format="json")
    assert response.status_code == 400
    assert field in response.json()
    assert Project.objects.count() == 0


def test_malformed_json_is_400(api):
    response = api.post("/api/projects", "{not json", content_type="application/json")
    assert response.status_code == 400
    assert "detail" in response.json()


def test_a_json_array_body_is_400(api):
    response = api.post("/api/projects", [1, 2], format="json")
    assert response.status_code == 400


def test_an_oversized_body_is_a_json_413(api, settings):
    response = api.post(
        "/api/projects", {"title": "A", "synopsis": "x" * (1024 * 1024)}, format="json"
    )
    assert response.status_code == 413
    assert "limit" in response.json()["detail"]
    assert Project.objects.count() == 0


def test_it_patches_writable_fields(api, user):
    project = ProjectFactory(owner=user)
    response = api.patch(
        f"/api/projects/{project.pk}", {"title": "New", "num_scenes": 5}, format="json"
    )
    assert response.status_code == 200
    project.refresh_from_db()
    assert (project.title, project.num_scenes) == ("New", 5)


def test_put_is_not_allowed(api, user):
    project = ProjectFactory(owner=user)
    assert api.put(f"/api/projects/{project.pk}", {"title": "x"}, format="json").status_code == 405


@pytest.mark.parametrize("status", ["queued", "running", "waiting"])
def test_changing_the_shape_during_an_active_job_is_409(api, user, status):
    project = ProjectFactory(owner=user)
    JobFactory(project=project, status=status)
    response = api.patch(f"/api/projects/{project.pk}", {"clip_seconds": 7}, format="json")
    assert response.status_code == 409
    assert "clip_seconds" in response.json()["detail"]
    project.refresh_from_db()
    assert project.clip_seconds == 5
    # Non-shape fields stay editable.
    assert (
        api.patch(f"/api/projects/{project.pk}", {"title": "T"}, format="json").status_code == 200
    )


def test_delete_removes_the_rows_and_cancels_jobs(api, user):
    project = ProjectFactory(owner=user)
    scene = SceneFactory(project=project)
    VideoFactory(frame=FrameFactory(scene=scene))
    JobFactory(project=project)
    assert api.delete(f"/api/projects/{project.pk}").status_code == 204
    assert not Project.objects.filter(pk=project.pk).exists()
    assert GenerationJob.objects.count() == 0
    assert api.get(f"/api/projects/{project.pk}").status_code == 404


def test_detail_nests_the_whole_hierarchy(api, user):
    project = ProjectFactory(owner=user)
    hero = CharacterFactory(project=project, status="approved")
    scene = SceneFactory(project=project, order=1)
    scene.characters.add(hero)
    frame = FrameFactory(scene=scene, order=1)
    video = VideoFactory(frame=frame)
    FrameFactory(scene=scene, order=2)
    body = api.get(f"/api/projects/{project.pk}").json()
    assert [c["id"] for c in body["characters"]] == [hero.pk]
    assert body["scenes"][0]["character_ids"] == [hero.pk]
    frames = body["scenes"][0]["frames"]
    assert [f["order"] for f in frames] == [1, 2]
    assert frames[0]["video"]["id"] == video.pk
    assert frames[1]["video"] is None


def _build(project, scenes: int, frames: int, characters: int):
    cast = [CharacterFactory(project=project, status="approved") for _ in range(characters)]
    for s in range(scenes):
        scene = SceneFactory(project=project, order=s + 1)
        scene.characters.add(*cast)
        for f in range(frames):
            frame = FrameFactory(scene=scene, order=f + 1)
            take = Take.objects.create(project=project, kind="keyframe", frame=frame, file="k.png")
            Frame.objects.filter(pk=frame.pk).update(keyframe_take=take)
            VideoFactory(frame=frame)


@pytest.mark.parametrize(("scenes", "frames", "characters"), [(1, 1, 1), (10, 12, 8)])
def test_detail_uses_a_constant_number_of_queries(
    api, user, django_assert_max_num_queries, scenes, frames, characters
):
    project = ProjectFactory(owner=user)
    _build(project, scenes, frames, characters)
    # token lookup + project + characters + scenes + scene characters + frames/videos
    # + who is in each shot + the current takes' inputs + the take counts (staleness)
    # + the project's objects + each scene's objects
    with django_assert_max_num_queries(11):
        response = api.get(f"/api/projects/{project.pk}")
    assert response.status_code == 200
    assert sum(len(s["frames"]) for s in response.json()["scenes"]) == scenes * frames


def test_unknown_api_paths_answer_json_404(api):
    response = api.get("/api/nothing-here")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}
