"""A film from an idea with a real rqworker subprocess, real PostgreSQL and Redis, the offline
provider and real ffmpeg; then the final film fetched like a browser would."""

import pytest
from django.test import Client

from filmstudio.support import wait_for
from media import ffmpeg
from projects.models import Project
from tests.pipeline import Workers, subprocess_env

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def status_of(pid: int) -> str:
    return Project.objects.get(pk=pid).status


def test_a_real_worker_takes_a_project_from_idea_to_film(api, settings, tmp_path):
    body = {"title": "Storm", "num_scenes": 2, "frames_per_scene": 2, "clip_seconds": 2}
    pid = api.post("/api/projects", body, format="json").json()["id"]
    with Workers(subprocess_env(settings)):
        job = api.post(
            "/api/jobs/character-generation", {"project_id": pid, "count": 2}, format="json"
        ).json()
        wait_for(lambda: status_of(pid) == "awaiting_approval", timeout=60)
        assert api.get(f"/api/jobs/{job['id']}/status").json()["status"] == "succeeded"
        for character in api.get(f"/api/projects/{pid}/characters").json():
            assert character["status"] == "pending" and character["image_url"]
            api.post(f"/api/characters/{character['id']}/approve")
        wait_for(lambda: status_of(pid) in {"complete", "failed"}, timeout=120)

    project = api.get(f"/api/projects/{pid}").json()
    assert project["status"] == "complete", project
    assert project["progress"] == 100
    # fetched anonymously through its signed URL, as a <video> element would
    response = Client().get(project["final_video_url"])
    assert response.status_code == 200
    assert response["Content-Type"] == "video/mp4"
    film = tmp_path / "film.mp4"
    film.write_bytes(b"".join(response.streaming_content))
    info = ffmpeg.probe(film)
    clips = 2 * 2
    assert abs(info.duration - clips * 2) <= 0.2 * clips
    assert info.video_codec == "h264" and info.has_audio
    ranged = Client().get(project["final_video_url"], headers={"Range": "bytes=0-99"})
    assert ranged.status_code == 206 and len(b"".join(ranged.streaming_content)) == 100
