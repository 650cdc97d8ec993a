"""Takes, per-unit regeneration, staleness and refresh, end to end offline with the real
services, RQ and PostgreSQL (issue 11)."""

import json
from pathlib import Path

import pytest
from django.core.files.storage import default_storage

from generation.models import GenerationJob
from media import ffmpeg
from projects.models import Frame, Project, Take
from projects.takes import project_stale_units
from tests.factories import ProjectFactory
from tests.pipeline import drain

pytestmark = pytest.mark.django_db(transaction=True)
Job = GenerationJob


@pytest.fixture
def film(api, user):
    """A finished offline 3x3 film."""
    project = ProjectFactory(owner=user, num_scenes=3, frames_per_scene=3, clip_seconds=2)
    assert (
        api.post(
            "/api/jobs/character-generation", {"project_id": project.pk, "count": 2}, format="json"
        ).status_code
        == 202
    )
    drain()
    for character in project.characters.all():
        assert api.post(f"/api/characters/{character.pk}/approve").status_code == 200
    drain()
    project.refresh_from_db()
    assert project.status == Project.Status.COMPLETE
    return project


def counts(project) -> dict[str, int]:
    return {k: project.takes.filter(kind=k).count() for k in Take.Kind.values}


def test_every_generated_file_is_a_current_take(api, film):
    assert counts(film) == {
        "portrait": 2,
        "keyframe": 9,
        "clip": 9,
        "line": 9,
        "film": 1,
        "reference": 0,
    }
    body = api.get(f"/api/projects/{film.pk}/takes?kind=film").json()
    assert body["count"] == 1 and body["results"][0]["current"] is True
    assert project_stale_units(film) == []


def test_edit_one_frame_prompt_then_refresh_redoes_one_keyframe_one_clip_one_cut(api, film):
    frame = Frame.objects.filter(scene__project=film).order_by("scene__order", "order")[4]
    before = counts(film)
    jobs_before = Job.objects.count()
    last_job = Job.objects.order_by("-pk").first().pk
    Frame.objects.filter(pk=frame.pk).update(prompt=frame.prompt + " At dusk.")

    stale = api.get(f"/api/projects/{film.pk}/stale").json()["units"]
    assert [(u["type"], u["id"]) for u in stale] == [("keyframe", frame.pk), ("clip", frame.pk)]
    assert "frame prompt edited" in stale[0]["reasons"]
    dry = api.post(f"/api/projects/{film.pk}/refresh", {"dry_run": True}, format="json")
    assert dry.status_code == 200
    # the dry run also names what follows (the film, once its clip is redone): the whole bill
    follows = {"type": "film", "id": film.pk, "reasons": ["a clip is redone"], "follows": True}
    assert dry.json()["units"] == [*stale, follows]
    items = {i["stage"]: (i["count"], i["unit"]) for i in dry.json()["estimate"]["items"]}
    # one image and one 2-second clip (the film's re-cut is free)
    assert items == {"keyframes": (1, "image"), "clips": (2, "video_second")}
    assert Job.objects.count() == jobs_before  # a dry run starts nothing

    response = api.post(f"/api/projects/{film.pk}/refresh", {}, format="json")
    assert response.status_code == 202, response.content
    assert api.post(f"/api/projects/{film.pk}/refresh", {}, format="json").status_code == 409
    drain()

    refresh = Job.objects.get(pk=response.json()["id"])
    assert refresh.status == Job.Status.SUCCEEDED, refresh.error
    after = counts(film)
    made = {k: after[k] - before[k] for k in after}
    assert made == {"portrait": 0, "keyframe": 1, "clip": 1, "line": 0, "film": 1, "reference": 0}
    new_types = set(Job.objects.filter(pk__gt=last_job).values_list("type", flat=True))
    assert new_types == {"refresh", "keyframe-generation", "video-generation", "video-stitching"}
    film.refresh_from_db()
    assert project_stale_units(film) == []
    assert film.status == Project.Status.COMPLETE


def test_writing_the_same_text_back_makes_nothing_stale(api, film):
    frame = Frame.objects.filter(scene__project=film).first()
    Frame.objects.filter(pk=frame.pk).update(prompt="something else")
    assert project_stale_units(film)
    Frame.objects.filter(pk=frame.pk).update(prompt=frame.prompt)
    assert project_stale_units(film) == []
    assert api.post(f"/api/projects/{film.pk}/refresh", {}, format="json").status_code == 409


