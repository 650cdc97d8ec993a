"""Scene generation proposes each scene's objects (issue 15): the scene plan is asked with the
project's objects listed and an enum of their names per scene; names a model paraphrases are
matched, unknown ones dropped (never made into objects); offline, the objects the story mentions
are proposed; the producer edits them afterwards (PATCH object_ids)."""

import pytest

from generation import services
from generation.models import GenerationJob
from generation.prompts import scenes_prompt
from generation.providers.local import LocalText
from generation.schemas import ScenePlan
from projects.cast import match_names
from projects.models import Project, ProjectObject, Scene
from projects.takes import project_stale_units
from tests.factories import ProjectFactory
from tests.fakes.gemini_server import UNLISTED_OBJECT
from tests.generation.test_consistency import response_schema
from tests.pipeline import drain

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def offline_media(settings):
    settings.VIDEO_PROVIDER = "local"
    settings.SPEECH_PROVIDER = "local"


def with_objects(api, project: Project, *names: str) -> list[int]:
    ids = []
    for name in names:
        body = {"name": name, "description": f"the film's {name.lower()}"}
        response = api.post(f"/api/projects/{project.pk}/objects", body, format="json")
        assert response.status_code == 201, response.content
        ids.append(response.json()["id"])
    return ids


def scenes_of(api, project: Project, count: int = 1) -> list[dict]:
    body = {"project_id": project.pk, "count": count}
    assert api.post("/api/jobs/character-generation", body, format="json").status_code == 202
    drain()
    for character in project.characters.all():
        assert api.post(f"/api/characters/{character.pk}/approve").status_code == 200
    drain()
    assert not GenerationJob.objects.filter(status="failed").exists()
    return api.get(f"/api/projects/{project.pk}").json()["scenes"]


def test_objects_are_matched_by_the_names_a_model_uses_and_unknown_ones_dropped(user):
    project = ProjectFactory(owner=user)
    lamp = ProjectObject.objects.create(project=project, name="Brass lamp")
    gallery = ProjectObject.objects.create(project=project, name="Lighthouse gallery")
    objects = [lamp, gallery]
    assert match_names(["Brass lamp"], objects) == [lamp]
    assert match_names(["the BRASS LAMP", "gallery", "lamp"], objects) == [lamp, gallery]
    assert match_names(["a wooden crate", "", "the"], objects) == []


def test_names_are_matched_by_whole_words_and_the_longest_name_wins(user):
    project = ProjectFactory(owner=user)
    key = ProjectObject.objects.create(project=project, name="Key")
    chart = ProjectObject.objects.create(project=project, name="Map")
    # a name inside another word is not that name
    assert match_names(["the monkey cage", "a mapmaker's desk"], [key, chart]) == []
    assert match_names(["the rusty key", "MAP."], [key, chart]) == [key, chart]
    lamp = ProjectObject.objects.create(project=project, name="Lamp")
    brass = ProjectObject.objects.create(project=project, name="Brass lamp")
    oil = ProjectObject.objects.create(project=project, name="Oil lamp")
    # both "Lamp" and "Brass lamp" are in "the brass lamp": the one that says more is meant
    assert match_names(["the brass lamp"], [lamp, brass]) == [brass]
    assert match_names(["lamp"], [lamp, brass]) == [lamp]  # exact
    assert match_names(["the lamp"], [brass, oil]) == []  # which one? nobody
    assert match_names(["the old lamp"], [lamp, brass, oil]) == [lamp]


def test_the_scene_plan_lists_the_objects_and_names_them_from_an_enum(user):
    project = ProjectFactory(owner=user, synopsis="Line one.\nLine two.")
    ProjectObject.objects.create(project=project, name="Brass lamp", description="dented\n- x (y)")
    objects = list(project.project_objects.all())
    prompt = scenes_prompt(project, [], objects)
    # one line per object, never read as a cast member's line ("- Name (role)")
    assert "\n* Brass lamp: dented - x (y)\n" in prompt
    schema = ScenePlan.for_cast(["Mara Vance"], ["Brass lamp", "Brass lamp"]).model_json_schema()
    draft = schema["$defs"]["SceneDraft"]
    assert draft["properties"]["objects"]["items"]["enum"] == ["Brass lamp"]
    assert "objects" in draft["required"]
    # without objects the plan is the one it always was: no objects asked for
    plain = ScenePlan.for_cast(["Mara Vance"]).model_json_schema()
    assert "objects" not in plain["$defs"]["SceneDraft"]["properties"]
    assert "Objects and places" not in scenes_prompt(project, [], [])


