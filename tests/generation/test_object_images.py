"""An object's reference image redrawn (`POST /api/jobs/reference-generation`) and edited by an
instruction (`POST /api/jobs/image-edit` with `object_id`, beyond the v2 contract): each is a
new current `reference` take, and the keyframes of the scenes that list the object go stale
through their inputs (issue 15). Offline, an edit is visibly the old image recoloured."""

from decimal import Decimal

import pytest

from filmstudio.exceptions import ConflictError
from generation.estimates import job_items
from generation.models import GenerationJob
from generation.services import start_reference_generation
from projects.models import Frame, Project, ProjectObject, Take
from projects.takes import project_stale_units
from tests.factories import JobFactory, ProjectFactory
from tests.generation.images import pixels, read
from tests.pipeline import cast_approved, drain

pytestmark = pytest.mark.django_db(transaction=True)
Job = GenerationJob
EDIT, REDRAW = "/api/jobs/image-edit", "/api/jobs/reference-generation"


@pytest.fixture(autouse=True)
def offline_media(settings):
    settings.VIDEO_PROVIDER = "local"
    settings.SPEECH_PROVIDER = "local"


def storyboard_with_a_lamp(api, user) -> tuple[Project, ProjectObject]:
    """Two scenes of one shot; the story mentions the lamp in the first only (offline, the
    scene plan proposes it there)."""
    project = ProjectFactory(
        owner=user,
        num_scenes=2,
        frames_per_scene=1,
        clip_seconds=2,
        synopsis="She polishes the brass lamp. The storm breaks.",
        checkpoints=["cast", "storyboard"],
    )
    response = api.post(f"/api/projects/{project.pk}/objects", {"name": "Brass lamp"},
                        format="json")  # fmt: skip
    assert response.status_code == 201, response.content
    cast_approved(api, project)
    assert project.status == Project.Status.AWAITING_STORYBOARD_APPROVAL, project.status
    lamp = ProjectObject.objects.get(pk=response.json()["id"])
    assert [list(s.project_objects.all()) for s in project.scenes.order_by("order")] == [[lamp], []]
    assert project_stale_units(project) == []
    return project, lamp


def frames_of(project: Project) -> tuple[Frame, Frame]:
    first, second = Frame.objects.filter(scene__project=project).order_by("scene__order")
    return first, second


def test_a_redrawn_reference_is_a_new_take_and_its_scenes_keyframes_go_stale(api, user):
    project, lamp = storyboard_with_a_lamp(api, user)
    old_take, old_bytes = lamp.take, read(lamp.image)
    quote = api.post(REDRAW, {"object_id": lamp.pk, "dry_run": True}, format="json")
    assert (
        quote.status_code == 200 and quote.json()["estimate"]["items"][0]["stage"] == "references"
    )
    assert not Job.objects.filter(type="reference-generation", status="queued").exists()

    body = {"object_id": lamp.pk, "instructions": "greener patina"}
    response = api.post(REDRAW, body, format="json")
    assert response.status_code == 202, response.content
    assert response.json()["type"] == "reference-generation"
    drain()
    lamp.refresh_from_db()
    take = lamp.take
    assert take.pk != old_take.pk and take.kind == Take.Kind.REFERENCE
    assert take.instructions == "greener patina" and "greener patina" in take.prompt
    assert read(lamp.image) != old_bytes  # a new seed: another drawing, not the same one
    takes = api.get(f"/api/objects/{lamp.pk}/takes").json()["results"]
    assert [(t["id"], t["current"]) for t in takes] == [(take.pk, True), (old_take.pk, False)]

    with_lamp, without = frames_of(project)
    stale = {(u["type"], u["id"]): u["reasons"] for u in project_stale_units(project)}
    assert stale == {("keyframe", with_lamp.pk): ["the scene's objects changed"]}
    assert ("keyframe", without.pk) not in stale
    # the old take made current again: nothing is stale any more
    assert api.post(f"/api/takes/{old_take.pk}/select").status_code == 200
    assert project_stale_units(project) == []


