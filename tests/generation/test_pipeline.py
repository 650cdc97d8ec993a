import pytest
from django.core.files.storage import default_storage

from generation.models import GenerationJob
from media import ffmpeg
from projects.models import Project
from tests.pipeline import drain

pytestmark = pytest.mark.django_db(transaction=True)


def make_project(api, **fields) -> int:
    body = {"title": "The Keeper", "logline": "A keeper befriends a storm", **fields}
    response = api.post("/api/projects", body, format="json")
    assert response.status_code == 201, response.content
    return response.json()["id"]


def test_a_project_goes_from_idea_to_film(api):
    pid = make_project(api, num_scenes=2, frames_per_scene=2, clip_seconds=2)
    response = api.post(
        "/api/jobs/character-generation", {"project_id": pid, "count": 2}, format="json"
    )
    assert response.status_code == 202, response.content
    drain()

    project = api.get(f"/api/projects/{pid}").json()
    assert project["status"] == "awaiting_approval"
    assert [c["status"] for c in project["characters"]] == ["pending", "pending"]
    assert all(c["image_url"] for c in project["characters"])
    assert project["scenes"] == []  # the gate holds

    first, second = project["characters"]
    api.post(f"/api/characters/{first['id']}/approve")
    assert not GenerationJob.objects.filter(type="scene-generation").exists()
    api.post(f"/api/characters/{second['id']}/reject", {"reason": "no"}, format="json")
    drain()

    project = api.get(f"/api/projects/{pid}").json()
    assert project["status"] == "complete", GenerationJob.objects.values_list(
        "type", "status", "error"
    )
    assert project["progress"] == 100
    assert len(project["scenes"]) == 2
    assert all(s["character_ids"] == [first["id"]] for s in project["scenes"])
    frames = [f for s in project["scenes"] for f in s["frames"]]
    assert len(frames) == 4
    assert all(f["video"]["status"] == "ready" for f in frames)
    assert GenerationJob.objects.filter(type="video-stitching").count() == 1

    film = Project.objects.get(pk=pid).final_video
    info = ffmpeg.probe(default_storage.path(film))
    assert abs(info.duration - 4 * 2) <= 0.2 * 4
    assert (info.width, info.height) == (320, 180)
    assert project["final_duration"] == pytest.approx(info.duration, abs=0.01)
    assert project["final_video_url"].startswith(f"/blob/{pid}/final/")
