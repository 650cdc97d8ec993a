"""Characters stay consistent by construction: scene and shot plans name the cast from an enum of
it, every keyframe request carries the portraits of exactly the characters in the shot (and an
earlier shot of the scene), read off the requests the fake Gemini received through the real SDK.
The fake answers like a model: given free strings it writes first names only."""

import pytest

from generation.consistency import local_verdict
from generation.providers.local import LocalImage
from generation.schemas import SceneDraft
from generation.steps.scenes import present_cast
from projects.cast import match_names, shot_cast
from projects.models import Character, Frame, Project
from tests.factories import CharacterFactory, ProjectFactory
from tests.fakes.gemini_server import FakeGemini
from tests.generation.images import inline_images, read
from tests.pipeline import drain

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def local_video(settings):
    settings.VIDEO_PROVIDER = "local"
    settings.SPEECH_PROVIDER = "local"


def response_schema(body: dict) -> dict:
    config = body.get("generationConfig") or {}
    return config.get("responseJsonSchema") or config.get("responseSchema") or {}


def film_through_the_fake(api, user, *, reject: int = 0) -> Project:
    project = ProjectFactory(owner=user, num_scenes=2, frames_per_scene=3, clip_seconds=2)
    body = {"project_id": project.pk, "count": 3}
    assert api.post("/api/jobs/character-generation", body, format="json").status_code == 202
    drain()
    cast = list(project.characters.order_by("id"))
    for character in cast[:reject]:
        api.post(f"/api/characters/{character.pk}/reject", {"reason": "no"}, format="json")
    for character in cast[reject:]:
        assert api.post(f"/api/characters/{character.pk}/approve").status_code == 200
    drain()
    project.refresh_from_db()
    assert project.status == Project.Status.COMPLETE, project.status
    return project


def test_every_keyframe_request_carries_the_portraits_of_the_characters_in_its_shot(
    api, user, gemini
):
    project = film_through_the_fake(api, user, reject=1)
    rejected = project.characters.get(status=Character.Status.REJECTED)
    approved = list(project.characters.filter(status=Character.Status.APPROVED).order_by("id"))
    # the plans were asked with an enum of the approved cast, the rejected one not in it
    scene_request = next(r for r in gemini.requests if "scenes" in str(response_schema(r.body)))
    assert str([c.name for c in approved])[1:-1] in str(response_schema(scene_request.body))
    assert rejected.name not in str(response_schema(scene_request.body))

    portraits = {c.pk: read(c.image) for c in approved}
    rejected_portrait = read(rejected.image)
    image_requests = [r for r in gemini.requests if r.kind == "image" and "Keyframe" in str(r.body)]
    frames = list(Frame.objects.filter(scene__project=project).order_by("scene__order", "order"))
    assert len(image_requests) == len(frames) == 6
    checked = 0
    for frame in frames:
        request = next(r for r in image_requests if f"shot {frame.order} of scene '" in str(r.body)
                       and frame.scene.title in str(r.body))  # fmt: skip
        sent = inline_images(request.body)
        in_shot = shot_cast(frame)
        assert in_shot, "every shot of this film shows someone"
        assert sent[: len(in_shot)] == [portraits[c.pk] for c in in_shot]
        assert rejected_portrait not in sent
        # an earlier shot of the same scene comes last (the first shot has none)
        assert len(sent) == len(in_shot) + (frame.order > 1)
        if frame.order > 1:
            earlier = Frame.objects.get(scene=frame.scene, order=1)
            assert sent[-1] == read(earlier.keyframe_take.file)
        checked += 1
    assert checked == 6


