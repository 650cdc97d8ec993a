"""Takes under cancels, retries, edits during a provider call and lost deliveries: the review's
findings, each reproduced (offline, real services, RQ and PostgreSQL)."""

import threading
from datetime import timedelta

import django_rq
import pytest
from django.core.files.storage import default_storage
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from generation import services, watchdog
from generation.models import GenerationJob
from generation.providers import local
from generation.steps import frames as frames_step
from projects.models import Character, Frame, Project, Take, Video
from projects.takes import project_stale_units
from tests.factories import ProjectFactory
from tests.pipeline import drain

pytestmark = pytest.mark.django_db(transaction=True)
Job = GenerationJob


@pytest.fixture
def film(api, user):
    """A finished offline film of one scene and two shots."""
    project = ProjectFactory(owner=user, num_scenes=1, frames_per_scene=2, clip_seconds=2)
    api.post(
        "/api/jobs/character-generation", {"project_id": project.pk, "count": 1}, format="json"
    )
    drain()
    for character in project.characters.all():
        api.post(f"/api/characters/{character.pk}/approve")
    drain()
    project.refresh_from_db()
    assert project.status == Project.Status.COMPLETE
    return project


def first_frame(project) -> Frame:
    return Frame.objects.filter(scene__project=project).order_by("order").first()


class DuringTheDraw:
    """An image model that takes its time; `meanwhile` runs while it draws."""

    def __init__(self, meanwhile):
        self.meanwhile, self.inner = meanwhile, local.LocalImage()
        self.name, self.model = self.inner.name, ""

    def generate_image(self, **kwargs):
        self.meanwhile()
        return self.inner.generate_image(**kwargs)


def test_an_edit_while_the_keyframe_is_drawn_leaves_the_new_take_stale(api, film, monkeypatch):
    frame = first_frame(film)
    edit = lambda: Frame.objects.filter(pk=frame.pk).update(prompt="Edited meanwhile")  # noqa: E731
    monkeypatch.setattr(frames_step, "image_provider", lambda: DuringTheDraw(edit))
    api.post("/api/jobs/keyframe-generation", {"frame_id": frame.pk}, format="json")
    drain()
    frame.refresh_from_db()
    assert frame.keyframe_take.inputs["frame"]["prompt"] != "Edited meanwhile"
    stale = [u for u in project_stale_units(film) if u["type"] == "keyframe"]
    assert stale == [{"type": "keyframe", "id": frame.pk, "reasons": ["frame prompt edited"]}]


def test_a_keyframe_redo_cancelled_while_drawing_stores_nothing(api, film, monkeypatch):
    frame = first_frame(film)
    current, files = frame.keyframe_take_id, set(Take.objects.values_list("file", flat=True))

    def cancel():
        services.job_cancel(job=Job.objects.get(type=Job.Type.KEYFRAME, status="running"))

    monkeypatch.setattr(frames_step, "image_provider", lambda: DuringTheDraw(cancel))
    api.post("/api/jobs/keyframe-generation", {"frame_id": frame.pk}, format="json")
    drain()
    frame.refresh_from_db()
    assert frame.keyframe_take_id == current
    assert set(Take.objects.values_list("file", flat=True)) == files
    film.refresh_from_db()
    assert film.status == Project.Status.COMPLETE  # a unit redo cancelled: the film stays


def test_a_child_whose_unit_vanished_ends_and_its_parent_settles(api, film):
    container = services.start_video_generation(project=film)
    Frame.objects.filter(pk=first_frame(film).pk).delete()
    drain()
    container.refresh_from_db()
    assert container.status not in Job.ACTIVE  # it used to stay running for ever
    assert container.children.filter(status=Job.Status.CANCELLED).count() == 1


def test_a_failed_clip_redo_keeps_the_current_clip_and_retrying_it_does_not_recut(
    api, film, monkeypatch
):
    frame = first_frame(film)
    stitches = Job.objects.filter(type=Job.Type.STITCH).count()

    def refuse(self, **kwargs):
        raise local.PermanentProviderError("the model refused")

    monkeypatch.setattr(local.LocalVideo, "submit", refuse)
    api.post("/api/jobs/video-generation", {"frame_id": frame.pk}, format="json")
    drain()
    job = Job.objects.filter(type=Job.Type.VIDEOS).latest("pk")
    assert job.status == Job.Status.FAILED
    video = Video.objects.get(frame=frame)
    assert video.status == Video.Status.READY and video.take_id  # still the current clip
    monkeypatch.undo()
    assert api.post(f"/api/jobs/{job.pk}/retry").status_code == 202
    film.refresh_from_db()
    assert film.status == Project.Status.COMPLETE
    drain()
    assert Job.objects.filter(type=Job.Type.STITCH).count() == stitches  # stale, not re-cut
    assert [u["type"] for u in project_stale_units(film)] == ["film"]


