"""Prompts inherit their context from the database: project -> approved cast -> scene -> frame."""

import pytest

from generation import prompts
from tests.factories import CharacterFactory, FrameFactory, ProjectFactory, SceneFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def project():
    return ProjectFactory(
        title="The Keeper",
        logline="A keeper befriends a storm",
        genre="drama",
        style="35mm, muted",
        num_scenes=4,
        frames_per_scene=3,
        clip_seconds=6,
        aspect_ratio="9:16",
    )


def test_the_brief_carries_every_project_field_that_is_set(project):
    brief = prompts.project_brief(project)
    for text in ("The Keeper", "A keeper befriends a storm", "drama", "35mm, muted", "9:16"):
        assert text in brief
    assert "Synopsis" not in brief  # empty fields are left out


def test_the_cast_prompt_asks_for_the_count_and_keeps_the_approved(project):
    kept = CharacterFactory(project=project, name="Mara Vance", status="approved")
    text = prompts.cast_prompt(project, count=3, instructions="one child", keep=[kept])
    assert "Create 3 new characters" in text
    assert "Mara Vance" in text and "do not repeat" in text
    assert "one child" in text


def test_only_approved_characters_reach_the_scenes(project):
    CharacterFactory(project=project, name="Kept", status="approved")
    CharacterFactory(project=project, name="Dropped", status="rejected")
    CharacterFactory(project=project, name="Undecided", status="pending")
    text = prompts.scenes_prompt(project, prompts.approved_cast(project))
    assert "- Kept (" in text
    assert "Dropped" not in text and "Undecided" not in text
    assert "exactly 4 scenes" in text and "3 shots of 6 seconds" in text


def test_frames_and_keyframes_inherit_the_scene(project):
    hero = CharacterFactory(project=project, name="Mara", appearance="red scarf", status="approved")
    scene = SceneFactory(
        project=project,
        title="Night watch",
        location="the lamp room",
        mood="tense",
        detailed_plot="The storm breaks the glass.",
    )
    text = prompts.frames_prompt(scene, [hero])
    assert "Night watch" in text and "the lamp room" in text and "storm breaks" in text
    assert "exactly 3 shots of 6 seconds" in text and "red scarf" in text
    frame = FrameFactory(scene=scene, prompt="Glass shatters", camera="close-up", dialogue="Hold!")
    keyframe = prompts.keyframe_prompt(frame, [hero])
    assert all(t in keyframe for t in ("Glass shatters", "close-up", "Mara", "35mm", "9:16"))
    video = prompts.video_prompt(frame)
    assert "Glass shatters" in video and "Dialogue: Hold!" in video and "tense" in video


def test_a_portrait_prompt_describes_the_character(project):
    hero = CharacterFactory(project=project, name="Mara", role="keeper", appearance="grey eyes")
    text = prompts.portrait_prompt(hero, project)
    assert "Mara" in text and "keeper" in text and "grey eyes" in text and "35mm" in text