def test_a_scene_named_by_nicknames_or_by_nobody_still_gets_its_cast(user, gemini, settings):
    project = ProjectFactory(owner=user)
    mara = CharacterFactory(project=project, name="Mara Vance", status="approved")
    elias = CharacterFactory(project=project, name="Elias Okafor", status="approved")
    cast = [mara, elias]
    draft = SceneDraft.model_validate(
        {
            "title": "Night",
            "concise_plot": "Mara waits.",
            "detailed_plot": "Mara waits for Okafor at the lamp.",
            "dialogue": "Mara: He is late.",
            "location": "lamp room",
            "mood": "tense",
            "characters": [],
        }
    )
    from generation.providers import text_provider  # noqa: PLC0415 (the configured one)

    # a model ignoring the enum's spelling: first names and surnames alone are still theirs
    assert match_names(["mara", "Okafor", "Somebody"], cast) == [mara, elias]
    # named nobody though the text speaks of them: asked once more, from the cast's names
    asked = gemini.count(kind="text")
    present, fallback = present_cast(text_provider(), draft, cast)
    assert gemini.count(kind="text") == asked + 1
    assert present and set(present) <= set(cast) and fallback is False
    question = [r for r in gemini.requests if r.kind == "text"][-1]
    assert "enum" in str(response_schema(question.body))
    # and when the answer still names nobody, the whole cast is in it, and it says so
    gemini.respond_json({"characters": []})
    present, fallback = present_cast(text_provider(), draft, cast)
    assert (present, fallback) == (cast, True)


def test_a_close_up_gets_one_portrait_and_the_shot_plan_names_from_the_scene(api, user, gemini):
    project = film_through_the_fake(api, user)
    frame = Frame.objects.filter(scene__project=project).order_by("scene__order", "order")[1]
    one = shot_cast(frame)[0]
    frame.characters.set([one])
    before = len(gemini.requests)
    body = {"frame_id": frame.pk}
    assert api.post("/api/jobs/keyframe-generation", body, format="json").status_code == 202
    drain()
    (request,) = [r for r in gemini.requests[before:] if r.kind == "image"]
    sent = inline_images(request.body)
    assert sent[0] == read(one.image) and len(sent) == 2  # the portrait, then the earlier shot
    assert "reference image 1 is " + one.name in str(request.body)
    shot_list = next(r for r in gemini.requests if "frames" in str(response_schema(r.body)))
    scene_names = [c.name for c in frame.scene.characters.all()]
    assert all(name in str(response_schema(shot_list.body)) for name in scene_names)
    assert frame.scene.cast_fallback is False


def test_the_fake_writes_first_names_when_the_schema_lets_it():
    """The untidy model the enum protects against (what made every scene castless before)."""
    with FakeGemini() as fake:
        import httpx  # noqa: PLC0415 (this test only)

        body = {
            "contents": [{"parts": [{"text": "Cast:\n- Mara Vance (keeper): x\n"}]}],
            "generationConfig": {
                "responseMimeType": "application/json",
                "responseJsonSchema": {
                    "type": "object",
                    "properties": {"characters": {"type": "array", "items": {"type": "string"}}},
                },
            },
        }
        answer = httpx.post(f"{fake.url}/v1beta/models/m:generateContent", json=body).json()
    text = answer["candidates"][0]["content"]["parts"][0]["text"]
    assert '"Mara"' in text and "Mara Vance" not in text


# --- the score of each keyframe, and a redraw below the threshold ----------------------------


def test_the_offline_judge_tells_a_keyframe_drawn_with_the_portrait_from_one_without(user):
    project = ProjectFactory(owner=user)
    mara = CharacterFactory(project=project, name="Mara Vance", status="approved")
    painter = LocalImage()
    portrait = painter.generate_image(prompt="Mara", references=[], aspect_ratio="1:1", seed=1)
    other = painter.generate_image(prompt="Elias", references=[], aspect_ratio="1:1", seed=9)
    args = {"prompt": "Shot. Mara at the lamp.", "aspect_ratio": "16:9", "seed": 3}
    faithful = painter.generate_image(references=[portrait], **args)
    wrong = painter.generate_image(references=[other], **args)
    without = painter.generate_image(references=[], **args)
    assert local_verdict(faithful, [mara], [portrait]).score == 1.0
    assert local_verdict(wrong, [mara], [portrait]).score < 0.9
    low = local_verdict(without, [mara], [portrait])
    assert low.score < 0.9 and low.per_character[0]["issues"]
    assert low.checked_by.startswith("local") and "stand-in" in low.checked_by


