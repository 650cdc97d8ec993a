"""An object's reference image goes stale when its name, description or the project's style
changes (issue 15 and the producer-control staleness rules): `/stale` lists it, the refresh's
dry run prices it and the keyframes of the scenes showing it, and the refresh redraws exactly
those (offline, provider calls counted); nothing regenerates by itself."""

import pytest

from generation.models import GenerationJob
from generation.providers import local
from projects.models import Frame, Project, ProjectObject, Take
from projects.takes import project_stale_units, reference_inputs, take_record
from tests.factories import ProjectFactory
from tests.pipeline import drain

Job = GenerationJob


@pytest.fixture(autouse=True)
def offline_media(settings):
    settings.IMAGE_PROVIDER = "local"
    settings.VIDEO_PROVIDER = "local"
    settings.SPEECH_PROVIDER = "local"


def counts(project) -> dict[str, int]:
    return {k: project.takes.filter(kind=k).count() for k in Take.Kind.values}


def scene_frames(project, order: int) -> list[Frame]:
    return list(Frame.objects.filter(scene__project=project, scene__order=order).order_by("order"))


@pytest.fixture
def film(api, user):
    """A finished offline 2x2 film whose first scene shows a lamp drawn before the refresh
    that brought everything up to date."""
    project = ProjectFactory(owner=user, num_scenes=2, frames_per_scene=2, clip_seconds=2)
    body = {"project_id": project.pk, "count": 1}
    assert api.post("/api/jobs/character-generation", body, format="json").status_code == 202
    drain()
    for character in project.characters.all():
        assert api.post(f"/api/characters/{character.pk}/approve").status_code == 200
    drain()
    lamp = {"name": "Brass lamp", "description": "a dented ship's lamp"}
    created = api.post(f"/api/projects/{project.pk}/objects", lamp, format="json")
    assert created.status_code == 201, created.content
    drain()
    scene = project.scenes.get(order=1)
    body = {"object_ids": [created.json()["id"]]}
    assert api.patch(f"/api/scenes/{scene.pk}", body, format="json").status_code == 200
    assert api.post(f"/api/projects/{project.pk}/refresh", {}, format="json").status_code == 202
    drain()
    project.refresh_from_db()
    assert project.status == Project.Status.COMPLETE
    assert project_stale_units(project) == []
    return project


class Calls:
    def __init__(self, monkeypatch):
        self.images: list[str] = []
        self.clips = 0
        draw, submit = local.LocalImage.generate_image, local.LocalVideo.submit

        def counted_draw(provider, **kwargs):
            self.images.append(kwargs["prompt"])
            return draw(provider, **kwargs)

        def counted_submit(provider, **kwargs):
            self.clips += 1
            return submit(provider, **kwargs)

        monkeypatch.setattr(local.LocalImage, "generate_image", counted_draw)
        monkeypatch.setattr(local.LocalVideo, "submit", counted_submit)


def strangers_get_404(other_api, obj: ProjectObject, film: Project) -> None:
    """Another user's object: 404 for reading, editing, its takes and selecting them."""
    body = {"description": "mine now"}
    assert other_api.get(f"/api/objects/{obj.pk}").status_code == 404
    assert other_api.patch(f"/api/objects/{obj.pk}", body, format="json").status_code == 404
    assert other_api.get(f"/api/objects/{obj.pk}/takes").status_code == 404
    assert other_api.post(f"/api/takes/{obj.take_id}/select").status_code == 404
    assert other_api.get(f"/api/projects/{film.pk}/stale").status_code == 404
    assert ProjectObject.objects.get(pk=obj.pk).description == "a dented ship's lamp"


def object_json_everywhere(api, film: Project, obj: ProjectObject) -> list[dict]:
    """The object as its list, the project document and its own endpoint write it."""
    listed = api.get(f"/api/projects/{film.pk}/objects").json()
    detail = api.get(f"/api/projects/{film.pk}").json()["objects"]
    return [listed[0], detail[0], api.get(f"/api/objects/{obj.pk}").json()]