def test_listing_takes_writes_nothing(api, film):
    frame = first_frame(film)
    Video.objects.filter(frame=frame).delete()  # a frame whose clip row went (new shot list)
    before = Video.objects.count()
    assert api.get(f"/api/frames/{frame.pk}/takes").status_code == 200
    assert Video.objects.count() == before


def test_a_failed_refresh_retried_finishes(api, film, monkeypatch):
    frame = first_frame(film)
    Frame.objects.filter(pk=frame.pk).update(prompt="Night now")

    def refuse(self, **kwargs):
        raise local.PermanentProviderError("the image model is down")

    monkeypatch.setattr(local.LocalImage, "generate_image", refuse)
    refresh = api.post(f"/api/projects/{film.pk}/refresh", {}, format="json").json()
    drain()
    job = Job.objects.get(pk=refresh["id"])
    assert job.status == Job.Status.FAILED
    monkeypatch.undo()
    assert api.post(f"/api/jobs/{job.pk}/retry").status_code == 202
    drain()
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED, job.error
    film.refresh_from_db()
    assert project_stale_units(film) == []


def test_the_watchdog_re_enqueues_a_refresh_lost_between_stages(api, film, settings):
    settings.JOB_HEARTBEAT_TIMEOUT = 1
    Frame.objects.filter(pk=first_frame(film).pk).update(prompt="Dawn now")
    refresh = services.refresh_start(project=film)
    Job.objects.create(
        project=film,
        type=Job.Type.KEYFRAME,
        target_type="frame",
        target_id=first_frame(film).pk,
        parent=refresh,
        status=Job.Status.SUCCEEDED,
        attempts=1,
    )
    django_rq.get_connection("default").flushdb()  # its delivery is lost
    Job.objects.filter(pk=refresh.pk).update(updated_at=timezone.now() - timedelta(seconds=5))
    assert watchdog.sweep()["queued"] == 1


def test_two_refreshes_racing_start_exactly_one(api, film):
    Frame.objects.filter(pk=first_frame(film).pk).update(prompt="Storm now")
    barrier = threading.Barrier(4)
    answers: list[int] = []

    def ask():
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=api._credentials["HTTP_AUTHORIZATION"])
        barrier.wait()
        try:
            answers.append(
                client.post(f"/api/projects/{film.pk}/refresh", {}, format="json").status_code
            )
        finally:
            connection.close()

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(answers) == [202, 409, 409, 409]
    assert Job.objects.filter(type=Job.Type.REFRESH).count() == 1


def test_a_redone_portraits_dry_run_lists_the_keyframes_clips_and_cut_that_follow(api, film):
    character = film.characters.first()
    Character.objects.filter(pk=character.pk).update(appearance="A red coat now")
    shown = {f.pk for f in Frame.objects.filter(scene__project=film, scene__characters=character)}
    assert shown  # the portrait is in the film's scene
    dry = api.post(f"/api/projects/{film.pk}/refresh", {"dry_run": True}, format="json").json()
    planned = [(u["type"], u["id"], u.get("follows", False)) for u in dry["units"]]
    assert planned[0] == ("portrait", character.pk, False)
    assert {(t, i) for t, i, f in planned if f and t == "keyframe"} == {
        ("keyframe", pk) for pk in shown
    }
    assert {(t, i) for t, i, f in planned if f and t == "clip"} == {("clip", pk) for pk in shown}
    assert planned[-1] == ("film", film.pk, True)
    stale = api.get(f"/api/projects/{film.pk}/stale").json()
    assert [u["type"] for u in stale["units"]] == ["portrait"]  # only what is stale now
    assert stale["estimate"] == dry["estimate"]
    job = api.post(f"/api/projects/{film.pk}/refresh", {}, format="json").json()
    drain()
    made = Job.objects.filter(parent_id=job["id"]).values_list("type", flat=True)
    assert sorted(made) == sorted(
        [
            "portrait-generation",
            *["keyframe-generation"] * len(shown),
            *["video-generation"] * len(shown),
            "video-stitching",
        ]
    )


def test_deleting_a_project_deletes_every_takes_file(api, film):
    frame = first_frame(film)
    api.post("/api/jobs/keyframe-generation", {"frame_id": frame.pk}, format="json")
    drain()
    files = list(Take.objects.filter(project=film).values_list("file", flat=True))
    assert (
        len(files) == len(set(files))
        and Take.objects.filter(frame=frame, kind="keyframe").count() == 2
    )
    assert all(default_storage.exists(name) for name in files)
    assert api.delete(f"/api/projects/{film.pk}").status_code == 204
    assert not Take.objects.exists()
    assert not any(default_storage.exists(name) for name in files)
