"""Character consistency on the storyboard in a real browser (issue 17): each keyframe carries a
badge with the judge's score from the API, its tooltip names every character in the shot with
their score and issues, a flagged keyframe says so, and a scene given the whole cast by
fallback says that too (uvicorn and an RQ worker underneath; the offline judge scores)."""

import pytest
from django.contrib.auth import get_user_model

from generation import services as generation
from generation.pipeline import start_character_generation
from projects.models import Character, Frame, Project, Scene, Take
from projects.services import project_create
from tests.pages.conftest import PASSWORD, login, screenshot, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """The server checks passwords with the default hashers, so users are hashed with one."""


@pytest.fixture
def storyboard(stack) -> Project:
    """A 1x2 storyboard of two characters, drawn and scored by the worker, stopped before clips."""
    owner = get_user_model().objects.create_user(username="ines", password=PASSWORD)
    project = project_create(
        owner=owner,
        title="Salt Flats",
        num_scenes=1,
        frames_per_scene=2,
        clip_seconds=2,
        checkpoints=["cast", "storyboard"],
    )
    Project.objects.filter(pk=project.pk).update(min_consistency=0.5)  # scored against a bar
    start_character_generation(project=project, count=2)
    wait_until(
        lambda: project.characters.filter(status=Character.Status.PENDING).count() == 2,
        message="the characters were not drawn",
        stack=stack,
    )
    for character in project.characters.all():
        generation.character_approve(character=character)
    wait_until(
        lambda: (
            Project.objects.get(pk=project.pk).status == Project.Status.AWAITING_STORYBOARD_APPROVAL
        ),
        timeout=60,
        message="the storyboard was not drawn",
        stack=stack,
    )
    return project


def api_frames(page, project: Project) -> list[dict]:
    data = page.evaluate(
        "async (id) => (await (await fetch(`/api/projects/${id}`)).json())", project.pk
    )
    return [f for s in data["scenes"] for f in s["frames"]]


def test_the_storyboard_shows_each_keyframes_consistency_and_who_is_in_it(page, storyboard):
    names = dict(storyboard.characters.values_list("pk", "name"))
    login(page, "ines", next_url=f"/studio/?project={storyboard.pk}")
    page.wait_for_selector("#frame-list .consistency >> nth=1")
    frames = api_frames(page, storyboard)
    assert len(frames) == 2
    for f in frames:
        verdict = f["consistency"]
        assert verdict is not None and verdict["checked_by"].startswith("local:")
        badge = page.locator(f"#frame-{f['id']} .keyframe .consistency")
        assert badge.text_content() == f"{round(verdict['score'] * 100)} %"
        assert badge.get_attribute("data-consistency") == "pass"
        title = badge.get_attribute("title")
        in_shot = f["character_ids"] or sorted(names)
        assert [r["character_id"] for r in verdict["per_character"]] == in_shot
        for row in verdict["per_character"]:
            assert f"{names[row['character_id']]} {round(row['score'] * 100)} %" in title
        shown = page.locator(f"#frame-{f['id']} .in-shot").text_content()
        assert all(names[pk] in shown for pk in in_shot)
    screenshot(page, "40-studio-consistency-badges")

    # A keyframe whose best try stayed below the threshold is flagged, with the judge's issues.
    first = Frame.objects.filter(scene__project=storyboard).order_by("order").first()
    take = Take.objects.get(pk=first.keyframe_take_id)
    row = take.consistency["per_character"][0]
    row.update(score=0.31, issues=["hair is grey, not black"])
    take.consistency.update(score=0.31, flagged=True, tries=3)
    take.save(update_fields=["consistency"])
    Scene.objects.filter(project=storyboard).update(cast_fallback=True)
    page.reload()
    flagged = page.locator(f"#frame-{first.pk} .consistency[data-consistency='flagged']")
    flagged.wait_for()
    assert flagged.text_content() == "31 % · flagged"
    title = flagged.get_attribute("title")
    assert f"{row['name']} 31 %: hair is grey, not black" in title
    assert "Best of 3 tries" in title
    assert page.locator(".scene .cast-fallback").count() == 1
    assert page.locator(".consistency[data-consistency='flagged']").count() == 1
    screenshot(page, "41-studio-consistency-flagged")
    assert page.console_errors == []