@pytest.mark.django_db(transaction=True)
def test_an_edited_description_stales_the_reference_and_refresh_redraws_it_then_its_keyframes(
    api, other_api, film, monkeypatch
):
    obj = film.project_objects.get()
    first_take = obj.take_id
    shown, elsewhere = scene_frames(film, 1), scene_frames(film, 2)
    keyframes_before = {f.pk: f.keyframe_take_id for f in shown + elsewhere}
    calls = Calls(monkeypatch)
    jobs_before = Job.objects.count()

    patched = api.patch(f"/api/objects/{obj.pk}", {"description": "a polished lamp"}, format="json")
    assert patched.status_code == 200
    assert (patched.json()["stale"], patched.json()["stale_reasons"]) == (
        True,
        ["description changed"],
    )
    assert Job.objects.count() == jobs_before  # nothing regenerates by itself
    stale = api.get(f"/api/projects/{film.pk}/stale").json()["units"]
    assert stale == [{"type": "reference", "id": obj.pk, "reasons": ["description changed"]}]
    # the object's JSON says so wherever it appears
    for found in object_json_everywhere(api, film, obj):
        assert (found["stale"], found["stale_reasons"], found["take_id"]) == (
            True,
            ["description changed"],
            first_take,
        )

    dry = api.post(f"/api/projects/{film.pk}/refresh", {"dry_run": True}, format="json")
    assert dry.status_code == 200
    follows = [
        *(("keyframe", f.pk, "a reference image it shows is redone") for f in shown),
        *(("clip", f.pk, "its keyframe is redone") for f in shown),
        ("film", film.pk, "a clip is redone"),
    ]
    assert dry.json()["units"] == [
        *stale,
        *({"type": t, "id": pk, "reasons": [why], "follows": True} for t, pk, why in follows),
    ]
    items = {i["stage"]: (i["count"], i["unit"]) for i in dry.json()["estimate"]["items"]}
    assert items == {
        "references": (1, "image"),
        "keyframes": (2, "image"),
        "clips": (4, "video_second"),
    }
    assert Job.objects.count() == jobs_before and calls.images == []  # a dry run starts nothing

    before = counts(film)
    response = api.post(f"/api/projects/{film.pk}/refresh", {}, format="json")
    assert response.status_code == 202, response.content
    drain()
    refresh = Job.objects.get(pk=response.json()["id"])
    assert refresh.status == Job.Status.SUCCEEDED, refresh.error
    assert refresh.result["reference"] == 1 and refresh.result["keyframe"] == 2
    after = counts(film)
    made = {k: after[k] - before[k] for k in after}
    assert made == {"portrait": 0, "reference": 1, "keyframe": 2, "clip": 2, "line": 0, "film": 1}
    # the reference first (from the new description), then the two keyframes showing it
    assert len(calls.images) == 3 and "a polished lamp" in calls.images[0]
    assert calls.clips == 2
    new_types = set(Job.objects.filter(pk__gt=refresh.pk).values_list("type", flat=True))
    assert new_types == {
        "reference-generation",
        "keyframe-generation",
        "video-generation",
        "video-stitching",
    }
    for frame in shown + elsewhere:
        frame.refresh_from_db()
    assert all(f.keyframe_take_id != keyframes_before[f.pk] for f in shown)
    assert all(f.keyframe_take_id == keyframes_before[f.pk] for f in elsewhere)
    obj.refresh_from_db()
    assert obj.take_id != first_take and obj.take.inputs == reference_inputs(obj)
    film.refresh_from_db()
    assert project_stale_units(film) == []

    # the description written back: the new take is stale, the old one selected back is fresh
    # (and the keyframes drawn from the new one go stale; nothing is redrawn)
    api.patch(f"/api/objects/{obj.pk}", {"description": "a dented ship's lamp"}, format="json")
    assert [(u["type"], u["reasons"]) for u in project_stale_units(film)] == [
        ("reference", ["description changed"])
    ]
    images = len(calls.images)
    assert api.post(f"/api/takes/{first_take}/select").status_code == 200
    one = api.get(f"/api/objects/{obj.pk}").json()
    assert (one["take_id"], one["stale"], one["stale_reasons"], one["takes_count"]) == (
        first_take,
        False,
        [],
        2,
    )
    assert [(u["type"], u["id"], u["reasons"]) for u in project_stale_units(film)] == [
        ("keyframe", f.pk, ["the scene's objects changed"]) for f in shown
    ]
    assert len(calls.images) == images

    strangers_get_404(other_api, obj, film)


@pytest.mark.django_db
def test_the_name_and_the_projects_style_stale_a_reference_with_reasons_naming_them(user):
    project = ProjectFactory(owner=user, style="ink")
    obj = ProjectObject.objects.create(project=project, name="Lamp", description="brass")
    take_record(
        project_id=project.pk,
        kind=Take.Kind.REFERENCE,
        file="x/lamp.png",
        inputs=reference_inputs(obj),
        obj=obj,
    )
    assert project_stale_units(project) == []
    ProjectObject.objects.filter(pk=obj.pk).update(name="Copper lamp")
    Project.objects.filter(pk=project.pk).update(style="watercolour")
    project.refresh_from_db()
    assert project_stale_units(project) == [
        {"type": "reference", "id": obj.pk, "reasons": ["name changed", "project style changed"]}
    ]
    ProjectObject.objects.filter(pk=obj.pk).update(name="Lamp")
    Project.objects.filter(pk=project.pk).update(style="ink")
    project.refresh_from_db()
    assert project_stale_units(project) == []  # the same text back: nothing stale
    # an object not drawn yet is missing, not stale
    ProjectObject.objects.create(project=project, name="Pier")
    assert project_stale_units(project) == []
