"""How the local director reads a message (pure functions, no database)."""

import pytest

from director.agents.local import Intent, parse


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
    ],
)
def test_it_reads_the_intent(message, intent):
    assert parse(message) == intent
