"""How the local director reads a message (pure functions, no database)."""

import pytest

from director.agents.local import Intent, UnitRequest, parse


@pytest.mark.parametrize(
    ("message", "intent"),
    [
        ("go to scenes", Intent("navigate", "scenes")),
        ("Take me to the storyboard please", Intent("navigate", "storyboard")),
        ("open the project page", Intent("navigate", "project")),
        ("show me the cast", Intent("navigate", "characters")),
        ("highlight the approve button", Intent("highlight", "approve button")),
        ("I want a new project", Intent("new_project")),
        ("approve all", Intent("approve_all")),
        ("Approve the whole cast!", Intent("approve_all")),
        ("approve Mara and Elias", Intent("approve", "Mara and Elias")),
        ("reject Elias because he is too young", Intent("reject", "Elias", "he is too young")),
        ("reject Noor", Intent("reject", "Noor")),
        ("retry job 12", Intent("retry", "12")),
        ("retry", Intent("retry")),
        ("cancel it", Intent("cancel")),
        ("stitch the film", Intent("stitch")),
        ("rename it to The Keeper", Intent("rename", "The Keeper")),
        ('call it "Storm Warning"', Intent("rename", "Storm Warning")),
        ("what's the status?", Intent("status")),
        ("show me the status", Intent("status")),
        ("how is it going", Intent("status")),
        ("list my projects", Intent("list_projects")),
        ("generate the scenes", Intent("generate", "scenes")),
        ("make the clips", Intent("generate", "videos")),
        ("please create keyframes", Intent("generate", "frames")),
        ("hello there", Intent("help")),
        ("approve the storyboard", Intent("approve_storyboard")),
        ("the storyboard looks good", Intent("approve_storyboard")),
        ("update stale", Intent("refresh")),
        ("refresh what is out of date", Intent("refresh")),
        ("generate all the clips", Intent("generate", "videos")),
        ("regenerate every keyframe", Intent("generate", "frames")),
    ],
)
def test_it_reads_the_intent(message, intent):
    assert parse(message) == intent


@pytest.mark.parametrize(
    ("message", "intent"),
    [
        # questions about the lines are not the paid request to speak them
        ("what does Mira say in her lines?", Intent("help")),
        ("read me the dialogue", Intent("help")),
        ("can Tom speak the lines?", Intent("help")),
        ("which voice does Mira speak in?", Intent("list_voices")),
        ("what voices are there", Intent("list_voices")),
        ("give the narrator a deeper voice", Intent("set_voice", "the narrator", "a deeper voice")),
        ("give Mira a deeper voice", Intent("set_voice", "Mira", "a deeper voice")),
        ("make her voice warmer", Intent("help")),  # whose? nobody called "her"
        ("speak the lines of scene 2", Intent("speak_lines")),
        ("please read out the dialogue", Intent("speak_lines")),
        ("Now generate the audio.", Intent("speak_lines")),
        ("speak", Intent("speak_lines")),
    ],
)
def test_it_reads_voice_and_line_requests(message, intent):
    assert parse(message) == intent


@pytest.mark.parametrize(
    "message", ["read me the dialogue of scene 2", "can Tom speak the lines of scene 2?"]
)
def test_a_question_about_a_scenes_lines_is_not_a_request_to_speak_them(message):
    assert parse(message).kind != "speak_lines"  # (the scene itself, or help)


@pytest.mark.parametrize(
    ("message", "unit"),
    [
        (
            "make the second scene more tense and regenerate its frames",
            UnitRequest("scene_keyframes", scene=2, instructions="more tense"),
        ),
        ("make frame 2 of scene 2 darker", UnitRequest("keyframe", 2, 2, instructions="darker")),
        ("scene two, frame one", UnitRequest("point", 2, 1)),
        ("redo Mara's portrait", UnitRequest("portrait", character="Mara")),
        (
            "redo Elias Lindqvist's portrait: older, in a raincoat",
            UnitRequest("portrait", character="Lindqvist", instructions="older, in a raincoat"),
        ),
        (
            "Please redraw the portrait of Elias Lindqvist: older, in a raincoat",
            UnitRequest("portrait", character="Elias", instructions="older, in a raincoat"),
        ),
        (
            "redo Mara's portrait: older",
            UnitRequest("portrait", character="Mara", instructions="older"),
        ),
        ("regenerate its frames", UnitRequest("which")),
        ("cancel the clip of frame 2 of scene 1", None),
    ],
)
def test_it_reads_requests_about_one_unit(message, unit):
    intent = parse(message)
    assert intent.unit == unit
    if unit is not None:
        assert intent.kind == "unit"