def test_an_edited_reference_is_the_old_image_recoloured_and_its_keyframes_go_stale(api, user):
    project, lamp = storyboard_with_a_lamp(api, user)
    old_take, old_bytes = lamp.take, read(lamp.image)
    quote = api.post(EDIT, {"object_id": lamp.pk, "instruction": "x", "dry_run": True},
                     format="json")  # fmt: skip
    assert quote.status_code == 200 and quote.json()["estimate"]["items"][0]["stage"] == "edits"

    body = {"object_id": lamp.pk, "instruction": "paint it green"}
    response = api.post(EDIT, body, format="json")
    assert response.status_code == 202, response.content
    drain()
    job = Job.objects.get(pk=response.json()["id"])
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert (job.target_type, job.target_id) == ("object", lamp.pk)
    lamp.refresh_from_db()
    take = lamp.take
    assert take.pk != old_take.pk and take.kind == Take.Kind.REFERENCE and take.object == lamp
    assert take.prompt == "Edit this image: paint it green; keep everything else."
    result = job.result
    assert (result["object_id"], result["edited_take_id"]) == (lamp.pk, old_take.pk)
    assert result["take_ids"] == [take.pk]
    edited, before = pixels(read(take.file)), pixels(old_bytes)
    assert edited.size == before.size
    r, g, b = before.getpixel((10, 10))
    assert edited.getpixel((10, 10)) == (b, r, g) != (r, g, b)  # the channels rotated

    with_lamp, _ = frames_of(project)
    stale = {(u["type"], u["id"]): u["reasons"] for u in project_stale_units(project)}
    assert stale == {("keyframe", with_lamp.pk): ["the scene's objects changed"]}
    # redrawing the keyframe takes the edited image with it
    assert api.post("/api/jobs/keyframe-generation", {"frame_id": with_lamp.pk},
                    format="json").status_code == 202  # fmt: skip
    drain()
    with_lamp.refresh_from_db()
    assert with_lamp.keyframe_take.inputs["objects"] == {
        str(lamp.pk): {"name": "Brass lamp", "take": take.pk}
    }
    assert project_stale_units(project) == []


def test_an_object_without_an_image_or_with_a_job_on_it_is_409(api, user):
    project = ProjectFactory(owner=user)
    response = api.post(f"/api/projects/{project.pk}/objects", {"name": "Oar"}, format="json")
    oar = response.json()["id"]  # its reference job queued, not drained: no image yet
    refused = api.post(EDIT, {"object_id": oar, "instruction": "x"}, format="json")
    assert refused.status_code == 409 and "no reference image yet" in refused.json()["detail"]
    busy = api.post(REDRAW, {"object_id": oar}, format="json")
    assert busy.status_code == 409 and "reference-generation" in busy.json()["detail"]
    assert Job.objects.filter(project=project).count() == 1
    drain()
    first = ProjectObject.objects.get(pk=oar).take_id
    assert api.post(REDRAW, {"object_id": oar}, format="json").status_code == 202
    drain()
    second = ProjectObject.objects.get(pk=oar).take_id
    assert second != first
    assert api.post(EDIT, {"object_id": oar, "instruction": "x"}, format="json").status_code == 202
    # an edit queued: neither a redraw, another edit nor going back to a take while it runs
    assert api.post(REDRAW, {"object_id": oar}, format="json").status_code == 409
    assert api.post(EDIT, {"object_id": oar, "instruction": "y"}, format="json").status_code == 409
    refused = api.post(f"/api/takes/{first}/select")
    assert refused.status_code == 409 and "image-edit" in refused.json()["detail"], refused.content
    assert ProjectObject.objects.get(pk=oar).take_id == second
    drain()
    assert api.post(f"/api/takes/{first}/select").status_code == 200
    assert ProjectObject.objects.get(pk=oar).take_id == first


@pytest.mark.parametrize(
    "body",
    [
        {"instruction": ""},
        {"instruction": "  "},
        {"instruction": "x" * 2001},
        {"instruction": "x", "character_id": 1},
        {"instruction": "x", "object_id": "1"},
    ],
)
def test_bad_object_edits_are_400_and_start_nothing(api, user, body):
    project = ProjectFactory(owner=user)
    obj = ProjectObject.objects.create(project=project, name="Lamp", image="objects/x.png")
    response = api.post(EDIT, {"object_id": obj.pk, **body}, format="json")
    assert response.status_code == 400, response.content
    assert not Job.objects.exists()


def test_bad_redraws_are_400_and_start_nothing(api, user):
    project = ProjectFactory(owner=user)
    obj = ProjectObject.objects.create(project=project, name="Lamp", image="objects/x.png")
    for body in ({}, {"object_id": obj.pk, "instructions": "x" * 2001}, {"object_id": True}):
        assert api.post(REDRAW, body, format="json").status_code == 400, body
    assert not Job.objects.exists()


