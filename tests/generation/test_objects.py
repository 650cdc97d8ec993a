"""Objects (props and places, issue 15): the API, a reference image drawn by a job when one is
created (a `reference` take), scenes' `object_ids`, and keyframes that get the scene's objects'
images as references after the portraits (read off the fake Gemini's image requests)."""

import base64

import pytest
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction

from generation.models import GenerationJob
from projects.cast import shot_cast
from projects.models import Frame, Project, ProjectObject, Take
from projects.takes import project_stale_units
from tests.factories import ProjectFactory, SceneFactory
from tests.pipeline import drain

pytestmark = pytest.mark.django_db(transaction=True)
Job = GenerationJob


@pytest.fixture(autouse=True)
def offline_media(settings):
    settings.VIDEO_PROVIDER = "local"
    settings.SPEECH_PROVIDER = "local"


def read(name: str) -> bytes:
    with default_storage.open(name, "rb") as handle:
        return handle.read()


def inline_images(body: dict) -> list[bytes]:
    return [
        base64.urlsafe_b64decode(d + "=" * (-len(d) % 4))
        for content in body.get("contents") or []
        for part in content.get("parts") or []
        if (d := (part.get("inlineData") or {}).get("data"))
    ]


def test_an_object_is_created_with_its_reference_image_drawn_by_a_job(api, user):
    project = ProjectFactory(owner=user)
    url = f"/api/projects/{project.pk}/objects"
    response = api.post(url, {"name": "Brass lamp", "description": "a dented ship's lamp"},
                        format="json")  # fmt: skip
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["name"] == "Brass lamp" and body["image_url"] is None
    job = Job.objects.get(type="reference-generation")
    assert (job.target_type, job.target_id) == ("object", body["id"])
    drain()
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED, job.error
    obj = ProjectObject.objects.get(pk=body["id"])
    take = obj.take
    assert take.kind == Take.Kind.REFERENCE and take.object_id == obj.pk and take.frame is None
    assert obj.image == take.file and read(obj.image)[:4] == b"\x89PNG"
    assert "Brass lamp" in take.prompt
    listed = api.get(url).json()
    assert [o["id"] for o in listed] == [obj.pk] and listed[0]["image_url"]
    detail = api.get(f"/api/projects/{project.pk}").json()
    assert [o["name"] for o in detail["objects"]] == ["Brass lamp"]

    patched = api.patch(f"/api/objects/{obj.pk}", {"description": "polished"}, format="json")
    assert patched.status_code == 200 and patched.json()["description"] == "polished"
    assert api.delete(f"/api/objects/{obj.pk}").status_code == 204
    assert not ProjectObject.objects.filter(pk=obj.pk).exists()
    assert not Take.objects.filter(pk=take.pk).exists()
    assert api.get(f"/api/objects/{obj.pk}").status_code == 404


@pytest.mark.parametrize(
    "body", [{}, {"name": ""}, {"name": "x" * 121}, {"name": 5}, {"name": "a", "image": "x"}]
)
def test_bad_objects_are_400_and_create_nothing(api, user, body):
    project = ProjectFactory(owner=user)
    response = api.post(f"/api/projects/{project.pk}/objects", body, format="json")
    assert response.status_code == 400, response.content
    assert not ProjectObject.objects.exists() and not Job.objects.exists()


