"""The director's sound tools: list the voices, give a character another voice (an edit: her
spoken lines go stale, and the turn says so), speak lines (paid: confirmed first). Through the
offline director's phrasings, the tools themselves, and the Gemini director via the fake."""

import pytest

from director.pages import PAGES
from director.tools import ToolContext, execute
from filmstudio.support import read_events
from generation.models import GenerationJob
from projects.models import Character, Frame, Project, Take
from projects.takes import line_inputs, take_record
from tests.director.helpers import async_client_for, call, counts_of, turn_events, types_of
from tests.factories import FrameFactory, ProjectFactory, SceneFactory

pytestmark = pytest.mark.django_db

CONFIRM = "/api/director/confirm"


@pytest.fixture
def film(user) -> dict:
    """Two scenes; Mira (espeak-bea) speaks in scene 1, whose first line is spoken already;
    scene 2 has a line of Mira's and one of the narrator's, scene 3 none."""
    project = ProjectFactory(
        owner=user, status=Project.Status.COMPLETE, num_scenes=3, frames_per_scene=2
    )
    mira = Character.objects.create(
        project=project, name="Mira", status=Character.Status.APPROVED, voice="espeak-bea"
    )
    tom = Character.objects.create(
        project=project, name="Tom", status=Character.Status.APPROVED, voice="espeak-dora"
    )
    scenes = {}
    for order in (1, 2, 3):
        scenes[order] = SceneFactory(project=project, order=order, title=f"Part {order}")
        scenes[order].characters.add(mira, tom)
    spoken = FrameFactory(scene=scenes[1], order=1, dialogue="Mira: The lamp.", speaker=mira)
    FrameFactory(scene=scenes[1], order=2)
    FrameFactory(scene=scenes[2], order=1, dialogue="Mira: Hold on.", speaker=mira)
    FrameFactory(scene=scenes[2], order=2, dialogue="Night falls.")
    FrameFactory(scene=scenes[3], order=1)
    take_record(
        project_id=project.pk,
        kind=Take.Kind.LINE,
        frame=spoken,
        file=f"{project.pk}/lines/frame-{spoken.pk}.wav",
        inputs=line_inputs(spoken),
        provider="local",
        model="espeak-ng-2",
        duration=1.2,
    )
    return {"project": project, "mira": mira, "tom": tom, "scenes": scenes, "spoken": spoken}


def ask(api, film, message: str, page: str = "characters") -> list:
    body = {"message": message, "page": page, "project_id": film["project"].pk}
    response = api.post("/api/director/stream", body, format="json")
    assert response.status_code == 200, response.content
    events = read_events(response.streaming_content)
    assert events[-1].type == "complete", events[-1].data
    return events


def calls(events) -> list[dict]:
    return [e.data for e in events if e.type == "function_call"]


def stale(api, film) -> dict:
    report = api.get(f"/api/projects/{film['project'].pk}/stale").json()
    return {(u["type"], u["id"]): u["reasons"] for u in report["units"]}


def test_the_sound_tools_are_on_every_page_that_shows_units():
    for page in ("characters", "scenes", "storyboard", "videos"):
        assert {"list_voices", "set_voice", "generate_lines"} <= set(PAGES[page].tools)
    assert "set_voice" not in PAGES["dashboard"].tools


def test_list_voices_gives_the_providers_voices_and_who_speaks_in_which(user, film):
    ctx = ToolContext(user, film["project"].pk, PAGES["characters"])
    result = execute(ctx, "list_voices", {}).result
    assert result["speech"] == {"provider": "local", "model": "espeak-ng-2"}
    assert len(result["voices"]) == 10
    gus = next(v for v in result["voices"] if v["id"] == "espeak-gus")
    assert gus["provider"] == "local" and "low" in gus["traits"]
    assert "stand-in" in gus["description"]
    assert {(c["name"], c["voice"]) for c in result["cast"]} == {
        ("Mira", "espeak-bea"),
        ("Tom", "espeak-dora"),
    }


def test_the_offline_director_lists_the_voices(api, film):
    events = ask(api, film, "list voices")
    assert [c["name"] for c in calls(events)] == ["list_voices"]
    text = events[-1].data["text"]
    assert "The 10 voices of local" in text and "Gus (deep, slow British man's voice)" in text
    assert "Mira speaks as Bea" in text and "Tom speaks as Dora" in text