def test_a_keyframe_redone_with_instructions_keeps_the_text_and_stales_the_clip(api, film):
    frame = Frame.objects.filter(scene__project=film).first()
    old_take = frame.keyframe_take_id
    text_jobs = Job.objects.filter(type__in=["frame-generation", "scene-generation"]).count()
    response = api.post(
        "/api/jobs/keyframe-generation",
        {"frame_id": frame.pk, "instructions": "make it darker"},
        format="json",
    )
    assert response.status_code == 202
    drain()
    frame.refresh_from_db()
    take = Take.objects.get(pk=frame.keyframe_take_id)
    assert take.pk != old_take and take.instructions == "make it darker"
    assert "Producer's instructions: make it darker" in take.prompt
    # No text model was asked: no shot-list job ran, the prompt is unchanged.
    assert Job.objects.filter(type__in=["frame-generation", "scene-generation"]).count() == (
        text_jobs
    )
    stale = project_stale_units(film)
    assert [(u["type"], u["reasons"]) for u in stale] == [("clip", ["keyframe changed"])]
    takes = api.get(f"/api/frames/{frame.pk}/takes?kind=keyframe").json()["results"]
    assert [t["current"] for t in takes] == [True, False]


def test_rolling_back_a_clip_restitches_from_the_selected_take(api, film):
    frame = Frame.objects.filter(scene__project=film).order_by("scene__order", "order").first()
    assert (
        api.post(
            "/api/jobs/video-generation",
            {"frame_id": frame.pk, "instructions": "slower"},
            format="json",
        ).status_code
        == 202
    )
    drain()
    film.refresh_from_db()
    assert film.status == Project.Status.COMPLETE  # one clip redone: no re-cut by itself
    clips = api.get(f"/api/frames/{frame.pk}/takes?kind=clip").json()["results"]
    assert len(clips) == 2 and clips[0]["current"] and clips[0]["instructions"] == "slower"
    assert [u["type"] for u in project_stale_units(film)] == ["film"]

    older = clips[1]["id"]
    selected = api.post(f"/api/takes/{older}/select")
    assert selected.status_code == 200 and selected.json()["current"] is True
    again = api.post(f"/api/takes/{older}/select")
    assert again.status_code == 200  # already current: a no-op
    stale = project_stale_units(film)
    assert stale == [] or [u["type"] for u in stale] == ["film"]

    Frame.objects.filter(pk=frame.pk).update(prompt=frame.prompt + " Rain.")
    response = api.post(f"/api/projects/{film.pk}/refresh", {}, format="json")
    assert response.status_code == 202
    drain()
    film.refresh_from_db()
    cut = Take.objects.get(pk=film.film_take_id)
    frame.refresh_from_db()
    # The new cut is made from the current clips: the redone shot's, not the rolled-back one.
    assert cut.inputs["clips"][0] == [frame.pk, frame.video.take_id]
    assert film.final_video == cut.file
    probed = ffmpeg.probe(Path(default_storage.path(cut.file)))
    assert probed.duration == pytest.approx(18.0, abs=0.2)


def test_takes_of_another_user_are_404_and_selecting_during_a_job_is_409(api, other_api, film):
    frame = Frame.objects.filter(scene__project=film).first()
    take = Take.objects.get(pk=frame.keyframe_take_id)
    assert other_api.post(f"/api/takes/{take.pk}/select").status_code == 404
    assert other_api.get(f"/api/frames/{frame.pk}/takes").status_code == 404
    assert api.get(f"/api/frames/{frame.pk}/takes?kind=film").status_code == 400
    assert (
        api.post("/api/jobs/keyframe-generation", {"frame_id": frame.pk}, format="json").status_code
        == 202
    )
    older = Take.objects.filter(frame=frame, kind="keyframe").exclude(pk=take.pk)
    assert not older.exists()
    response = api.post(f"/api/takes/{take.pk}/select")
    assert response.status_code == 200  # current already: a no-op, even while busy
    drain()
    frame.refresh_from_db()
    assert (
        api.post("/api/jobs/keyframe-generation", {"frame_id": frame.pk}, format="json").status_code
        == 202
    )
    assert api.post(f"/api/takes/{take.pk}/select").status_code == 409