def test_offline_each_scene_gets_the_objects_its_part_of_the_story_mentions(api, user, settings):
    settings.TEXT_PROVIDER = settings.IMAGE_PROVIDER = "local"
    project = ProjectFactory(
        owner=user,
        num_scenes=3,
        frames_per_scene=1,
        clip_seconds=2,
        checkpoints=["cast", "storyboard"],
        logline="A keeper and her old sea chest.",
        synopsis="She finds a brass lamp in the attic. The storm rises. "
        "At the lighthouse gallery she lights the lamp.",
    )
    lamp, gallery, chest, oar = with_objects(
        api, project, "Brass lamp", "Lighthouse gallery", "Sea chest", "Broken oar"
    )
    scenes = scenes_of(api, project)
    # the logline's chest is in every scene; the synopsis's sentences one per scene, in order
    assert [s["object_ids"] for s in scenes] == [
        sorted([lamp, chest]),
        [chest],
        sorted([lamp, gallery, chest]),
    ]
    assert oar not in {pk for s in scenes for pk in s["object_ids"]}  # never mentioned
    assert "Brass lamp" in scenes[0]["detailed_plot"]
    # and the keyframes of the scenes got their objects' images
    assert project_stale_units(project) == []

    # the same story, the same proposal (deterministic)
    again = LocalText()._answer(
        scenes_prompt(project, [], list(project.project_objects.all())),
        ScenePlan.for_cast([], ["Brass lamp", "Sea chest"]).sized(3),
    )
    assert [d.objects for d in again.scenes] == [
        ["Brass lamp", "Sea chest"],
        ["Sea chest"],
        ["Brass lamp", "Sea chest"],
    ]


def test_a_project_without_objects_gets_scenes_without_objects(api, user, settings):
    settings.TEXT_PROVIDER = settings.IMAGE_PROVIDER = "local"
    project = ProjectFactory(owner=user, num_scenes=2, frames_per_scene=1, clip_seconds=2,
                             synopsis="A lamp.", checkpoints=["cast", "storyboard"])  # fmt: skip
    assert [s["object_ids"] for s in scenes_of(api, project)] == [[], []]


def test_through_the_sdk_the_plan_carries_the_enum_and_paraphrases_land_on_the_right_object(
    api, user, gemini
):
    project = ProjectFactory(
        owner=user, num_scenes=3, frames_per_scene=1, clip_seconds=2,
        checkpoints=["cast", "storyboard"],
    )  # fmt: skip
    lamp, gallery = with_objects(api, project, "Brass lamp", "Lighthouse gallery")
    scenes = scenes_of(api, project)

    (request,) = [r for r in gemini.requests if "scenes" in str(response_schema(r.body))]
    schema = str(response_schema(request.body))
    assert "'enum': ['Brass lamp', 'Lighthouse gallery']" in schema
    assert "* Brass lamp: the film's brass lamp" in str(request.body)
    # the fake: scene 1 names the lamp as listed, scene 2 "the lighthouse gallery", scene 3
    # the lamp and an object nobody listed
    assert [s["object_ids"] for s in scenes] == [[lamp], [gallery], [lamp]]
    assert ProjectObject.objects.count() == 2
    assert not ProjectObject.objects.filter(name__icontains=UNLISTED_OBJECT[:8]).exists()

    # editable afterwards: the producer's choice replaces the proposal
    first = Scene.objects.get(pk=scenes[0]["id"])
    url = f"/api/scenes/{first.pk}"
    response = api.patch(url, {"object_ids": [gallery, lamp]}, format="json")
    assert response.status_code == 200 and response.json()["object_ids"] == [lamp, gallery]
    stale = {(u["type"], u["id"]): u["reasons"] for u in project_stale_units(project)}
    (frame,) = first.frames.all()
    assert stale[("keyframe", frame.pk)] == ["the scene's objects changed"]


def test_an_object_deleted_while_the_scenes_are_written_is_not_listed(
    api, user, settings, monkeypatch
):
    settings.TEXT_PROVIDER = settings.IMAGE_PROVIDER = "local"
    project = ProjectFactory(owner=user, num_scenes=1, frames_per_scene=1, clip_seconds=2,
                             synopsis="A lamp.", checkpoints=["cast", "storyboard"])  # fmt: skip
    (lamp,) = with_objects(api, project, "Brass lamp")
    real = LocalText.generate_json

    def delete_then_answer(self, **kwargs):
        answer = real(self, **kwargs)
        if "scenes" in kwargs["schema"].model_fields:
            services.object_delete(obj=ProjectObject.objects.get(pk=lamp))
        return answer

    monkeypatch.setattr(LocalText, "generate_json", delete_then_answer)
    scenes = scenes_of(api, project)
    assert not ProjectObject.objects.exists()
    assert [s["object_ids"] for s in scenes] == [[]]