@pytest.mark.parametrize(
    ("message", "voice"),
    [
        ("give Mira a deeper voice", "espeak-hana"),  # Dora (deepest woman's) is Tom's
        ("make Mira's voice warmer", "espeak-dora"),  # Tom's too, but a woman's
        ("Mira should sound older", "espeak-hana"),
        ("change Mira's voice to Gus", "espeak-gus"),
        ("set the voice of Mira to espeak-ash", "espeak-ash"),
        ("give Mira a man's voice", "espeak-ash"),
    ],
)
def test_the_offline_director_gives_mira_the_voice_asked_for_and_says_her_lines_are_stale(
    api, film, message, voice
):
    assert stale(api, film) == {}
    events = ask(api, film, message)
    names = [c["name"] for c in calls(events)]
    assert names == ["list_voices", "set_voice"]
    done = calls(events)[1]
    assert done["args"] == {"character_id": film["mira"].pk, "voice": voice}
    assert done["result"]["stale_line_frame_ids"] == [film["spoken"].pk]
    assert not any(e.type == "confirm" for e in events)  # an edit: nothing to pay
    text = events[-1].data["text"]
    assert f"Mira now speaks in {voice} (was espeak-bea)" in text
    assert "1 spoken line(s) of Mira are stale now" in text
    film["mira"].refresh_from_db()
    assert film["mira"].voice == voice
    assert stale(api, film) == {
        ("line", film["spoken"].pk): [f"voice changed from espeak-bea to {voice}"]
    }
    assert not GenerationJob.objects.exists()  # nothing is spoken again by itself


def test_the_narrators_voice_is_not_set_on_a_character_called_the(api, film):
    events = ask(api, film, "give the narrator a deeper voice")
    assert [c["name"] for c in calls(events)] == ["list_voices"]
    assert "The narrator is nobody in the cast" in events[-1].data["text"]
    assert not GenerationJob.objects.exists()


def test_setting_the_voice_a_character_has_reports_no_stale_lines(user, film):
    ctx = ToolContext(user, film["project"].pk, PAGES["characters"])
    args = {"character_id": film["mira"].pk, "voice": "espeak-gus"}
    first = execute(ctx, "set_voice", args).result
    assert first["stale_line_frame_ids"] == [film["spoken"].pk]
    again = execute(ctx, "set_voice", args).result  # her line is still stale, but not by this
    assert again["stale_line_frame_ids"] == []
    assert again["done"] == "Mira already speaks in espeak-gus: nothing changed."


def test_a_voice_nobody_offers_or_a_quality_no_voice_has_changes_nothing(api, user, film):
    ctx = ToolContext(user, film["project"].pk, PAGES["characters"])
    bad = execute(ctx, "set_voice", {"character_id": film["mira"].pk, "voice": "Kore"}).result
    assert "Unknown voice 'Kore'" in bad["error"]
    events = ask(api, film, "give Mira a purple voice")
    assert [c["name"] for c in calls(events)] == ["list_voices"]
    assert "Which voice for Mira?" in events[-1].data["text"]
    film["mira"].refresh_from_db()
    assert film["mira"].voice == "espeak-bea"


def test_speaking_a_scenes_lines_asks_first_and_then_speaks_only_that_scene(api, film):
    scene = film["scenes"][2]
    events = ask(api, film, "speak the lines of scene 2", page="storyboard")
    assert [c["name"] for c in calls(events)] == ["get_project_status", "generate_lines"]
    confirm = next(e.data for e in events if e.type == "confirm")
    assert confirm["name"] == "generate_lines" and confirm["args"] == {"scene_id": scene.pk}
    assert counts_of(confirm["estimate"]) == {"lines": 2}
    assert "the lines of scene 2 (Part 2)" in confirm["summary"]
    assert "Mira, the narrator" in confirm["summary"]
    assert "This needs your go-ahead" in events[-1].data["text"]
    assert not GenerationJob.objects.exists()

    session = events[0].data["session_id"]
    body = {"session_id": session, "token": confirm["token"]}
    response = api.post(CONFIRM, body, format="json")
    assert response.status_code == 200
    done = read_events(response.streaming_content)
    assert types_of(done) == ["start", "function_call", "message", "complete"]
    jobs = GenerationJob.objects.order_by("pk")
    assert [(j.type, j.target_type) for j in jobs] == [("audio-generation", "frame")] * 2
    assert {j.target_id for j in jobs} == set(scene.frames.values_list("pk", flat=True))


