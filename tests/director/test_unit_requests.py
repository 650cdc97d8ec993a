"""The offline director maps a request about one unit to that unit, never to the whole project.

Each phrasing runs a real turn (POST /api/director/stream, inline in the test's transaction) on a
finished 3 scenes by 3 frames film; the table says which tool the turn ends with and on which
unit. Nothing paid starts: those tools only ask for confirmation.
"""

import pytest

from filmstudio.support import read_events
from generation.models import GenerationJob
from projects.models import Project, Scene, Take
from tests.director.helpers import counts_of
from tests.factories import CharacterFactory, FrameFactory, ProjectFactory, SceneFactory

pytestmark = pytest.mark.django_db

READS = {"get_project_status", "list_takes"}
PROJECT_WIDE = {"scenes", "characters", "stitch"}


@pytest.fixture
def film(user) -> dict:
    project = ProjectFactory(
        owner=user, status=Project.Status.COMPLETE, num_scenes=3, frames_per_scene=3
    )
    mara = CharacterFactory(project=project, name="Mara Vance", status="approved")
    elias = CharacterFactory(project=project, name="Elias Okafor", status="approved")
    ids: dict = {"project": project.pk, ("character", "Mara"): mara.pk}
    ids["character", "Elias"] = elias.pk
    for s in (1, 2, 3):
        scene = SceneFactory(project=project, order=s, title=f"Part {s}")
        scene.characters.add(mara, elias)
        ids["scene", s] = scene.pk
        for f in (1, 2, 3):
            frame = FrameFactory(scene=scene, order=f, image=f"frames/{s}-{f}.png")
            ids["frame", s, f] = frame.pk
    frame_id = ids["frame", 1, 2]
    older = Take.objects.create(project=project, kind="keyframe", frame_id=frame_id, file="a.png")
    newer = Take.objects.create(project=project, kind="keyframe", frame_id=frame_id, file="b.png")
    project.scenes.get(order=1).frames.filter(order=2).update(keyframe_take=newer)
    ids["take", "older"], ids["take", "newer"] = older.pk, newer.pk
    return ids


def ask(api, film: dict, message: str, page: str) -> list[dict]:
    body = {"message": message, "page": page, "project_id": film["project"]}
    response = api.post("/api/director/stream", body, format="json")
    assert response.status_code == 200, response.content
    events = read_events(response.streaming_content)
    assert events[-1].type == "complete", events[-1].data
    return [e.data for e in events if e.type == "function_call"]


def resolved(args: dict, film: dict) -> dict:
    """Symbolic ids in the table (("frame", 2, 3) = frame 3 of scene 2) → real ids."""

    def one(value):
        if isinstance(value, tuple):
            return film[value]
        if isinstance(value, str) and value.startswith(("frame:", "scene:")):
            kind, *numbers = value.split(":")
            return f"{kind}:{film[(kind, *map(int, numbers))]}"
        return value

    return {key: one(value) for key, value in args.items()}