def test_object_names_are_unique_in_a_project_case_aside(api, user):
    """The scene plan offers the names as one enum and reads the model's answer back by name:
    "Lamp" and "lamp" would be one choice, and the second object never in a scene."""
    project, other = ProjectFactory(owner=user), ProjectFactory(owner=user)
    url = f"/api/projects/{project.pk}/objects"
    lamp = api.post(url, {"name": "Brass lamp"}, format="json").json()["id"]
    oar = api.post(url, {"name": "Oar"}, format="json").json()["id"]
    twin = api.post(url, {"name": " brass LAMP"}, format="json")
    assert twin.status_code == 400 and "already has an object" in twin.json()["name"][0]
    renamed = api.patch(f"/api/objects/{oar}", {"name": "BRASS lamp"}, format="json")
    assert renamed.status_code == 400 and "name" in renamed.json()
    assert list(ProjectObject.objects.filter(project=project).values_list("name", flat=True)) == [
        "Brass lamp",
        "Oar",
    ]
    assert Job.objects.filter(project=project).count() == 2  # nothing started for the twin
    # its own name in other letters, and the same name in another project, are fine
    assert (
        api.patch(f"/api/objects/{lamp}", {"name": "Brass Lamp"}, format="json").status_code == 200
    )
    elsewhere = api.post(f"/api/projects/{other.pk}/objects", {"name": "Brass lamp"}, format="json")
    assert elsewhere.status_code == 201
    # and the database holds it, whoever writes
    with pytest.raises(IntegrityError), transaction.atomic():
        ProjectObject.objects.create(project=project, name="OAR")


def test_an_object_past_the_budget_is_409_and_not_created(api, user, gemini):
    project = ProjectFactory(owner=user, budget_usd=0)
    response = api.post(f"/api/projects/{project.pk}/objects", {"name": "Lamp"}, format="json")
    assert response.status_code == 409, response.content
    assert not ProjectObject.objects.exists() and not Job.objects.exists()


def test_a_reference_take_needs_its_object(user):
    project = ProjectFactory(owner=user)
    with pytest.raises(IntegrityError), transaction.atomic():
        Take.objects.create(project=project, kind="reference", file="x.png")
    obj = ProjectObject.objects.create(project=project, name="Lamp")
    with pytest.raises(IntegrityError), transaction.atomic():
        Take.objects.create(project=project, kind="film", object=obj, file="x.png")
    assert Take.objects.create(project=project, kind="reference", object=obj, file="x.png").pk


def test_scene_object_ids_are_objects_of_the_same_project(api, user):
    project = ProjectFactory(owner=user)
    scene = SceneFactory(project=project)
    mine = ProjectObject.objects.create(project=project, name="Lamp")
    elsewhere = ProjectObject.objects.create(project=ProjectFactory(owner=user), name="Oar")
    url = f"/api/scenes/{scene.pk}"
    refused = api.patch(url, {"object_ids": [mine.pk, elsewhere.pk]}, format="json")
    assert refused.status_code == 400 and "object_ids" in refused.json()
    assert list(scene.project_objects.all()) == []
    for bad in (["1"], [0], "x", [True]):
        assert api.patch(url, {"object_ids": bad}, format="json").status_code == 400
    ok = api.patch(url, {"object_ids": [mine.pk]}, format="json")
    assert ok.status_code == 200 and ok.json()["object_ids"] == [mine.pk]
    detail = api.get(f"/api/projects/{project.pk}").json()
    assert detail["scenes"][0]["object_ids"] == [mine.pk]
    assert api.patch(url, {"object_ids": []}, format="json").json()["object_ids"] == []