def test_speaking_one_frames_line_or_the_projects_lines(api, film):
    frame = film["scenes"][2].frames.get(order=2)
    events = ask(api, film, "speak the line of frame 2 of scene 2", page="videos")
    confirm = next(e.data for e in events if e.type == "confirm")
    assert confirm["args"] == {"frame_id": frame.pk}
    assert counts_of(confirm["estimate"]) == {"lines": 1}
    assert "the narrator" in confirm["summary"]

    events = ask(api, film, "generate the lines", page="videos")
    confirm = next(e.data for e in events if e.type == "confirm")
    assert confirm["args"] == {}
    assert counts_of(confirm["estimate"]) == {"lines": 2}  # scene 1's is spoken and current
    assert "every missing or stale line" in confirm["summary"]
    body = {"session_id": events[0].data["session_id"], "token": confirm["token"]}
    assert api.post(CONFIRM, body, format="json").status_code == 200
    job = GenerationJob.objects.get()
    assert (job.type, job.target_type, job.target_id) == (
        "audio-generation",
        "project",
        film["project"].pk,
    )


def test_a_scene_without_dialogue_has_nothing_to_confirm(api, user, film, other_user):
    ctx = ToolContext(user, film["project"].pk, PAGES["storyboard"])
    Frame.objects.filter(scene=film["scenes"][2]).update(dialogue="")
    current = execute(ctx, "generate_lines", {})
    assert current.result == {"error": "Nothing to speak: every line is spoken and up to date."}
    silent = execute(ctx, "generate_lines", {"scene_id": film["scenes"][3].pk})
    assert "Nothing to speak" in silent.result["error"] and silent.proposal is None
    both = {"scene_id": film["scenes"][2].pk, "frame_id": film["spoken"].pk}
    assert "one of" in execute(ctx, "generate_lines", both).result["error"]
    theirs = ToolContext(other_user, None, PAGES["storyboard"])
    assert execute(theirs, "generate_lines", {"scene_id": film["scenes"][2].pk}).result == {
        "error": "Not found."
    }
    other = execute(theirs, "set_voice", {"character_id": film["mira"].pk, "voice": "Gus"})
    assert other.result == {"error": "Not found."}
    film["mira"].refresh_from_db()
    assert film["mira"].voice == "espeak-bea"
    assert not GenerationJob.objects.exists()


# --- the Gemini director, through the real SDK and the fake ------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_gemini_director_sets_a_voice_and_asks_before_speaking(run, fake, settings, user, film):
    settings.SPEECH_PROVIDER = "local"  # the voices stay the offline ones
    mira = film["mira"]
    scene = film["scenes"][2]
    fake.script_turn(["Deeper it is.", call("set_voice", character_id=mira.pk, voice="espeak-gus")])
    fake.script_turn([call("generate_lines", scene_id=scene.pk)])
    fake.script_turn(["Mira speaks as Gus now; her line is stale. Confirm to speak scene 2."])
    body = {"message": "deeper voice for Mira", "page": "storyboard"}
    events = run(turn_events(async_client_for(user), **body, project_id=film["project"].pk))

    assert types_of(events) == [
        "start", "message", "function_call", "function_call", "confirm", "message", "complete"
    ]  # fmt: skip
    declared = next(r.body for r in fake.requests if r.kind == "stream")["tools"][0]
    names = [d["name"] for d in declared["functionDeclarations"]]
    assert {"list_voices", "set_voice", "generate_lines"} <= set(names)
    set_call = events[2].data
    assert set_call["result"]["character"]["voice"] == "espeak-gus"
    assert set_call["result"]["stale_line_frame_ids"] == [film["spoken"].pk]
    mira.refresh_from_db()
    assert mira.voice == "espeak-gus"
    assert events[3].data["result"]["confirmation_required"] is True
    confirm = events[4].data
    assert (confirm["name"], confirm["args"]) == ("generate_lines", {"scene_id": scene.pk})
    assert counts_of(confirm["estimate"]) == {"lines": 2}
    assert not GenerationJob.objects.exists()