def test_another_users_object_is_404(api, user, django_user_model):
    stranger = django_user_model.objects.create_user("stranger", password="pw-for-tests-only")
    obj = ProjectObject.objects.create(
        project=ProjectFactory(owner=stranger), name="Lamp", image="objects/x.png"
    )
    assert (
        api.post(EDIT, {"object_id": obj.pk, "instruction": "x"}, format="json").status_code == 404
    )
    assert api.post(REDRAW, {"object_id": obj.pk}, format="json").status_code == 404
    assert api.get(f"/api/objects/{obj.pk}/takes").status_code == 404
    assert not Job.objects.exists()


def test_the_openapi_schema_documents_object_edits_and_redraws(api):
    schema = api.get("/api/schema", HTTP_ACCEPT="application/json").json()
    edit = schema["components"]["schemas"]["ImageEditRequestRequest"]["properties"]
    assert {"character_id", "frame_id", "object_id"} <= set(edit)
    assert "beyond the v2 contract" in edit["object_id"]["description"]
    redraw = schema["paths"]["/api/jobs/reference-generation"]["post"]["requestBody"]
    assert redraw["content"]["application/json"]["schema"]["$ref"].endswith(
        "/ReferenceJobRequestRequest"
    )
    assert (
        "object_id" in schema["components"]["schemas"]["ReferenceJobRequestRequest"]["properties"]
    )


def test_a_failed_drawing_is_retried_unless_a_job_works_on_the_object(api, user):
    project = ProjectFactory(owner=user)
    response = api.post(f"/api/projects/{project.pk}/objects", {"name": "Oar"}, format="json")
    drain()
    oar = ProjectObject.objects.get(pk=response.json()["id"])
    failed = JobFactory(project=project, type="reference-generation", target_type="object",
                        target_id=oar.pk, status="failed")  # fmt: skip
    assert (
        api.post(EDIT, {"object_id": oar.pk, "instruction": "x"}, format="json").status_code == 202
    )
    refused = api.post(f"/api/jobs/{failed.pk}/retry")
    assert refused.status_code == 409 and "image-edit" in refused.json()["detail"]
    drain()
    assert api.post(f"/api/jobs/{failed.pk}/retry").status_code == 202
    drain()
    failed.refresh_from_db()
    assert failed.status == Job.Status.SUCCEEDED, failed.error


def test_a_redraws_quote_admission_and_reservation_count_its_instructions(api, user, gemini):
    """The instructions go into the redraw's prompt (up to 2000 characters): its quote, the
    budget's admission and the job's reservation price them too."""
    project = ProjectFactory(owner=user)
    lamp = ProjectObject.objects.create(project=project, name="Lamp", image="objects/x.png")
    plain, told = {"object_id": lamp.pk}, {"object_id": lamp.pk, "instructions": "x" * 2000}

    def quote(body: dict) -> dict:
        response = api.post(REDRAW, {**body, "dry_run": True}, format="json")
        assert response.status_code == 200, response.content
        return response.json()["estimate"]

    cheap, dear = quote(plain)["total_usd"], quote(told)["total_usd"]
    assert dear > cheap > 0
    # what is left of the budget is between the two: the plain redraw fits, the told one not
    left = Decimal(str((cheap + dear) / 2)).quantize(Decimal("0.000001"))
    Project.objects.filter(pk=project.pk).update(budget_usd=1, spent_usd=1 - left)
    refused = api.post(REDRAW, told, format="json")
    assert refused.status_code == 409 and "budget" in refused.json()["detail"], refused.content
    assert not Job.objects.exists()
    Project.objects.filter(pk=project.pk).update(budget_usd=None)
    response = api.post(REDRAW, told, format="json")
    assert response.status_code == 202, response.content
    job = Job.objects.get(pk=response.json()["id"])
    assert float(sum(i.usd for i in job_items(job))) == pytest.approx(dear)  # what it reserves


def test_a_redraw_of_an_object_deleted_meanwhile_is_409_and_instructions_always_go_along(user):
    project = ProjectFactory(owner=user)
    lamp = ProjectObject.objects.create(project=project, name="Lamp", image="objects/x.png")
    job = start_reference_generation(obj=lamp, instructions="greener")  # not a redraw
    assert job.params == {"instructions": "greener"}  # (they were dropped: the job drew without)
    Job.objects.filter(pk=job.pk).update(status=Job.Status.SUCCEEDED)
    assert start_reference_generation(obj=lamp, redraw=True).params == {"redraw": True}
    Job.objects.update(status=Job.Status.SUCCEEDED)
    ProjectObject.objects.filter(pk=lamp.pk).delete()  # after the request found it
    with pytest.raises(ConflictError, match=f"Object {lamp.pk} no longer exists"):
        start_reference_generation(obj=lamp, redraw=True)
    assert Job.objects.count() == 2