S = "storyboard"
# (message, page, the tool the turn ends with, its arguments); None: no action at all.
TABLE = [
    # The reported case: one scene, with the producer's words as instructions.
    (
        "make the second scene more tense and regenerate its frames",
        S,
        "regenerate_scene",
        {"scene_id": ("scene", 2), "kind": "keyframes", "instructions": "more tense"},
    ),
    (
        "regenerate the second scene's frames",
        S,
        "regenerate_scene",
        {"scene_id": ("scene", 2), "kind": "keyframes"},
    ),
    (
        "Make the third scene's keyframes moodier",
        S,
        "regenerate_scene",
        {"scene_id": ("scene", 3), "kind": "keyframes", "instructions": "moodier"},
    ),
    (
        "make scene 2 darker",
        S,
        "regenerate_scene",
        {"scene_id": ("scene", 2), "kind": "keyframes", "instructions": "darker"},
    ),
    (
        "redraw scene 1's keyframes darker",
        S,
        "regenerate_scene",
        {"scene_id": ("scene", 1), "kind": "keyframes", "instructions": "darker"},
    ),
    (
        "regenerate the first scene",
        S,
        "regenerate_scene",
        {"scene_id": ("scene", 1), "kind": "keyframes"},
    ),
    (
        "redo the clips of scene 3",
        "videos",
        "regenerate_scene",
        {"scene_id": ("scene", 3), "kind": "clips"},
    ),
    # One keyframe.
    (
        "make frame 2 of scene 2 darker",
        S,
        "regenerate_keyframe",
        {"frame_id": ("frame", 2, 2), "instructions": "darker"},
    ),
    (
        "redo the third shot of scene 1, more fog",
        S,
        "regenerate_keyframe",
        {"frame_id": ("frame", 1, 3), "instructions": "more fog"},
    ),
    (
        "shot 2 in the first scene: add rain",
        S,
        "regenerate_keyframe",
        {"frame_id": ("frame", 1, 2), "instructions": "add rain"},
    ),
    (
        "Regenerate scene 3, frame 1 with a low camera",
        S,
        "regenerate_keyframe",
        {"frame_id": ("frame", 3, 1), "instructions": "with a low camera"},
    ),
    ("redraw the 2nd frame of scene 3", S, "regenerate_keyframe", {"frame_id": ("frame", 3, 2)}),
    (
        "make the last shot of scene 2 brighter",
        S,
        "regenerate_keyframe",
        {"frame_id": ("frame", 2, 3), "instructions": "brighter"},
    ),
    (
        "could you regenerate frame three of scene one, more contrast please",
        S,
        "regenerate_keyframe",
        {"frame_id": ("frame", 1, 3), "instructions": "more contrast"},
    ),
    # One clip.
    (
        "regenerate the clip of frame 2 in scene 1 with a slower camera move",
        "videos",
        "regenerate_clip",
        {"frame_id": ("frame", 1, 2), "instructions": "with a slower camera move"},
    ),
    (
        "redo the video for shot 3 of the first scene, slower",
        "videos",
        "regenerate_clip",
        {"frame_id": ("frame", 1, 3), "instructions": "slower"},
    ),
    ("redo the 3rd clip in scene 2", "videos", "regenerate_clip", {"frame_id": ("frame", 2, 3)}),
    # One portrait.
    (
        "redo Mara's portrait",
        "characters",
        "regenerate_portrait",
        {"character_id": ("character", "Mara")},
    ),
    (
        "regenerate the portrait of Elias with a beard",
        "characters",
        "regenerate_portrait",
        {"character_id": ("character", "Elias"), "instructions": "with a beard"},
    ),
    (
        "draw Mara's portrait again, older and wearier",
        S,
        "regenerate_portrait",
        {"character_id": ("character", "Mara"), "instructions": "older and wearier"},
    ),
    # Pointing at a unit.
    ("the third shot of scene 1", S, "highlight", {"target": "frame:1:3"}),
    ("shot 2 in the first scene", S, "highlight", {"target": "frame:1:2"}),
    ("scene two, frame one", S, "highlight", {"target": "frame:2:1"}),
    ("show me the second scene", S, "highlight", {"target": "scene:2"}),
    # Text edits (nothing paid: they act at once).
    (
        "change the camera of frame 2 in scene 1 to a close-up",
        S,
        "edit_frame",
        {"frame_id": ("frame", 1, 2), "camera": "a close-up"},
    ),
    (
        "set the mood of scene 2 to tense",
        "scenes",
        "edit_scene",
        {"scene_id": ("scene", 2), "mood": "tense"},
    ),
    (
        "rename scene 1 to The Storm",
        "scenes",
        "edit_scene",
        {"scene_id": ("scene", 1), "title": "The Storm"},
    ),
    (
        "make Mara the speaker of frame 2 in scene 1",
        S,
        "edit_frame",
        {"frame_id": ("frame", 1, 2), "speaker_id": ("character", "Mara")},
    ),
    (
        "change the camera of shot 1 in scene 3 to a wide shot and regenerate it",
        S,
        "regenerate_keyframe",
        {"frame_id": ("frame", 3, 1)},
    ),
    # A scene's shot list, rewritten on purpose (still one scene).
    (
        "rewrite the shot list of scene 2",
        S,
        "start_generation",
        {"kind": "frames", "scene_id": ("scene", 2)},
    ),
    # Takes.
    (
        "go back to the previous keyframe of frame 2 in scene 1",
        S,
        "select_take",
        {"take_id": ("take", "older")},
    ),
    ("use take {older}", S, "select_take", {"take_id": ("take", "older")}),
    # The project, on purpose.
    ("update stale", S, "refresh_stale", {}),
    ("generate all the clips", "videos", "start_generation", {"kind": "videos"}),
    ("generate the scenes", "scenes", "start_generation", {"kind": "scenes"}),
    ("regenerate all the keyframes", S, "start_generation", {"kind": "frames"}),
    # Unclear or impossible: the director asks or explains, and does nothing.
    ("regenerate frame 2", S, None, None),
    ("regenerate its frames", S, None, None),
    ("make frame 9 of scene 2 darker", S, None, None),
    ("redo scene 7", S, None, None),
    ("redo Noor's portrait", "characters", None, None),
]


@pytest.mark.parametrize(("message", "page", "tool", "args"), TABLE, ids=[r[0] for r in TABLE])
def test_a_request_reaches_its_unit(api, film, message, page, tool, args):
    message = message.format(older=film["take", "older"])
    calls = ask(api, film, message, page)

    acts = [c for c in calls if c["name"] not in READS]
    if tool is None:
        assert acts == []
    else:
        assert acts, calls
        assert (acts[-1]["name"], acts[-1]["args"]) == (tool, resolved(args, film))
    wide_ok = tool == "start_generation" and "scene_id" not in args
    for call in acts:
        project_wide = call["name"] == "start_generation" and not (
            {"scene_id", "frame_id"} & set(call["args"])
        )
        assert wide_ok or not project_wide, f"{message!r} became project-wide: {call}"
    # Whatever it reached, nothing paid has started: that waits for the person's confirmation.
    assert not GenerationJob.objects.exists()


def test_there_are_at_least_thirty_phrasings():
    assert len(TABLE) >= 30


def test_paid_calls_only_ask_and_edits_act(api, film):
    calls = ask(api, film, "make frame 2 of scene 2 darker", S)
    redo = calls[-1]["result"]
    assert redo["confirmation_required"] is True
    assert counts_of(redo["estimate"]) == {"images": 1}
    assert "frame 2 of scene 2" in redo["summary"]

    calls = ask(api, film, "set the mood of scene 2 to tense", "scenes")
    assert calls[-1]["result"]["scene"]["mood"] == "tense"
    assert Scene.objects.get(pk=film["scene", 2]).mood == "tense"