def test_a_cancelled_keyframe_regeneration_leaves_the_current_take(api, film):
    frame = Frame.objects.filter(scene__project=film).first()
    current = frame.keyframe_take_id
    job = api.post("/api/jobs/keyframe-generation", {"frame_id": frame.pk}, format="json").json()
    assert api.delete(f"/api/jobs/{job['id']}").status_code == 200
    drain()
    frame.refresh_from_db()
    assert frame.keyframe_take_id == current
    assert Take.objects.filter(frame=frame, kind="keyframe").count() == 1


def test_the_project_document_shows_takes_and_what_is_stale(api, film):
    frame = Frame.objects.filter(scene__project=film).order_by("scene__order", "order").first()
    character = film.characters.first()
    assert (
        api.post(
            "/api/jobs/portrait-generation", {"character_id": character.pk}, format="json"
        ).status_code
        == 202
    )
    drain()
    Frame.objects.filter(pk=frame.pk).update(camera="Low angle")
    doc = api.get(f"/api/projects/{film.pk}").json()

    portrait = next(c for c in doc["characters"] if c["id"] == character.pk)
    assert portrait["takes_count"] == 2 and portrait["stale"] is False
    character.refresh_from_db()
    assert portrait["take_id"] == character.take_id
    shots = [f for s in doc["scenes"] for f in s["frames"]]
    first = next(f for f in shots if f["id"] == frame.pk)
    assert first["stale"] is True and "camera edited" in first["stale_reasons"]
    assert first["video"]["stale"] is True and first["video"]["takes_count"] == 1
    for scene in doc["scenes"]:
        for shot in scene["frames"]:
            # the shots that show the character (or name nobody, in a scene with them)
            shows = shot["character_ids"] or scene["character_ids"]
            changed = f"portrait of {character.name} changed" in shot["stale_reasons"]
            if shot["id"] != frame.pk:
                assert changed == (character.pk in shows), shot
    # the film is made of clips: it goes stale once a clip changes, not before
    assert doc["takes_count"] == 1 and doc["stale"] is False and doc["take_id"] == film.film_take_id
    listed = api.get(f"/api/projects/{film.pk}/characters").json()
    assert next(c for c in listed if c["id"] == character.pk)["takes_count"] == 2


def test_through_the_real_sdks_a_prompt_edit_and_refresh_pay_one_image_and_one_clip(
    api, user, gemini, fal
):
    """Counted at the fake Gemini and fal servers: what they were asked, not what we stored."""
    project = ProjectFactory(owner=user, num_scenes=2, frames_per_scene=2, clip_seconds=2)
    body = {"project_id": project.pk, "count": 2}
    assert api.post("/api/jobs/character-generation", body, format="json").status_code == 202
    drain()
    for character in project.characters.all():
        api.post(f"/api/characters/{character.pk}/approve")
    drain()
    project.refresh_from_db()
    assert project.status == Project.Status.COMPLETE
    asked = (gemini.count(kind="text"), gemini.count(kind="image"), fal.count(kind="submit"))
    frame = Frame.objects.filter(scene__project=project).order_by("scene__order", "order")[1]

    edit = {"prompt": "The keeper lights the lamp, storm at the window"}
    assert api.patch(f"/api/frames/{frame.pk}", edit, format="json").status_code == 200
    assert api.post(f"/api/projects/{project.pk}/refresh", {}, format="json").status_code == 202
    drain()

    now = (gemini.count(kind="text"), gemini.count(kind="image"), fal.count(kind="submit"))
    # one image and its consistency check (a vision question, no writing), one clip
    assert (now[0] - asked[0], now[1] - asked[1], now[2] - asked[2]) == (1, 1, 1)
    judge = [r for r in gemini.requests if r.kind == "text"][-1]
    assert "reference portraits" in json.dumps(judge.body)
    image_request = [r for r in gemini.requests if r.kind == "image"][-1]
    assert "storm at the window" in json.dumps(image_request.body)
    project.refresh_from_db()
    assert project.status == Project.Status.COMPLETE
    assert project.takes.filter(kind="film").count() == 2

    # instructions for one redo reach the model's request; the text model only judges it
    texts = gemini.count(kind="text")
    body = {"frame_id": frame.pk, "instructions": "make the lamp flicker blue"}
    assert api.post("/api/jobs/keyframe-generation", body, format="json").status_code == 202
    drain()
    assert gemini.count(kind="text") == texts + 1
    image_request = [r for r in gemini.requests if r.kind == "image"][-1]
    assert "make the lamp flicker blue" in json.dumps(image_request.body)