def test_every_keyframe_shows_its_score_in_the_api(api, user, settings):
    settings.TEXT_PROVIDER = settings.IMAGE_PROVIDER = "local"
    project = ProjectFactory(owner=user, num_scenes=1, frames_per_scene=2, clip_seconds=2)
    assert (
        api.post(
            "/api/jobs/character-generation", {"project_id": project.pk, "count": 2}, format="json"
        ).status_code
        == 202
    )
    drain()
    for character in project.characters.all():
        api.post(f"/api/characters/{character.pk}/approve")
    drain()
    doc = api.get(f"/api/projects/{project.pk}").json()
    for frame in doc["scenes"][0]["frames"]:
        verdict = frame["consistency"]
        in_shot = frame["character_ids"] or doc["scenes"][0]["character_ids"]
        assert verdict["score"] == 1.0 and verdict["flagged"] is False
        assert {c["character_id"] for c in verdict["per_character"]} == set(in_shot)


def test_a_keyframe_scored_below_the_threshold_is_redrawn_with_the_judges_issues(
    api, user, gemini, settings
):
    project = film_through_the_fake(api, user)
    project.min_consistency = 0.8
    project.save(update_fields=["min_consistency"])
    frame = Frame.objects.filter(scene__project=project).order_by("scene__order", "order")[0]
    cast = shot_cast(frame)
    low = {
        "characters": [
            {"name": c.name, "score": 0.3, "issues": ["hair is red, not grey"]} for c in cast
        ]
    }
    # the judge's first verdict; the next ones are the fake's (1.0 for each character)
    gemini.respond_json(low, model=settings.GEMINI_TEXT_MODEL)
    before = len(gemini.requests)
    body = {"frame_id": frame.pk}
    assert api.post("/api/jobs/keyframe-generation", body, format="json").status_code == 202
    drain()
    images = [r for r in gemini.requests[before:] if r.kind == "image"]
    judged = [r for r in gemini.requests[before:] if r.kind == "text"]
    assert len(images) == 2 and len(judged) == 2  # drawn, judged low, drawn again, judged
    assert "hair is red, not grey" in str(images[1].body)
    assert "hair is red" not in str(images[0].body)
    assert len(inline_images(judged[0].body)) == 1 + len(cast)  # the keyframe, the portraits
    frame.refresh_from_db()
    takes = list(frame.takes.filter(kind="keyframe").order_by("-pk")[:2])
    current = frame.keyframe_take
    assert current.consistency["score"] == 1.0 and current.consistency["tries"] == 2
    assert current.consistency["flagged"] is False
    older = next(t for t in takes if t.pk != current.pk)
    assert older.consistency["score"] == 0.3
    assert older.consistency["per_character"][0]["issues"] == ["hair is red, not grey"]
    shown = api.get(f"/api/frames/{frame.pk}/takes?kind=keyframe").json()["results"]
    assert [t["current"] for t in shown[:2]] == [True, False]
    # the judge's calls are paid for with the keyframe
    assert current.cost_usd > 0


@pytest.mark.parametrize("bad", [-0.1, 1.5, "0.5", True])
def test_min_consistency_is_a_number_from_0_to_1_or_null(api, user, bad):
    project = ProjectFactory(owner=user)
    url = f"/api/projects/{project.pk}"
    assert api.patch(url, {"min_consistency": bad}, format="json").status_code == 400
    assert (
        api.patch(url, {"min_consistency": 0.75}, format="json").json()["min_consistency"] == 0.75
    )
    assert (
        api.patch(url, {"min_consistency": None}, format="json").json()["min_consistency"] is None
    )