def test_keyframes_get_the_scenes_objects_after_the_portraits(api, user, gemini):
    project = ProjectFactory(
        owner=user,
        num_scenes=1,
        frames_per_scene=2,
        clip_seconds=2,
        checkpoints=["cast", "storyboard"],
    )
    objects = []
    for name in ("Brass lamp", "Lighthouse gallery"):
        response = api.post(f"/api/projects/{project.pk}/objects", {"name": name}, format="json")
        assert response.status_code == 201, response.content
        objects.append(response.json()["id"])
    body = {"project_id": project.pk, "count": 1}
    assert api.post("/api/jobs/character-generation", body, format="json").status_code == 202
    drain()
    for character in project.characters.all():
        assert api.post(f"/api/characters/{character.pk}/approve").status_code == 200
    drain()  # scenes, then the storyboard (no clips: the storyboard checkpoint)
    project.refresh_from_db()
    assert project.status == Project.Status.AWAITING_STORYBOARD_APPROVAL, project.status
    scene = project.scenes.get()
    # the model proposed the lamp for the scene (the fake names the first listed object)
    assert api.get(f"/api/projects/{project.pk}").json()["scenes"][0]["object_ids"] == objects[:1]
    assert (
        api.patch(f"/api/scenes/{scene.pk}", {"object_ids": objects}, format="json").status_code
        == 200
    )
    lamp, gallery = ProjectObject.objects.filter(pk__in=objects).order_by("id")
    assert lamp.image and gallery.image
    first = Frame.objects.get(scene=scene, order=1)
    stale = {(u["type"], u["id"]): u["reasons"] for u in project_stale_units(project)}
    assert stale[("keyframe", first.pk)] == ["the scene's objects changed"]

    frame = Frame.objects.get(scene=scene, order=2)
    before = len(gemini.requests)
    assert (
        api.post("/api/jobs/keyframe-generation", {"frame_id": frame.pk}, format="json").status_code
        == 202
    )
    drain()
    (request,) = [r for r in gemini.requests[before:] if r.kind == "image"]
    sent = inline_images(request.body)
    cast = shot_cast(frame)
    portraits = [read(c.image) for c in cast]
    earlier = read(Frame.objects.get(scene=scene, order=1).image)
    assert sent == [*portraits, read(lamp.image), read(gallery.image), earlier]
    n = len(cast)
    assert f"reference image {n + 1} is Brass lamp" in str(request.body)
    assert f"reference image {n + 2} is Lighthouse gallery" in str(request.body)
    stale = {(u["type"], u["id"]) for u in project_stale_units(project)}
    assert ("keyframe", frame.pk) not in stale and ("keyframe", first.pk) in stale
    # a scene without objects sends none
    assert (
        api.patch(f"/api/scenes/{scene.pk}", {"object_ids": []}, format="json").status_code == 200
    )
    before = len(gemini.requests)
    assert (
        api.post("/api/jobs/keyframe-generation", {"frame_id": frame.pk}, format="json").status_code
        == 202
    )
    drain()
    (request,) = [r for r in gemini.requests[before:] if r.kind == "image"]
    assert inline_images(request.body) == [*portraits, earlier]
    assert "Objects and places" not in str(request.body)
    # with the proposed lamp alone again, the first shot is as it was drawn
    assert (
        api.patch(f"/api/scenes/{scene.pk}", {"object_ids": objects[:1]}, format="json")
    ).status_code == 200
    assert ("keyframe", first.pk) not in {
        (u["type"], u["id"]) for u in project_stale_units(project)
    }


@pytest.fixture
def admin_client(client):
    from django.contrib.auth import get_user_model  # noqa: PLC0415 (this fixture only)

    boss = get_user_model().objects.create_superuser("boss", password="pw-for-tests-only")
    client.force_login(boss)
    return client


def test_the_admin_adds_edits_and_deletes_objects_through_the_services(admin_client, user):
    project = ProjectFactory(owner=user)
    form = {"project": project.pk, "name": "Red kite", "description": "a paper kite"}
    response = admin_client.post("/admin/projects/projectobject/add/", form)
    assert response.status_code == 302, response.content.decode()[:2000]
    obj = ProjectObject.objects.get()
    assert obj.name == "Red kite"
    assert Job.objects.filter(type="reference-generation", target_id=obj.pk).exists()
    drain()
    obj.refresh_from_db()
    page = admin_client.get(f"/admin/projects/projectobject/{obj.pk}/change/")
    assert page.status_code == 200 and obj.image.rsplit("/", 1)[-1] in page.content.decode()
    listing = admin_client.get("/admin/projects/projectobject/")
    assert listing.status_code == 200 and "Red kite" in listing.content.decode()
    edit = {"name": "Blue kite", "description": "a paper kite"}
    assert (
        admin_client.post(f"/admin/projects/projectobject/{obj.pk}/change/", edit).status_code
        == 302
    )
    obj.refresh_from_db()
    assert obj.name == "Blue kite" and obj.project_id == project.pk
    delete = admin_client.post(f"/admin/projects/projectobject/{obj.pk}/delete/", {"post": "yes"})
    assert delete.status_code == 302
    assert not ProjectObject.objects.exists() and not Take.objects.filter(kind="reference").exists()
