"""Image editing by instruction (issue 15): `POST /api/jobs/image-edit` makes a new portrait or
keyframe take from the current image and the text, offline (a visible, deterministic edit)
and through the fake Gemini (the request carries the current image's bytes)."""

import pytest

from generation.models import GenerationJob, SpendEntry
from projects.models import Character, Frame, Project, ProjectObject, Take
from projects.takes import project_stale_units
from tests.factories import CharacterFactory, ProjectFactory
from tests.generation.images import inline_images, pixels, read
from tests.pipeline import cast_approved, drain

pytestmark = pytest.mark.django_db(transaction=True)
Job = GenerationJob
URL = "/api/jobs/image-edit"


@pytest.fixture(autouse=True)
def offline_media(settings):
    settings.VIDEO_PROVIDER = "local"
    settings.SPEECH_PROVIDER = "local"


def small_film(api, user) -> Project:
    project = ProjectFactory(owner=user, num_scenes=1, frames_per_scene=2, clip_seconds=2)
    cast_approved(api, project)
    assert project.status == Project.Status.COMPLETE, project.status
    return project


def test_a_keyframe_edited_offline_is_the_old_image_recoloured_and_its_clip_goes_stale(api, user):
    project = small_film(api, user)
    frame = Frame.objects.filter(scene__project=project).order_by("order").first()
    old_take, old_bytes = frame.keyframe_take, read(frame.image)
    assert project_stale_units(project) == []

    quote = api.post(
        URL, {"frame_id": frame.pk, "instruction": "x", "dry_run": True}, format="json"
    )
    assert quote.status_code == 200 and quote.json()["estimate"]["items"][0]["stage"] == "edits"
    response = api.post(URL, {"frame_id": frame.pk, "instruction": "paint the door red"},
                        format="json")  # fmt: skip
    assert response.status_code == 202, response.content
    assert response.json()["type"] == "image-edit"
    drain()
    job = Job.objects.get(pk=response.json()["id"])
    assert job.status == Job.Status.SUCCEEDED, job.error

    frame.refresh_from_db()
    take = frame.keyframe_take
    assert take.pk != old_take.pk and take.kind == Take.Kind.KEYFRAME
    assert take.instructions == "paint the door red"
    assert take.prompt == "Edit this image: paint the door red; keep everything else."
    assert job.result["take_ids"] == [take.pk] and job.result["edited_take_id"] == old_take.pk
    edited, before = pixels(read(take.file)), pixels(old_bytes)
    assert edited.size == before.size
    # the old image with its channels rotated, away from the caption band along the bottom
    r, g, b = before.getpixel((10, 10))
    assert edited.getpixel((10, 10)) == (b, r, g)
    assert edited.getpixel((10, 10)) != (r, g, b)
    # deterministic: the same image and instruction give the same bytes
    from generation.providers.local import LocalImage  # noqa: PLC0415 (this check only)

    prompt = take.prompt
    again = LocalImage().generate_image(
        prompt=prompt, references=[old_bytes], aspect_ratio="16:9", seed=1
    )
    assert again == read(take.file)
    # a regeneration of the same frame is not an edit: no rotated copy of the old image
    fresh = LocalImage().generate_image(
        prompt="Keyframe. A door.", references=[old_bytes], aspect_ratio="16:9", seed=1
    )
    assert pixels(fresh).getpixel((10, 10)) != (b, r, g)

    stale = {(u["type"], u["id"]) for u in project_stale_units(project)}
    assert stale == {("clip", frame.pk)}


def test_a_portrait_edited_makes_the_keyframes_showing_it_stale(api, user):
    project = small_film(api, user)
    character = project.characters.get()
    old = character.take_id
    body = {"character_id": character.pk, "instruction": "give her a green scarf"}
    assert api.post(URL, body, format="json").status_code == 202
    drain()
    character.refresh_from_db()
    assert character.take_id != old and character.take.kind == Take.Kind.PORTRAIT
    assert character.take.instructions == "give her a green scarf"
    assert character.image == character.take.file
    stale = {u["type"] for u in project_stale_units(project)}
    assert "keyframe" in stale
    takes = api.get(f"/api/characters/{character.pk}/takes").json()["results"]
    assert [t["current"] for t in takes[:2]] == [True, False]


@pytest.mark.parametrize(
    "body",
    [
        {"instruction": ""},
        {"instruction": "   "},
        {"instruction": "x" * 2001},
        {"instruction": 5},
        {},
    ],
)
def test_bad_instructions_are_400_and_start_nothing(api, user, body):
    project = ProjectFactory(owner=user)
    character = CharacterFactory(project=project, image="characters/x.png")
    jobs = Job.objects.count()
    response = api.post(URL, {"character_id": character.pk, **body}, format="json")
    assert response.status_code == 400, response.content
    assert Job.objects.count() == jobs


def test_both_or_neither_unit_is_400(api, user):
    project = ProjectFactory(owner=user)
    character = CharacterFactory(project=project, image="characters/x.png")
    both = {"character_id": character.pk, "frame_id": 1, "instruction": "x"}
    assert api.post(URL, both, format="json").status_code == 400
    assert api.post(URL, {"instruction": "x"}, format="json").status_code == 400


def test_a_unit_without_an_image_is_409(api, user):
    project = ProjectFactory(owner=user)
    character = CharacterFactory(project=project, image="")
    response = api.post(URL, {"character_id": character.pk, "instruction": "x"}, format="json")
    assert response.status_code == 409 and "no portrait yet" in response.json()["detail"]
    assert not Job.objects.filter(type="image-edit").exists()


def test_an_edit_while_a_job_works_on_the_unit_is_409(api, user):
    project = small_film(api, user)
    frame = Frame.objects.filter(scene__project=project).first()
    body = {"frame_id": frame.pk, "instruction": "make it night"}
    assert api.post(URL, body, format="json").status_code == 202  # queued, not drained
    again = api.post(URL, body, format="json")
    assert again.status_code == 409 and "image-edit" in again.json()["detail"]
    redo = api.post("/api/jobs/keyframe-generation", {"frame_id": frame.pk}, format="json")
    assert redo.status_code == 409
    drain()
    assert Job.objects.filter(type="image-edit", status="succeeded").count() == 1


def test_an_edit_over_the_budget_is_refused(api, user, gemini):
    project = ProjectFactory(owner=user, budget_usd=0)
    character = CharacterFactory(project=project, image="characters/x.png")
    response = api.post(URL, {"character_id": character.pk, "instruction": "x"}, format="json")
    assert response.status_code == 409, response.content
    assert not Job.objects.filter(type="image-edit").exists()


def _drawn_character(api, project: Project) -> Character:
    body = {"project_id": project.pk, "count": 1}
    assert api.post("/api/jobs/character-generation", body, format="json").status_code == 202
    drain()
    return Character.objects.get(project=project)


def _drawn_object(api, project: Project) -> ProjectObject:
    response = api.post(f"/api/projects/{project.pk}/objects", {"name": "Lamp"}, format="json")
    drain()
    return ProjectObject.objects.get(pk=response.json()["id"])


@pytest.mark.parametrize(
    ("kind", "drawn"), [("character", _drawn_character), ("object", _drawn_object)]
)
def test_through_the_fake_gemini_the_request_carries_the_current_image(
    api, user, gemini, kind, drawn
):
    """A portrait or an object's reference image (issue 15): the edit sends it, and what it
    cost is the new take's and in the ledger for that unit."""
    unit = drawn(api, ProjectFactory(owner=user))
    current = read(unit.image)
    before = len(gemini.requests)
    edit = {f"{kind}_id": unit.pk, "instruction": "add a crack"}
    assert api.post(URL, edit, format="json").status_code == 202
    drain()
    (request,) = [r for r in gemini.requests[before:] if r.kind == "image"]
    assert inline_images(request.body) == [current]
    assert "Edit this image: add a crack; keep everything else." in str(request.body)
    unit.refresh_from_db()
    assert read(unit.image) != current
    assert unit.take.provider == "gemini" and unit.take.cost_usd > 0
    job = Job.objects.get(type="image-edit")
    assert job.status == Job.Status.SUCCEEDED, job.error
    (entry,) = SpendEntry.objects.filter(job=job)
    assert (entry.stage, entry.unit_type, entry.unit_id) == ("image-edit", kind, unit.pk)
    assert entry.usd == unit.take.cost_usd
